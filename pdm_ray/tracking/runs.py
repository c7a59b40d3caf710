"""Connecting to MLflow and grouping runs: the tracking half of ``pdm_ray.tracking``.

``connect`` is the one door to a tracking store. It fails fast with a ``TrackingError``
that names the URI when an HTTP server does not answer, and it creates (or upgrades) an
embedded SQLite store from the calling process *before* anything else touches it:
MLflow's schema set-up is not safe for concurrent creators (several processes creating
one fresh SQLite file crash with "duplicate column name"), so the driver does it once.
A new SQLite store starts as a copy of an empty one at the current schema, kept per MLflow
version in the user's cache directory (``new_sqlite_store``).
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import os
import shutil
import subprocess
import uuid
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mlflow.entities import Param, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.version import VERSION as MLFLOW_VERSION

from pdm_ray.config import Settings
from pdm_ray.environment import scoped_environ
from pdm_ray.errors import TrackingError

logger = logging.getLogger(__name__)

#: Tag MLflow reads to nest a run under its parent in the UI and in searches.
PARENT_RUN_TAG = "mlflow.parentRunId"

#: Tag naming the code that made a run or a model version (``code_version``).
CODE_VERSION_TAG = "pdm.code_version"

RunOutcome = Literal["FINISHED", "FAILED", "KILLED"]


@dataclass(frozen=True)
class Tracking:
    """A reachable MLflow tracking store and the experiment runs go to.

    Attributes:
        uri: the tracking URI (``sqlite:///...``, ``http://...``, ``postgresql://...``).
        experiment_id: id of the experiment named in ``TrackingSettings.experiment``.
        client: a client bound to ``uri`` (also used as the registry).
    """

    uri: str
    experiment_id: str
    client: MlflowClient = field(repr=False, compare=False)


def _fail_fast(timeout_s: float) -> AbstractContextManager[None]:
    """No retries and a short timeout for HTTP requests made inside the block.

    MLflow reads these variables per request; its defaults (7 retries with back-off, 120 s
    timeout) would make a wrong URI hang for minutes before the first trial.
    """
    return scoped_environ(
        {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, round(timeout_s)))}
    )


def quiet_downloads() -> AbstractContextManager[None]:
    """No progress bar per artifact download inside the block, unless the caller set the variable.

    MLflow draws one for every download, four per channel in a sweep; pdm-ray's artifacts are
    a few kB, so the bars are noise in a notebook and in logs alike.
    """
    return scoped_environ({}, {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"})


def _sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0])


def _schema_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/pdm-ray`` (default ``~/.cache/pdm-ray``): where empty stores are kept."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pdm-ray"


def _unique_sibling(path: Path) -> Path:
    """A new name next to ``path`` for a file that is moved into place when complete.

    Not ``mkstemp``: its files are private (0600), and a store must get the permissions the
    umask gives, as one MLflow creates does.
    """
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def _empty_store_template() -> Path:
    """An empty SQLite store at this MLflow's current schema, built once per MLflow version.

    It holds MLflow's tables only: MLflow adds its ``Default`` experiment when a copy is first
    opened, with that store's own artifact root.
    """
    import sqlalchemy
    from mlflow.store.db.utils import _initialize_tables  # what MLflow runs on a new store

    cache = _schema_cache_dir()
    template = cache / f"mlflow-{MLFLOW_VERSION}-empty.db"
    if template.exists():
        return template
    cache.mkdir(parents=True, exist_ok=True)
    tmp = _unique_sibling(template)
    try:
        engine = sqlalchemy.create_engine(f"sqlite:///{tmp}")
        try:
            _initialize_tables(engine)
        finally:
            engine.dispose()
        os.replace(tmp, template)  # whole or absent: concurrent builders each replace it with an equal file
    finally:
        tmp.unlink(missing_ok=True)
    return template


def new_sqlite_store(db: Path) -> bool:
    """Create the SQLite store ``db`` as a copy of an empty store at the current schema.

    MLflow builds a new store's schema by replaying all its migrations: 2-5 s on a 2-core box,
    paid by every new home (a first ``make run``, each benchmark repeat). The copy takes about
    0.1 s. It is linked into place, so no process ever sees a partial file, and an existing
    ``db`` is never touched. Returns False when ``db`` exists (or is SQLite's ``:memory:``) or
    the cache cannot be used; MLflow's own set-up then runs as before.
    """
    if db.exists() or db.name == ":memory:":
        return False
    try:
        template = _empty_store_template()
        tmp = _unique_sibling(db)
        try:
            shutil.copyfile(template, tmp)
            os.link(tmp, db)  # fails if db appeared meanwhile: that store wins
        finally:
            tmp.unlink(missing_ok=True)
    except FileExistsError:
        return False
    except Exception as exc:  # any failure leaves MLflow's own set-up to run
        logger.debug("no schema template for %s (%s): MLflow builds the schema", db, exc)
        return False
    return True


def default_artifact_location(uri: str) -> str | None:
    """``<db dir>/mlartifacts`` for a SQLite store (not MLflow's ``./mlruns`` in the working directory).

    None for other stores, whose server decides.
    """
    db = _sqlite_path(uri)
    return None if db is None else (db.resolve().parent / "mlartifacts").as_uri()


def connect(
    uri: str,
    experiment: str,
    *,
    artifact_location: str | None = None,
    timeout_s: float = 5.0,
) -> Tracking:
    """Check that ``uri`` answers, set up its schema if it is a new SQLite file, get the experiment.

    Args:
        uri: MLflow tracking URI.
        experiment: experiment name; created when missing.
        artifact_location: where a newly created experiment stores artifacts; default
            ``default_artifact_location(uri)``.
        timeout_s: per-request timeout of the HTTP reachability check.

    Raises:
        TrackingError: MLflow does not support ``uri`` (scheme, a plain file path), the SQLite
            file's directory cannot be created, or the store is unreachable or refuses the
            request; the message names ``uri``.
    """
    db = _sqlite_path(uri)
    try:
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
            new_sqlite_store(db)
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        artifact_location = artifact_location or default_artifact_location(uri)
        with _fail_fast(timeout_s):
            client.search_experiments(max_results=1)
        found = client.get_experiment_by_name(experiment)
        if found is not None:
            experiment_id = found.experiment_id
        else:
            experiment_id = client.create_experiment(experiment, artifact_location=artifact_location)
            logger.info("created MLflow experiment %r (%s) at %s", experiment, experiment_id, uri)
    except (MlflowException, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrackingError(f"MLflow tracking URI {uri} is unreachable or refused the request: {first}") from exc
    return Tracking(uri=uri, experiment_id=experiment_id, client=client)


def connect_settings(settings: Settings, uri: str | None = None) -> Tracking:
    """``connect`` with the tracking section of ``settings`` (``uri`` overrides ``settings.tracking_uri``)."""
    return connect(
        uri or settings.tracking_uri, settings.tracking.experiment, timeout_s=settings.tracking.connect_timeout_s
    )


@functools.cache
def code_version() -> str:
    """pdm-ray's version, plus ``+git.<commit>`` (and ``.dirty``) when it runs from a git checkout.

    Recorded on runs and model versions, so a model can be traced to the code that trained
    it. Without git or a checkout (an installed wheel) it is the package version alone.
    """
    try:
        version = importlib.metadata.version("pdm-ray")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    root = Path(__file__).resolve().parents[2]  # the checkout holding pdm_ray/, if any
    if not (root / ".git").exists():
        return version
    try:
        git = functools.partial(subprocess.run, cwd=root, capture_output=True, text=True, check=True, timeout=10)
        commit = git(["git", "rev-parse", "HEAD"]).stdout.strip()
        dirty = git(["git", "status", "--porcelain", "--untracked-files=no"]).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version}+git.{commit}{'.dirty' if dirty else ''}"


def start_parent_run(tracking: Tracking, name: str, tags: Mapping[str, str], params: Mapping[str, object]) -> str:
    """Open the run that groups a sweep's trials; returns its run id.

    Child runs carry ``{PARENT_RUN_TAG: <this id>}`` so the MLflow UI nests them. The
    params go in one request (MLflow takes at most 100 per batch).
    """
    run = tracking.client.create_run(tracking.experiment_id, run_name=name, tags=dict(tags))
    tracking.client.log_batch(run.info.run_id, params=[Param(key, str(value)) for key, value in params.items()])
    return run.info.run_id


def end_run(tracking: Tracking, run_id: str, outcome: RunOutcome = "FINISHED") -> None:
    """Close a run opened with ``start_parent_run``."""
    tracking.client.set_terminated(run_id, status=RunStatus.to_string(RunStatus.from_string(outcome)))
