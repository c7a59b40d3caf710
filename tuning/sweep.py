"""Sweeps across sensors: one Ray Tune ``Tuner`` for all channels, every trial an MLflow run.

Ray's many-model pattern: ``channel`` is a ``tune.grid_search`` dimension next to the
sampled hyper-parameters, so ``num_samples`` configs are tried *per channel* in one Tuner
that shares the cluster. ASHA (Li et al. 2018, arXiv:1810.05934) compares trials of all
channels on ``val_ratio`` = validation MSE / persistence MSE, which is scale-free and so
comparable across sensors (a raw MSE would let easy channels starve hard ones).

Tracking: the driver creates/upgrades the MLflow store first (``connect``; SQLite schema
set-up is not safe for concurrent creators), opens one parent run per sweep, and Tune's
``MLflowLoggerCallback`` logs every trial as a child run (``mlflow.parentRunId``) with its
params, per-epoch metrics and tags (channel, model, sweep id, data version). The
callback runs in the driver, so the embedded SQLite store has one writer and needs no
server. After the sweep the best trial of each channel (lowest ``best_val_ratio``) is
logged as a pyfunc model to its run and registered as a new ``staging`` version of
``pdm-<channel>-<model>``; with ``promote=True`` the promotion gate runs too. A sweep
stopped before its trials finished (Ctrl-C) registers nothing.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ray
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from pydantic import ValidationError
from ray import tune
from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.tune.experiment import Trial
from ray.tune.logger import JsonLoggerCallback
from ray.tune.result import TRAINING_ITERATION
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search.basic_variant import BasicVariantGenerator

from pdm_ray.config import Settings, SweepSettings
from pdm_ray.cores import ONE_CORE_ENV
from pdm_ray.data import largest_first, list_channels, load_channel
from pdm_ray.data.pipeline import prepare_channel
from pdm_ray.data.versioning import data_version
from pdm_ray.environment import scoped_environ
from pdm_ray.errors import ConfigError, PdmError, SweepError, UnknownSensorError
from pdm_ray.ids import validate_sensor_id
from pdm_ray.models import load_model
from pdm_ray.tracking import GateDecision, Tracking, connect_settings, end_run, promote, register_version
from pdm_ray.tracking.runs import CODE_VERSION_TAG, PARENT_RUN_TAG, code_version, start_parent_run
from tuning.space import tune_search_space
from tuning.trainable import EPOCH_METRICS, train_channel

logger = logging.getLogger(__name__)

METRIC = "val_ratio"
SELECT_METRIC = "best_val_ratio"


@dataclass(frozen=True)
class ChannelBest:
    """The winner of one channel's trials.

    Attributes:
        channel: the channel id.
        config: the sampled values of the best trial (without ``channel``).
        val_loss: its best validation MSE (normalized units).
        val_ratio: ``val_loss`` / persistence MSE on the same windows.
        epochs: epochs the trial ran.
        trials: trials of this channel that finished without error.
        run_id: the MLflow run of the best trial (holds the logged pyfunc model).
        version: the registered version (alias ``staging`` unless promoted).
        decision: the promotion gate's verdict when the sweep ran it (None when the gate
            failed: the error is in ``SweepResult.failed``).
    """

    channel: str
    config: dict[str, Any]
    val_loss: float
    val_ratio: float
    epochs: int
    trials: int
    run_id: str
    version: str
    decision: GateDecision | None = None


@dataclass(frozen=True)
class SweepResult:
    """What a sweep produced.

    Attributes:
        sweep_id: id shared by the parent run, the trial runs (``pdm.sweep_id``) and the Tune directory.
        model: forecaster kind.
        parent_run_id: the MLflow run grouping the trials.
        tracking_uri: where the runs and versions are.
        channels: the registered best trial per channel that had one, in the order asked.
        failed: channel -> error of its last failed trial, for channels without any success,
            or the error that stopped registering or gating its best trial.
        n_trials: trials run in total.
        wall_seconds: wall-clock time of ``Tuner.fit``.
        tune_path: the Tune experiment directory (checkpoints, results).
    """

    sweep_id: str
    model: str
    parent_run_id: str
    tracking_uri: str
    channels: tuple[ChannelBest, ...]
    failed: dict[str, str] = field(default_factory=dict)
    n_trials: int = 0
    wall_seconds: float = 0.0
    tune_path: str = ""


class TrialRunsCallback(MLflowLoggerCallback):
    """Tune's ``MLflowLoggerCallback`` with per-trial tags and batched metric writes.

    The base callback gives every run the same tags (here: ``mlflow.parentRunId``, sweep
    id, model, data version); the channel differs per trial, so it is added when the run
    is created. The base logs every numeric field of a result with one request each
    (about 20 SQLite transactions per epoch, all in the driver, on the cores the trials
    train on). This keeps the metrics the trainable reports plus Tune's timings, each
    with the step and time of its epoch, and writes a trial's pending epochs in one
    ``log_batch`` once ``flush_seconds`` have passed since its start or last write, and
    when the trial ends. So a run in the MLflow UI lags its trial by at most ``flush_seconds``
    (measured with ``clock``, ``time.monotonic`` unless a test passes its own).

    Tune ends an experiment it stopped (Ctrl-C) without ending the trials it was running;
    ``on_experiment_end`` closes their runs as KILLED and lists them in ``unfinished``.
    """

    METRICS = (*EPOCH_METRICS, "time_this_iter_s", "time_total_s")
    MAX_BATCH = 1000  # MLflow's limit of metrics per log_batch

    def __init__(
        self, *args: Any, flush_seconds: float = 5.0, clock: Callable[[], float] = time.monotonic, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.flush_seconds = flush_seconds
        self._clock = clock
        self._pending: dict[Trial, list[Metric]] = {}
        self._written_at: dict[Trial, float] = {}
        self._open: set[Trial] = set()
        self.unfinished: list[str] = []

    def log_trial_start(self, trial: Trial) -> None:
        if trial not in self._trial_runs:
            tags = {
                **self.tags,
                "trial_name": str(trial),
                "pdm.channel": str(trial.config["channel"]),
                "pdm.trial_id": trial.trial_id,
            }
            run = self.mlflow_util.start_run(tags=tags, run_name=str(trial))
            self._trial_runs[trial] = run.info.run_id
            params = [Param(k, str(v)) for k, v in sorted(trial.config.items())]
            MlflowClient(self.tracking_uri).log_batch(run.info.run_id, params=params)
        self._open.add(trial)
        self._written_at[trial] = self._clock()  # so a slow first epoch is written when it arrives

    def log_trial_result(self, iteration: int, trial: Trial, result: dict[str, Any]) -> None:
        step = int(result[TRAINING_ITERATION])
        stamp = int(time.time() * 1000)
        pending = self._pending.setdefault(trial, [])
        pending.extend(Metric(k, float(result[k]), stamp, step) for k in self.METRICS if k in result)
        if self._clock() - self._written_at[trial] >= self.flush_seconds:
            self._write(trial)

    def log_trial_end(self, trial: Trial, failed: bool = False) -> None:
        self._settle(trial)
        super().log_trial_end(trial, failed)

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        self.unfinished = [str(t) for t in trials if t in self._open or t.status not in (Trial.TERMINATED, Trial.ERROR)]
        self.end_open_runs()
        super().on_experiment_end(trials, **info)

    def end_open_runs(self) -> None:
        """Write the pending metrics of trials that never ended and close their runs as KILLED."""
        for trial in list(self._open):
            self._settle(trial)
            self.mlflow_util.end_run(status="KILLED", run_id=self._trial_runs[trial])

    def _settle(self, trial: Trial) -> None:
        """Write the trial's last pending metrics: it reports no more."""
        self._write(trial)
        self._written_at.pop(trial, None)
        self._open.discard(trial)

    def _write(self, trial: Trial) -> None:
        """Log the trial's pending metrics (in order) and start its next interval."""
        pending = self._pending.pop(trial, [])
        client = MlflowClient(self.tracking_uri)
        for start in range(0, len(pending), self.MAX_BATCH):
            client.log_batch(self._trial_runs[trial], metrics=pending[start : start + self.MAX_BATCH])
        self._written_at[trial] = self._clock()


def sweep_settings(
    settings: Settings,
    *,
    model: str | None = None,
    search_space: Mapping[str, Any] | None = None,
    num_samples: int | None = None,
    scheduler: str | None = None,
    max_concurrent_trials: int | None = None,
    resources_per_trial: Mapping[str, float] | None = None,
) -> SweepSettings:
    """``settings.sweep`` with the given overrides, validated (None keeps the configured value).

    Raises:
        ConfigError: an override is invalid (unknown parameter, bad bounds, ...).
    """
    update: dict[str, Any] = {
        "model": model,
        "search_space": dict(search_space) if search_space is not None else None,
        "num_samples": num_samples,
        "scheduler": scheduler,
        "max_concurrent_trials": max_concurrent_trials,
    }
    if resources_per_trial is not None:
        unknown = sorted(set(resources_per_trial) - {"cpu", "gpu"})
        if unknown:
            raise ConfigError(f"resources_per_trial: unknown resource(s) {unknown}; use cpu and gpu")
        update["cpus_per_trial"] = resources_per_trial.get("cpu")
        update["gpus_per_trial"] = resources_per_trial.get("gpu")
    doc = {**settings.sweep.model_dump(), **{k: v for k, v in update.items() if v is not None}}
    try:
        return SweepSettings.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in ("sweep", *first["loc"]))
        raise ConfigError(f"{where}: {first['msg']}") from None


def _scheduler(sweep: SweepSettings, settings: Settings) -> TrialScheduler:
    if sweep.scheduler == "fifo":
        return FIFOScheduler()
    epochs = sweep.search_space.get("epochs")
    max_t = settings.train.epochs
    if epochs is not None:
        bounds = [epochs.value] if epochs.value is not None else (epochs.choice or epochs.randint or [max_t])
        max_t = int(max(float(b) for b in bounds))
    return ASHAScheduler(
        time_attr="training_iteration",
        max_t=max_t,
        grace_period=min(sweep.grace_period, max_t),
        reduction_factor=sweep.reduction_factor,
    )


def _check_channels(channels: Sequence[str], data_dir: Path, settings: Settings) -> dict[str, int]:
    """Validate ids, presence and preprocessing of every channel before any trial starts.

    Returns each channel's training data size (values in its windows), in the given order.
    """
    ids = [validate_sensor_id(c) for c in channels]
    if not ids:
        raise ConfigError("a sweep needs at least one channel")
    if len(set(ids)) != len(ids):
        raise ConfigError(f"channels listed twice: {sorted({c for c in ids if ids.count(c) > 1})}")
    missing = sorted(set(ids) - set(list_channels(data_dir)))
    if missing:
        raise UnknownSensorError(f"{data_dir}: no train data for channel(s) {missing}")
    # The quality gate and windowing fail here, before Tune.
    return {cid: prepare_channel(load_channel(data_dir, cid, allow_missing=True), settings).X.size for cid in ids}


def _ensure_ray(settings: Settings, verbose: int) -> None:
    """Start (or attach to) Ray from ``settings.ray`` unless the caller already did.

    Worker output reaches the driver's console only when ``verbose``; trial errors are
    reported through the results either way.
    """
    if not ray.is_initialized():
        ray.init(
            address=settings.ray.address or "local",  # never attach to another Ray by accident
            namespace=settings.ray.namespace,
            num_cpus=None if settings.ray.address else settings.ray.num_cpus,
            include_dashboard=False,
            log_to_driver=verbose > 0,
            runtime_env={"env_vars": ONE_CORE_ENV},
        )


def _trial_runs(tracking: Tracking, parent_run_id: str) -> dict[str, str]:
    """trial id -> MLflow run id of the sweep's child runs."""
    runs = tracking.client.search_runs(
        [tracking.experiment_id], f"tags.`{PARENT_RUN_TAG}` = '{parent_run_id}'", max_results=10000
    )
    return {r.data.tags["pdm.trial_id"]: r.info.run_id for r in runs if "pdm.trial_id" in r.data.tags}


#: Tune reads these from the environment when ``fit`` starts; the sweep sets them for that call
#: only. Tune's default CSV and TensorBoard writers only repeat what MLflow records, at the
#: driver's expense (a TensorBoard writer thread per trial, a file write per epoch each), so
#: they are off; the sweep passes Tune's JSON logger itself, since ``result.json`` is what
#: Tune's result loading reads.
_TUNE_ENV = {"TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"}
#: Set only where the caller has not: trials checkpoint every improved epoch and keep one
#: checkpoint, which makes Tune snapshot its state often by design, so its warning about
#: that is noise.
_TUNE_ENV_DEFAULTS = {"TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0"}


#: Tune's ``fit`` installs handlers for these that stop the experiment gracefully, and leaves
#: them installed when it returns; there they would swallow a Ctrl-C after ``fit``.
_TUNE_SIGNALS = (signal.SIGINT, *((signal.SIGUSR1,) if hasattr(signal, "SIGUSR1") else ()))


@contextlib.contextmanager
def _tune_environment() -> Iterator[None]:
    """``_TUNE_ENV`` and ``_TUNE_ENV_DEFAULTS`` around ``fit``; environment and signal handlers restored after."""
    handlers = {sig: signal.getsignal(sig) for sig in _TUNE_SIGNALS}
    try:
        with scoped_environ(_TUNE_ENV, _TUNE_ENV_DEFAULTS):
            yield
    finally:
        if threading.current_thread() is threading.main_thread():  # where Tune installs them
            for sig, handler in handlers.items():
                if handler is not None:
                    signal.signal(sig, handler)


def _settings_params(settings: Settings, sweep: SweepSettings) -> dict[str, object]:
    """The settings every trial trains with but no trial samples, as ``section.field`` params.

    Without them two sweeps that differ only in, say, ``windows.l_s`` log identical params.
    """
    swept = set(sweep.search_space)
    model_doc = getattr(settings, sweep.model).model_dump(exclude=swept)
    if sweep.model == "lstm" and swept & {"layers", "units"}:
        # Sampled layers x units become lstm.layers; the half not sampled comes from the settings.
        layers = settings.lstm.layers
        model_doc.pop("layers", None)
        model_doc |= {} if "units" in swept else {"units": layers[0]}
        model_doc |= {} if "layers" in swept else {"layer_count": len(layers)}
    train = settings.train.model_dump(exclude={"model", *swept}) | {"refit": False}  # trials never refit
    sections = {
        "windows": settings.windows.model_dump(),
        "train": train,
        sweep.model: model_doc,
        "normalize": settings.normalize.model_dump(),
        "impute": settings.impute.model_dump(),
    }
    return {f"{name}.{key}": value for name, doc in sections.items() for key, value in doc.items()}


def _error_line(error: BaseException) -> str:
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def run_sweep(
    channels: Sequence[str],
    model: str | None = None,
    *,
    settings: Settings,
    data_dir: str | Path | None = None,
    search_space: Mapping[str, Any] | None = None,
    num_samples: int | None = None,
    scheduler: str | None = None,
    max_concurrent_trials: int | None = None,
    resources_per_trial: Mapping[str, float] | None = None,
    promote_best: bool = False,
    verbose: int = 0,
) -> SweepResult:
    """Tune one forecaster per channel, log every trial to MLflow, register each channel's best.

    Keyword overrides replace the matching ``settings.sweep`` field (None keeps it);
    ``search_space`` takes the YAML form, e.g. ``{"learning_rate": {"loguniform": [1e-4,
    1e-2]}}``. Ray is started from ``settings.ray`` when it is not running yet.

    Example (executed by ``tests/tuning/test_sweep.py`` with ``home`` a temporary
    directory and ``data_dir`` holding 300-step slices of the sample channels):

    >>> from pdm_ray.config import load_settings
    >>> from tuning.sweep import run_sweep
    >>> settings = load_settings("configs/sweeps/lstm.yaml", env={
    ...     "PDM_HOME": home, "PDM_WINDOWS__L_S": "30", "PDM_WINDOWS__N_PREDICTIONS": "2",
    ...     "PDM_TRAIN__EPOCHS": "2"})
    >>> result = run_sweep(["A-2", "T-1"], settings=settings, data_dir=data_dir, num_samples=2,
    ...     search_space={"learning_rate": {"loguniform": [1e-3, 1e-2]}, "units": {"choice": [8, 16]},
    ...                   "layers": {"value": 1}})
    >>> [(best.channel, best.version, best.trials) for best in result.channels]
    [('A-2', '1', 2), ('T-1', '1', 2)]

    Args:
        channels: channel ids in ``data_dir``.
        model: ``lstm`` or ``transformer`` (default ``settings.sweep.model``).
        settings: everything else (windows, train, tracking, ray, home).
        data_dir: Telemanom-layout directory (default ``settings.data.dir``).
        search_space: parameter -> ``{loguniform|uniform|randint|choice|value: ...}``.
        num_samples: sampled configs per channel.
        scheduler: ``asha`` or ``fifo``.
        max_concurrent_trials: trials running at once.
        resources_per_trial: ``{"cpu": ..., "gpu": ...}`` per trial.
        promote_best: run the promotion gate on each newly registered version.
        verbose: Tune's console verbosity (0 quiet, 1 status table).

    Raises:
        ConfigError: bad overrides or channel list.
        UnknownSensorError: a channel has no data in ``data_dir``.
        DataError: a channel's data fails its quality gate or is too short.
        TrackingError: the tracking URI is unreachable (before any trial starts).
        SweepError: no channel was registered (every trial failed, or registering did).
        KeyboardInterrupt: the sweep was stopped (Ctrl-C) before its trials finished; nothing
            is registered, the parent run and the unfinished trials' runs end KILLED.
    """
    sweep = sweep_settings(
        settings,
        model=model,
        search_space=search_space,
        num_samples=num_samples,
        scheduler=scheduler,
        max_concurrent_trials=max_concurrent_trials,
        resources_per_trial=resources_per_trial,
    )
    settings = settings.model_copy(update={"home": settings.home.resolve(), "sweep": sweep})
    data_path = Path(data_dir if data_dir is not None else settings.data.dir).resolve()
    sizes = _check_channels(channels, data_path, settings)
    ids = list(sizes)
    tracking = connect_settings(settings)
    data_tags = data_version(data_path).as_tags()
    sweep_id = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    common_tags = {"pdm.sweep_id": sweep_id, "pdm.model": sweep.model, CODE_VERSION_TAG: code_version(), **data_tags}
    parent = start_parent_run(
        tracking,
        f"sweep-{sweep_id}",
        common_tags,
        {
            "model": sweep.model,
            "channels": ",".join(ids),
            "num_samples": sweep.num_samples,
            "scheduler": sweep.scheduler,
            "max_concurrent_trials": sweep.max_concurrent_trials,
            "search_space": json.dumps({k: v.model_dump(exclude_none=True) for k, v in sweep.search_space.items()}),
            **_settings_params(settings, sweep),
        },
    )
    logger.info("sweep %s: %d channel(s) x %d sample(s) of %s", sweep_id, len(ids), sweep.num_samples, sweep.model)
    _ensure_ray(settings, verbose)
    storage = settings.home / "tune"
    trainable = tune.with_resources(
        tune.with_parameters(
            train_channel, settings_doc=settings.model_dump(mode="json"), data_dir=str(data_path), model=sweep.model
        ),
        {"cpu": sweep.cpus_per_trial, "gpu": sweep.gpus_per_trial},
    )
    trial_logger = TrialRunsCallback(
        tracking_uri=tracking.uri,
        experiment_name=settings.tracking.experiment,
        tags={PARENT_RUN_TAG: parent, **common_tags},
    )
    tuner = tune.Tuner(
        trainable,
        param_space=tune_search_space(sweep, largest_first(sizes)),
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode="min",
            num_samples=sweep.num_samples,
            scheduler=_scheduler(sweep, settings),
            # A trial actor keeps JAX imported and initialised for the next trial: seconds per trial.
            reuse_actors=True,
            # Tune ignores TuneConfig.max_concurrent_trials next to a SearchGenerator: the limit goes here.
            search_alg=BasicVariantGenerator(
                max_concurrent=sweep.max_concurrent_trials or 0, random_state=settings.train.seed
            ),
        ),
        run_config=tune.RunConfig(
            name=f"sweep-{sweep_id}",
            storage_path=str(storage),
            callbacks=[trial_logger, JsonLoggerCallback()],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            verbose=verbose,
        ),
    )
    started = time.perf_counter()
    # Tune's console reporter prints its header even at verbose=0; quiet means quiet.
    quiet = contextlib.redirect_stdout(io.StringIO()) if verbose == 0 else contextlib.nullcontext()
    try:
        with quiet, _tune_environment():
            grid = tuner.fit()
        wall = time.perf_counter() - started
        if trial_logger.unfinished:
            # Tune catches Ctrl-C, stops the trials and returns as if they had finished.
            message = f"sweep {sweep_id} was stopped with {len(trial_logger.unfinished)} trial(s) unfinished"
            logger.warning("%s; nothing is registered", message)
            raise KeyboardInterrupt(message)
        results = [grid[i] for i in range(len(grid))]
        best, failed = _register_best(
            results, ids, tracking, parent, {"pdm.sweep_id": sweep_id, **data_tags}, data_path, settings, promote_best
        )
        if not best:
            raise SweepError(
                f"sweep {sweep_id}: nothing registered: " + "; ".join(f"{c}: {e}" for c, e in failed.items())
            )
        tracking.client.log_metric(parent, "channels_registered", len(best))
        tracking.client.log_metric(parent, "mean_best_val_ratio", math.fsum(b.val_ratio for b in best) / len(best))
    except BaseException as exc:
        trial_logger.end_open_runs()  # after a second Ctrl-C Tune ends nothing
        end_run(tracking, parent, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    end_run(tracking, parent, "FINISHED")
    return SweepResult(
        sweep_id=sweep_id,
        model=sweep.model,
        parent_run_id=parent,
        tracking_uri=tracking.uri,
        channels=tuple(best),
        failed=failed,
        n_trials=len(results),
        wall_seconds=wall,
        tune_path=str(storage / f"sweep-{sweep_id}"),
    )


def _register_best(
    results: list[tune.Result],
    ids: list[str],
    tracking: Tracking,
    parent: str,
    tags: Mapping[str, str],
    data_path: Path,
    settings: Settings,
    promote_best: bool,
) -> tuple[list[ChannelBest], dict[str, str]]:
    """Register (and with ``promote_best`` gate) each channel's best trial: ``(registered, failed)``.

    A channel whose registering or gate fails goes to ``failed`` (also when its version was
    registered: it stays in the first list) and the other channels carry on.
    """
    run_of_trial = _trial_runs(tracking, parent)
    best: list[ChannelBest] = []
    failed: dict[str, str] = {}
    for cid in ids:
        mine = [r for r in results if r.config["channel"] == cid]
        ok = [r for r in mine if r.error is None and r.checkpoint is not None and SELECT_METRIC in r.metrics]
        if not ok:
            errors = [_error_line(r.error) for r in mine if r.error is not None]
            failed[cid] = errors[-1] if errors else "no trial reported a checkpoint"
            logger.warning("%s: every trial failed: %s", cid, failed[cid])
            continue
        winner = min(ok, key=lambda r: float(r.metrics[SELECT_METRIC]))
        run_id = run_of_trial[winner.metrics["trial_id"]]
        version: str | None = None
        decision: GateDecision | None = None
        try:
            with winner.checkpoint.as_directory() as ckpt:
                trained = load_model(ckpt)
            tracking.client.set_tag(run_id, "pdm.best_of_channel", "true")
            version = register_version(
                tracking,
                run_id,
                trained,
                cid,
                {**tags, "pdm.val_ratio": repr(float(winner.metrics[SELECT_METRIC]))},
            ).version
            if promote_best:
                channel = load_channel(data_path, cid, allow_missing=True)
                decision = promote(tracking, channel, settings.sweep.model, settings)
        except PdmError as exc:
            failed[cid] = f"{type(exc).__name__}: {exc}"
            logger.warning("%s: %s", cid, failed[cid])
        if version is None:
            continue
        best.append(
            ChannelBest(
                channel=cid,
                config={k: v for k, v in winner.config.items() if k != "channel"},
                val_loss=float(winner.metrics["best_val_loss"]),
                val_ratio=float(winner.metrics[SELECT_METRIC]),
                epochs=int(winner.metrics["training_iteration"]),
                trials=len(ok),
                run_id=run_id,
                version=version,
                decision=decision,
            )
        )
    return best, failed
