"""The model registry lifecycle: versions, aliases, the promotion gate and rollback.

One registered model per channel and forecaster kind, named ``pdm-<channel>-<kind>``.
MLflow stages are deprecated, so the lifecycle uses aliases (each points at one version):

* a new version gets ``staging`` (the version that held it gets ``pdm.status = superseded``);
* ``promote`` runs the gate: it recomputes the validation MSE of the staging version and
  of the current ``production`` version on the same held-out windows (the last
  ``min`` of the two models' ``validation_split`` of the channel's TRAIN windows, cut from
  the series imputed as training imputed it, so neither model trained on them when both
  trained on that series; a different ``data.version`` is noted in the reason) and, when
  the channel has labels and both models expose a forecast, compares event-level F1 of the
  Telemanom detector on the (imputed) test series. ``production`` moves only when the candidate's
  MSE is below ``(1 - promotion_margin)`` x production's and its F1 is not lower; the
  replaced version gets ``archived``;
* ``rollback`` moves ``production`` back to the version it replaced.

Every decision is written as ``pdm.*`` tags on the versions involved (metric values on
both sides, the reason, a UTC time), and the registered model keeps the list of past
production versions in ``pdm.production_history`` so rollbacks can be chained.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args

import mlflow.artifacts
import numpy as np
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from pdm_ray.config import Settings
from pdm_ray.data.channels import Channel
from pdm_ray.data.pipeline import impute_channel
from pdm_ray.data.windows import make_windows
from pdm_ray.errors import ConfigError, RegistryError, TrackingError, UnknownSensorError
from pdm_ray.ids import validate_sensor_id
from pdm_ray.tracking.runs import CODE_VERSION_TAG, Tracking, code_version, quiet_downloads

if TYPE_CHECKING:  # the model stack (JAX) loads where a model is used, not where versions are read
    from pdm_ray.models import TrainedModel

logger = logging.getLogger(__name__)

ModelKind = Literal["lstm", "transformer"]
Alias = Literal["staging", "production", "archived"]
STAGING: Alias = "staging"
PRODUCTION: Alias = "production"
ARCHIVED: Alias = "archived"
#: ``pdm.status`` of a version that held ``staging`` until a newer version was registered.
SUPERSEDED = "superseded"
HISTORY_TAG = "pdm.production_history"
_HISTORY_KEEP = 200
NAME_PREFIX = "pdm-"
T = TypeVar("T")


def model_name(channel: str, kind: str) -> str:
    """Registered-model name ``pdm-<channel>-<kind>``.

    Raises:
        InvalidChannelError: ``channel`` is not a valid sensor id.
        ConfigError: ``kind`` is not a forecaster kind.
    """
    validate_sensor_id(channel)
    if kind not in get_args(ModelKind):
        raise ConfigError(f"model kind must be one of {get_args(ModelKind)}, got {kind!r}")
    return f"{NAME_PREFIX}{channel}-{kind}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class VersionInfo:
    """One registered version as the lifecycle sees it.

    Attributes:
        name: registered-model name.
        version: MLflow version number (a string, as MLflow returns it).
        aliases: aliases pointing at this version.
        run_id: the run that produced it.
        val_loss: validation MSE recorded at training time (``pdm.val_loss``), if any.
        status: ``pdm.status`` tag: staging, production, archived, superseded or rolled_back
            (a rejected candidate keeps its status; the verdict is in ``pdm.gate.*``).
    """

    name: str
    version: str
    aliases: tuple[str, ...]
    run_id: str | None
    val_loss: float | None
    status: str

    @classmethod
    def of(cls, mv: ModelVersion) -> VersionInfo:
        val = mv.tags.get("pdm.val_loss")
        return cls(
            name=mv.name,
            version=str(mv.version),
            aliases=tuple(sorted(mv.aliases or ())),
            run_id=mv.run_id,
            val_loss=float(val) if val is not None else None,
            status=mv.tags.get("pdm.status", ""),
        )


@dataclass(frozen=True)
class GateDecision:
    """The promotion gate's verdict on one staging version.

    Attributes:
        name: registered-model name.
        candidate: the version judged.
        production: the production version it was compared with (None: there was none).
        promoted: whether ``production`` now points at ``candidate``.
        reason: one sentence with the numbers that decided.
        candidate_mse: validation MSE of the candidate (original units).
        production_mse: the same for production, on the same windows.
        candidate_f1: event-level F1 on the labelled test series, when computed.
        production_f1: the same for production.
        margin: the relative margin the candidate had to beat.
    """

    name: str
    candidate: str
    production: str | None
    promoted: bool
    reason: str
    candidate_mse: float
    production_mse: float | None
    candidate_f1: float | None
    production_f1: float | None
    margin: float


@dataclass(frozen=True)
class RollbackResult:
    """What ``rollback`` did: production moved from ``from_version`` back to ``to_version``."""

    name: str
    from_version: str
    to_version: str
    reason: str


def decide(
    candidate_mse: float,
    production_mse: float | None,
    margin: float,
    candidate_f1: float | None = None,
    production_f1: float | None = None,
) -> tuple[bool, str]:
    """The gate's rule, as a pure function: ``(promote?, reason)``.

    The candidate must have a finite MSE below ``(1 - margin) * production_mse`` and, when
    both F1 values are given, an F1 at least production's. Without a production version
    the first valid candidate is promoted.
    """
    if not math.isfinite(candidate_mse):
        return False, f"candidate validation MSE is not finite ({candidate_mse})"
    if production_mse is None:
        return True, f"no production version yet; candidate validation MSE {candidate_mse:.6g}"
    limit = (1.0 - margin) * production_mse
    if not candidate_mse < limit:
        return False, (
            f"validation MSE {candidate_mse:.6g} is not below (1 - {margin:g}) x production {production_mse:.6g}"
            f" = {limit:.6g}"
        )
    if candidate_f1 is not None and production_f1 is not None and candidate_f1 < production_f1:
        return False, f"validation MSE improved but event F1 {candidate_f1:.3f} < production {production_f1:.3f}"
    f1 = (
        "" if candidate_f1 is None or production_f1 is None else f"; event F1 {candidate_f1:.3f} >= {production_f1:.3f}"
    )
    return True, (
        f"validation MSE {candidate_mse:.6g} < (1 - {margin:g}) x production {production_mse:.6g} = {limit:.6g}{f1}"
    )


def validation_windows(
    series: np.ndarray, l_s: int, n_predictions: int, validation_split: float
) -> tuple[np.ndarray, np.ndarray]:
    """The held-out validation windows of a TRAIN series, exactly as ``pdm_ray.models.train`` splits them.

    Returns ``X [n_val, l_s, F]`` and ``y [n_val, n_predictions]`` (the last
    ``max(1, round(N * validation_split))`` of the ``N`` windows, in time order).
    """
    x, y = make_windows(series, l_s, n_predictions)
    n_val = max(1, round(len(x) * validation_split))
    return x[-n_val:], y[-n_val:]


def validation_mse(model: TrainedModel, x: np.ndarray, y: np.ndarray) -> float:
    """MSE of ``model``'s forecasts of windows ``x [N, l_s, F]`` against ``y [N, P]``, original units."""
    from pdm_ray.tracking.pyfunc import forecast

    return float(np.mean(np.square(forecast(model, x).astype(np.float64) - y), dtype=np.float64))


def event_f1(model: TrainedModel, channel: Channel, settings: Settings) -> float | None:
    """Event-level F1 of the Telemanom detector on ``channel``'s labelled test series.

    ``channel`` comes with its gaps filled as training fills them (``impute_channel``, as
    ``promote`` passes it). None when the channel has no labels or ``pdm_ray.evaluation`` is
    not available.
    """
    if not channel.has_labels:
        return None
    try:
        from pdm_ray.detection import detect
        from pdm_ray.evaluation import score_events
    except ImportError:
        return None
    from pdm_ray.tracking.pyfunc import forecast

    l_s = model.spec.l_s
    values = channel.test[l_s:, 0]
    result = detect(forecast(model, channel.test) - values, values, settings.threshold)
    found = [(s.start + l_s, s.end + l_s) for s in result.sequences]
    return float(score_events(found, list(channel.anomalies)).f1)


def _client_call(tracking: Tracking, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` with MLflow's errors turned into a ``TrackingError`` naming the store."""
    try:
        with quiet_downloads():
            return fn(*args, **kwargs)
    except MlflowException as exc:
        raise TrackingError(f"{what} failed at {tracking.uri}: {str(exc).splitlines()[0]}") from exc


def _version_by_alias(tracking: Tracking, name: str, alias: str) -> ModelVersion | None:
    try:
        return tracking.client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _history(tracking: Tracking, name: str) -> list[str]:
    tags = _client_call(tracking, f"reading {name}", tracking.client.get_registered_model, name).tags
    return list(json.loads(tags.get(HISTORY_TAG, "[]")))


def _set_history(tracking: Tracking, name: str, history: list[str]) -> None:
    tracking.client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history[-_HISTORY_KEEP:]))


def _tag(tracking: Tracking, name: str, version: str, tags: Mapping[str, object]) -> None:
    for key, value in tags.items():
        tracking.client.set_model_version_tag(name, version, key, "" if value is None else str(value))


def register_version(
    tracking: Tracking,
    run_id: str,
    model: TrainedModel,
    channel: str,
    tags: Mapping[str, str] | None = None,
) -> VersionInfo:
    """Log ``model`` as a pyfunc model in run ``run_id`` and register it as a new ``staging`` version.

    The version that held ``staging`` before gets ``pdm.status = superseded``, so the status
    tag never claims a second staging version.

    Args:
        tracking: the store (also the registry).
        run_id: the training run (e.g. the best trial of a sweep).
        model: the trained forecaster (with its normalizer).
        channel: the channel id; with ``model.spec.kind`` it names the registered model.
        tags: extra version tags (e.g. sweep id, data version).

    Raises:
        InvalidChannelError: bad channel id.
        TrackingError: the store refused a request.
    """
    from pdm_ray.tracking.pyfunc import log_pyfunc

    name = model_name(channel, model.spec.kind)
    source = _client_call(tracking, f"logging the model of {channel}", log_pyfunc, tracking.client, run_id, model)
    try:
        tracking.client.get_registered_model(name)
    except MlflowException:
        _client_call(tracking, f"creating {name}", tracking.client.create_registered_model, name)
    version_tags = {
        "pdm.channel": channel,
        "pdm.model": model.spec.kind,
        "pdm.val_loss": repr(model.val_loss),
        "pdm.naive_val_loss": repr(model.naive_val_loss),
        "pdm.best_epoch": str(model.best_epoch),
        "pdm.status": STAGING,
        "pdm.registered_at": _now(),
        CODE_VERSION_TAG: code_version(),
        **(tags or {}),
    }
    previous = _version_by_alias(tracking, name, STAGING)
    mv = _client_call(
        tracking, f"registering {name}", tracking.client.create_model_version, name, source, run_id, version_tags
    )
    tracking.client.set_registered_model_alias(name, STAGING, mv.version)
    if previous is not None:
        _tag(tracking, name, str(previous.version), {"pdm.status": SUPERSEDED})
    logger.info("%s: registered %s version %s as %s", channel, name, mv.version, STAGING)
    return VersionInfo.of(tracking.client.get_model_version(name, mv.version))


def load_version(tracking: Tracking, name: str, version: str) -> TrainedModel:
    """Download a registered version's pyfunc model and return the ``TrainedModel`` inside."""
    from pdm_ray.tracking.pyfunc import load_forecaster

    mv = _client_call(tracking, f"reading {name} version {version}", tracking.client.get_model_version, name, version)
    with tempfile.TemporaryDirectory() as tmp:
        local = _client_call(
            tracking,
            f"downloading {name} version {version}",
            mlflow.artifacts.download_artifacts,
            artifact_uri=mv.source,
            dst_path=tmp,
            tracking_uri=tracking.uri,
        )
        return load_forecaster(local)


def promote(
    tracking: Tracking,
    channel: Channel,
    kind: str,
    settings: Settings,
    version: str | None = None,
    force: bool = False,
) -> GateDecision:
    """Run the promotion gate for ``pdm-<channel>-<kind>`` and move the aliases it decides.

    Both models are scored on the last ``min(candidate, production validation_split)`` of
    the TRAIN windows of ``channel`` (the smaller split). These lie inside both models'
    held-out sets when both trained on this series. When the versions' ``data.version``
    tags differ that is not known (production may have trained on a longer series whose
    training part covers them), so the reason says so; it does not refuse, as a retrain on
    new data always has a new data version. The series are imputed with
    ``settings.impute`` first, as training imputed them.

    Args:
        tracking: the registry.
        channel: the channel, with its TRAIN series (validation windows) and test labels (F1);
            NaN gaps are filled as in training.
        kind: forecaster kind.
        settings: ``tracking.promotion_margin``, ``impute`` and ``threshold`` (for F1).
        version: the candidate; default the ``staging`` version.
        force: promote even if the gate says no or the models' windows differ (recorded).

    Raises:
        UnknownSensorError: no registered model for the channel and kind.
        RegistryError: no candidate, the candidate already is production, or, without
            ``force``, the two models read different windows (different ``l_s``/``n_predictions``)
            or either was refit on the held-out windows (``train.refit``), so MSE there is in-sample.
        DataError: a gap too long to fill.
    """
    name = model_name(channel.id, kind)
    try:
        tracking.client.get_registered_model(name)
    except MlflowException as exc:
        raise UnknownSensorError(f"no registered model {name} at {tracking.uri}") from exc
    if version is None:
        staged = _version_by_alias(tracking, name, STAGING)
        if staged is None:
            raise RegistryError(f"{name} has no {STAGING} version to promote")
        version = str(staged.version)
    current = _version_by_alias(tracking, name, PRODUCTION)
    prod_version = None if current is None else str(current.version)
    if prod_version == version:
        raise RegistryError(f"{name} version {version} already is {PRODUCTION}")

    cand_data = _client_call(
        tracking, f"reading {name} version {version}", tracking.client.get_model_version, name, version
    ).tags.get("data.version")
    prod_data = None if current is None else current.tags.get("data.version")
    candidate = load_version(tracking, name, version)
    production = None if prod_version is None else load_version(tracking, name, prod_version)
    spec = candidate.spec
    split = candidate.train_settings.validation_split
    if production is not None:
        split = min(split, production.train_settings.validation_split)
    channel = impute_channel(channel, settings)
    x_val, y_val = validation_windows(channel.train, spec.l_s, spec.n_predictions, split)
    cand_mse = validation_mse(candidate, x_val, y_val)
    cand_f1 = event_f1(candidate, channel, settings)
    prod_mse = prod_f1 = None
    problem = None
    refit = [f"version {version}"] if candidate.train_settings.refit else []
    if production is not None:
        refit += [f"production {prod_version}"] if production.train_settings.refit else []
        if (production.spec.l_s, production.spec.n_predictions) != (spec.l_s, spec.n_predictions):
            problem = f"production {prod_version} reads different windows (l_s/n_predictions) than the candidate"
        else:
            prod_mse = validation_mse(production, x_val, y_val)
            prod_f1 = event_f1(production, channel, settings) if cand_f1 is not None else None
    if problem is None and refit:
        problem = f"{' and '.join(refit)} trained on the held-out windows the gate scores (train.refit)"
    margin = settings.tracking.promotion_margin
    if problem is not None:
        if not force:
            raise RegistryError(f"{name}: {problem}; pass force to promote anyway")
        promoted, reason = False, problem
    else:
        promoted, reason = decide(cand_mse, prod_mse, margin, cand_f1, prod_f1)
    if cand_data and prod_data and cand_data != prod_data:
        reason += (
            f"; production {prod_version} trained on data version {prod_data[:12]}, the candidate on"
            f" {cand_data[:12]}: the scored windows may lie in production's training part"
        )
    if force and not promoted:
        promoted, reason = True, f"forced: {reason}"

    decision = GateDecision(name, version, prod_version, promoted, reason, cand_mse, prod_mse, cand_f1, prod_f1, margin)
    _record(tracking, decision)
    logger.info("%s: %s version %s: %s", channel.id, "promoted" if promoted else "kept", version, reason)
    return decision


def _record(tracking: Tracking, d: GateDecision) -> None:
    """Write the decision as version tags and move the aliases."""
    at = _now()
    _tag(
        tracking,
        d.name,
        d.candidate,
        {
            "pdm.gate.decision": "promoted" if d.promoted else "rejected",
            "pdm.gate.reason": d.reason,
            "pdm.gate.at": at,
            "pdm.gate.margin": d.margin,
            "pdm.gate.candidate_val_mse": repr(d.candidate_mse),
            "pdm.gate.production_version": d.production,
            "pdm.gate.production_val_mse": None if d.production_mse is None else repr(d.production_mse),
            "pdm.gate.candidate_event_f1": d.candidate_f1,
            "pdm.gate.production_event_f1": d.production_f1,
        },
    )
    if not d.promoted:
        return  # aliases and status stay: a rejected staging version remains the candidate
    client = tracking.client
    client.set_registered_model_alias(d.name, PRODUCTION, d.candidate)
    if (staged := _version_by_alias(tracking, d.name, STAGING)) is not None and str(staged.version) == d.candidate:
        client.delete_registered_model_alias(d.name, STAGING)
    _tag(tracking, d.name, d.candidate, {"pdm.status": PRODUCTION, "pdm.previous_production": d.production})
    if d.production is not None:
        client.set_registered_model_alias(d.name, ARCHIVED, d.production)
        _tag(
            tracking,
            d.name,
            d.production,
            {"pdm.status": ARCHIVED, "pdm.archived_by": d.candidate, "pdm.archived_at": at},
        )
    history = _history(tracking, d.name)
    if d.production is not None and (not history or history[-1] != d.production):
        history.append(d.production)
    _set_history(tracking, d.name, [*history, d.candidate])


def rollback(tracking: Tracking, channel: str, kind: str, reason: str) -> RollbackResult:
    """Move ``production`` of ``pdm-<channel>-<kind>`` back to the previous production version.

    The version rolled back from gets ``archived`` and ``pdm.status = rolled_back`` with
    the reason; the restored one gets ``production``. Repeated calls walk further back.

    Raises:
        UnknownSensorError: no such registered model.
        RegistryError: ``reason`` is empty, there is no production version, or no earlier one.
    """
    name = model_name(channel, kind)
    if not reason.strip():
        raise RegistryError(f"rollback of {name} needs a reason")
    try:
        history = _history(tracking, name)
    except TrackingError as exc:
        raise UnknownSensorError(f"no registered model {name} at {tracking.uri}") from exc
    current = _version_by_alias(tracking, name, PRODUCTION)
    if current is None:
        raise RegistryError(f"{name} has no {PRODUCTION} version to roll back")
    from_version = str(current.version)
    if history and history[-1] == from_version:
        history.pop()
    if not history:
        raise RegistryError(f"{name}: no earlier {PRODUCTION} version than {from_version} to roll back to")
    to_version = history[-1]
    at = _now()
    client = tracking.client
    client.set_registered_model_alias(name, PRODUCTION, to_version)
    client.set_registered_model_alias(name, ARCHIVED, from_version)
    _tag(
        tracking,
        name,
        from_version,
        {
            "pdm.status": "rolled_back",
            "pdm.rollback.reason": reason,
            "pdm.rollback.at": at,
            "pdm.rollback.to": to_version,
        },
    )
    _tag(tracking, name, to_version, {"pdm.status": PRODUCTION, "pdm.restored.reason": reason, "pdm.restored.at": at})
    _set_history(tracking, name, history)
    logger.info("%s: rolled %s back from version %s to %s: %s", channel, name, from_version, to_version, reason)
    return RollbackResult(name, from_version, to_version, reason)


def list_versions(tracking: Tracking, channel: str | None = None, kind: str | None = None) -> list[VersionInfo]:
    """Versions of pdm-ray registered models, newest first per model, optionally for one channel/kind.

    Aliases are read from the registered models: version searches do not carry them.
    """
    if channel is not None:
        kinds = [kind] if kind is not None else list(get_args(ModelKind))
        filters = [f"name = '{model_name(channel, k)}'" for k in kinds]
    else:
        filters = [f"name LIKE '{NAME_PREFIX}%'"]
    found: list[ModelVersion] = []
    for flt in filters:
        found.extend(_client_call(tracking, "listing model versions", tracking.client.search_model_versions, flt))
    if kind is not None:
        found = [mv for mv in found if mv.name.endswith(f"-{kind}")]
    aliases: dict[tuple[str, str], list[str]] = {}
    for name in {mv.name for mv in found}:
        for alias, version in (tracking.client.get_registered_model(name).aliases or {}).items():
            aliases.setdefault((name, str(version)), []).append(alias)
    out = [
        replace(VersionInfo.of(mv), aliases=tuple(sorted(aliases.get((mv.name, str(mv.version)), ())))) for mv in found
    ]
    return sorted(out, key=lambda v: (v.name, -int(v.version)))
