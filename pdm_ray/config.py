"""Typed settings: YAML file + ``PDM_*`` environment overrides -> ``Settings``.

Every component takes its own section (e.g. ``settings.threshold``); nothing reads
global state. Unknown keys are errors, so a typo in a config file never passes silently.

Environment overrides: ``PDM_HOME`` sets ``home``; ``PDM_<SECTION>__<FIELD>`` sets a
nested field (e.g. ``PDM_TRAIN__EPOCHS=5``, ``PDM_TRACKING__URI=http://...``). A text
field (``str``, ``Path`` or a choice of strings, optional or not) takes the value verbatim,
so a token like ``&x`` or ``null`` stays that string; other values are parsed as YAML, so
``5`` is an int, ``true`` a bool and ``[A-1, T-1]`` a list.
"""

from __future__ import annotations

import os
import types
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pdm_ray.errors import ConfigError

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSettings(_Section):
    """Where the Telemanom-layout data lives and which channels to use."""

    dir: Path = Path("data/sample")
    channels: list[str] | None = None


class WindowSettings(_Section):
    """Telemanom windows: ``l_s`` inputs -> the next ``n_predictions`` values of channel 0."""

    l_s: int = Field(250, gt=0)
    n_predictions: int = Field(10, gt=0)


def _ascending_limits(limits: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    if list(limits) != sorted(limits):
        raise ValueError(f"limits must be ascending (excellent <= good <= fair <= poor), got {list(limits)}")
    return limits


Limits = Annotated[tuple[float, float, float, float], AfterValidator(_ascending_limits)]
"""Upper limits of ``excellent, good, fair, poor`` for a quality check; above the last is critical."""


class NormalizeSettings(_Section):
    """Scaling fitted on train (z-score, min-max to [0, 1], or robust median/IQR).

    ``columns: value`` scales column 0 only (the one-hot command flags pass through);
    a fitted column whose scale is below ``min_scale`` is constant and is scaled by 1.
    """

    method: Literal["zscore", "minmax", "robust"] = "zscore"
    columns: Literal["value", "all"] = "value"
    min_scale: float = Field(1e-8, gt=0)


class QualitySettings(_Section):
    """Limits of the six data-quality checks and which split the training gate reads.

    Each ``*_pct``/``*_ratio`` is four ascending upper limits (excellent, good, fair, poor);
    a value above the last is critical, and a critical train report refuses to train.
    """

    missing_pct: Limits = (0.0, 1.0, 5.0, 20.0)
    outlier_z: float = Field(3.5, gt=0)
    outlier_pct: Limits = (0.5, 2.0, 10.0, 50.0)
    flatline_min_run: int = Field(10, ge=2)
    flatline_pct: Limits = (25.0, 50.0, 95.0, 100.0)
    noise_ratio: Limits = (0.2, 0.5, 0.9, 1.2)
    range_bounds: tuple[float, float] | None = None
    range_margin: float = Field(0.1, ge=0)
    range_pct: Limits = (0.0, 0.1, 1.0, 10.0)
    gap_factor: float = Field(1.5, gt=1)
    sampling_pct: Limits = (0.0, 0.1, 1.0, 10.0)
    gate: Literal["train", "train_and_test", "off"] = "train"

    @model_validator(mode="after")
    def _bounds_ordered(self) -> QualitySettings:
        if self.range_bounds is not None and not self.range_bounds[0] < self.range_bounds[1]:
            raise ValueError(f"range_bounds needs low < high, got {list(self.range_bounds)}")
        return self


class ImputeSettings(_Section):
    """Gap filling; gaps longer than ``max_gap`` steps are never filled and stay reported.

    ``seasonal`` finds its period as the highest autocorrelation peak in
    ``[min_period, max_period]`` (``max_period`` None = half the series) of at least ``min_acf``.
    """

    method: Literal["linear", "ffill", "seasonal", "kalman"] = "linear"
    max_gap: int = Field(50, ge=1)
    min_period: int = Field(2, ge=2)
    max_period: int | None = Field(None, ge=2)
    min_acf: float = Field(0.3, gt=0, lt=1)


class FeatureSettings(_Section):
    """Per-window features (``enabled`` adds them to the prepared data).

    ``widths`` are the trailing sub-windows of the rolling statistics (the full window is
    always added); every width and lag must be below ``window``.
    """

    enabled: bool = False
    window: int = Field(100, ge=4)
    step: int = Field(1, gt=0)
    widths: list[int] = Field(default_factory=lambda: [10, 30])
    quantiles: list[float] = Field(default_factory=lambda: [0.1, 0.5, 0.9])
    lags: list[int] = Field(default_factory=lambda: [1, 5, 10])
    ewma_spans: list[int] = Field(default_factory=lambda: [5, 20])
    acf_lags: list[int] = Field(default_factory=lambda: [1, 2, 5, 10])
    fft_bands: int = Field(4, gt=0)

    @model_validator(mode="after")
    def _fit_the_window(self) -> FeatureSettings:
        for name in ("widths", "lags", "ewma_spans", "acf_lags"):
            values = getattr(self, name)
            if any(v <= 0 for v in values) or len(set(values)) != len(values):
                raise ValueError(f"{name} must be distinct positive integers, got {values}")
        too_wide = [v for v in [*self.widths, *self.lags, *self.acf_lags] if v >= self.window]
        if too_wide:
            raise ValueError(f"widths/lags {too_wide} must be smaller than window={self.window}")
        if any(not 0 <= q <= 1 for q in self.quantiles) or len(set(self.quantiles)) != len(self.quantiles):
            raise ValueError(f"quantiles must be distinct values in [0, 1], got {self.quantiles}")
        if self.fft_bands > self.window // 2:
            raise ValueError(
                f"fft_bands={self.fft_bands} exceeds the {self.window // 2} frequency bins of window={self.window}"
            )
        return self


class LSTMSettings(_Section):
    """The paper's LSTM: 2 stacked layers of 80 units, dropout 0.3; ``members`` as for the Transformer."""

    layers: list[int] = Field(default_factory=lambda: [80, 80], min_length=1)
    dropout: float = Field(0.3, ge=0.0, lt=1.0)
    members: int = Field(1, ge=1)


class TransformerSettings(_Section):
    """Encoder-only transformer over patches of ``patch_len`` steps, with sinusoidal positions.

    Patches of 10 steps make a 250-step window 25 tokens (PatchTST, Nie et al. 2023). Two
    heads, not four: with one token per step, the ``[B, heads, l_s, l_s]`` attention weights
    dominate a CPU train step (BENCHMARKS.md, "Transformer train step").

    ``members`` networks, each trained on its own (initial parameters, dropout, batch order,
    early stopping), and their forecasts averaged (a deep ensemble, Lakshminarayanan et al.
    2017): the average's squared error is never above the members' mean (Jensen), and seeds
    alone moved a single Transformer's SMAP F1 by 0.06 (BENCHMARKS.md). Three cost about
    half the LSTM's training time on SMAP; the LSTM keeps one, as in the paper. Twelve
    forecast a little better on held-out training data but scored no higher F1 on SMAP, at
    four times the cost of every forecast.
    """

    d_model: int = Field(64, gt=0)
    num_heads: int = Field(2, gt=0)
    num_layers: int = Field(2, gt=0)
    ff_dim: int = Field(128, gt=0)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    patch_len: int = Field(10, gt=0)
    members: int = Field(3, ge=1)

    @model_validator(mode="after")
    def _heads_divide_d_model(self) -> TransformerSettings:
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})")
        return self


class TrainSettings(_Section):
    """Training loop; defaults are Hundman et al. (2018)'s.

    ``refit``: after early stopping on the time-ordered validation split has chosen each
    network's epoch count, train it again on all windows for that many epochs, so the model
    learns the train series' latest part too (about 2x the training time). Off by default.
    Tune trials never refit (their checkpoints are the validated params), and the promotion
    gate refuses a refit model without ``force``: the windows it scores were trained on.
    """

    model: Literal["lstm", "transformer"] = "lstm"
    learning_rate: float = Field(1e-3, gt=0)
    batch_size: int = Field(64, gt=0)
    epochs: int = Field(35, gt=0)
    patience: int = Field(10, ge=0)
    min_delta: float = Field(3e-4, ge=0)
    validation_split: float = Field(0.2, gt=0, lt=1)
    seed: int = 0
    refit: bool = False


class SpotSettings(_Section):
    """SPOT, the peaks-over-threshold detector (Siffer et al., KDD 2017).

    ``level`` is the calibration quantile above which values are peaks, ``risk`` the
    probability ``q`` of the alarm threshold; at least ``min_peaks`` peaks are needed to fit
    the generalized Pareto tail, and only the latest ``max_peaks`` are kept for refits.
    """

    level: float = Field(0.98, gt=0, lt=1)
    risk: float = Field(1e-4, gt=0, lt=1)
    min_peaks: int = Field(10, ge=3)
    max_peaks: int = Field(5000, ge=3)

    @model_validator(mode="after")
    def _peaks_ordered(self) -> SpotSettings:
        if self.max_peaks < self.min_peaks:
            raise ValueError(f"max_peaks ({self.max_peaks}) must be >= min_peaks ({self.min_peaks})")
        return self


class ThresholdSettings(_Section):
    """Nonparametric dynamic threshold (Hundman et al. 2018, arXiv:1802.04431).

    Windows hold ``window_size`` batches of ``batch_size`` errors; the EWMA span is
    ``int(batch_size * window_size * smoothing_perc)``. Epsilon is searched over
    ``z_min, z_min + z_step, ..., <= z_max``. A window is skipped when its errors are small
    next to its values (``relative_error_scale``) or in absolute terms (``min_error_scale``).
    A candidate epsilon may make at most ``max_sequences`` sequences and flag less than
    ``max_anomalous_fraction`` of the window (the reference implementation's guard rails).
    The first ``warmup`` smoothed errors, where the EWMA has little history, are replaced by
    the mean of the first ``2 * warmup`` (Telemanom does this over its first ``l_s = 250``).
    The first ``ignore_first`` points of a series of at least one window are never flagged;
    they count as nominal when later windows prune (Telemanom ignores its first ``2 * l_s``
    errors, where the smoothed errors have too little history).
    ``prune_scope`` says what the pruning of a window compares: ``new_region`` (the reference
    implementation's) cuts the sequences to the points the window judges and compares their
    maxima with the largest error no window flagged; ``window`` compares the uncut sequences
    of the whole window (pdm-ray's earlier rule; see ``detection.threshold``).
    ``spot`` configures the extreme-value alternative (``pdm_ray.detection.spot``).
    """

    batch_size: int = Field(70, gt=0)
    window_size: int = Field(30, gt=0)
    smoothing_perc: float = Field(0.05, gt=0, le=1)
    error_buffer: int = Field(100, ge=0)
    p: float = Field(0.13, ge=0, lt=1)
    z_min: float = Field(2.5, gt=0)
    z_max: float = Field(12.0, gt=0)
    z_step: float = Field(0.5, gt=0)
    min_error_scale: float = Field(0.05, ge=0)
    relative_error_scale: float = Field(0.05, ge=0)
    max_sequences: int = Field(5, gt=0)
    max_anomalous_fraction: float = Field(0.5, gt=0, le=1)
    warmup: int = Field(250, ge=0)
    ignore_first: int = Field(500, ge=0)
    prune_scope: Literal["new_region", "window"] = "new_region"
    spot: SpotSettings = SpotSettings()

    @model_validator(mode="after")
    def _consistent(self) -> ThresholdSettings:
        if self.z_max < self.z_min:
            raise ValueError(f"z_max ({self.z_max}) must be >= z_min ({self.z_min})")
        if 2 * self.warmup > self.batch_size * self.window_size:
            raise ValueError(
                f"2 * warmup ({2 * self.warmup}) must fit in one window of batch_size * window_size "
                f"({self.batch_size * self.window_size}) points"
            )
        if int(self.batch_size * self.window_size * self.smoothing_perc) < 1:
            raise ValueError(
                f"batch_size * window_size * smoothing_perc = "
                f"{self.batch_size * self.window_size * self.smoothing_perc:g} gives an EWMA span below 1"
            )
        return self


class TrackingSettings(_Section):
    """MLflow tracking and registry. ``uri`` None means SQLite under ``home``.

    ``promotion_margin`` is relative: a staging version replaces production only when its
    validation MSE is below ``(1 - promotion_margin) *`` production's. ``connect_timeout_s``
    bounds the reachability check of an HTTP tracking server, so a wrong URI fails fast.
    """

    uri: str | None = None
    experiment: str = "pdm-ray"
    promotion_margin: float = Field(0.0, ge=0, lt=1)
    connect_timeout_s: float = Field(5.0, gt=0)


SWEEP_PARAMETERS: dict[str, frozenset[str]] = {
    "lstm": frozenset({"learning_rate", "batch_size", "epochs", "layers", "units", "dropout"}),
    "transformer": frozenset(
        {
            "learning_rate",
            "batch_size",
            "epochs",
            "d_model",
            "num_heads",
            "num_layers",
            "ff_dim",
            "dropout",
            "patch_len",
        }
    ),
}


class SearchDimension(_Section):
    """One dimension of a sweep's search space: exactly one of the fields is set.

    ``loguniform``/``uniform`` are ``[low, high]``, ``randint`` is ``[low, high)``,
    ``choice`` lists the options and ``value`` fixes the parameter.
    """

    loguniform: tuple[float, float] | None = None
    uniform: tuple[float, float] | None = None
    randint: tuple[int, int] | None = None
    choice: list[int | float | str] | None = Field(None, min_length=1)
    value: int | float | str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SearchDimension:
        given = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"set exactly one of {', '.join(type(self).model_fields)} (got {given or 'none'})")
        for name in ("loguniform", "uniform", "randint"):
            bounds = getattr(self, name)
            if bounds is not None and not bounds[0] < bounds[1]:
                raise ValueError(f"{name} needs low < high, got {list(bounds)}")
        if self.loguniform is not None and self.loguniform[0] <= 0:
            raise ValueError(f"loguniform needs low > 0, got {self.loguniform[0]}")
        return self


class SweepSettings(_Section):
    """A Ray Tune sweep over channels (one Tuner, channel as a grid dimension).

    ``search_space`` keys are the swept parameters of ``model`` (see ``SWEEP_PARAMETERS``);
    the LSTM's ``layers`` x ``units`` become ``lstm.layers = [units] * layers``. ASHA
    (Li et al. 2018, arXiv:1810.05934) stops weak trials early on ``val_ratio``.
    """

    model: Literal["lstm", "transformer"] = "lstm"
    num_samples: int = Field(4, gt=0)
    max_concurrent_trials: int | None = Field(2, gt=0)
    scheduler: Literal["asha", "fifo"] = "asha"
    grace_period: int = Field(2, gt=0)
    reduction_factor: int = Field(2, gt=1)
    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float = Field(0.0, ge=0)
    search_space: dict[str, SearchDimension] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_parameters(self) -> SweepSettings:
        unknown = sorted(set(self.search_space) - SWEEP_PARAMETERS[self.model])
        if unknown:
            allowed = ", ".join(sorted(SWEEP_PARAMETERS[self.model]))
            raise ValueError(f"unknown {self.model} sweep parameter(s) {unknown}; allowed: {allowed}")
        return self


DriftTestName = Literal["ks", "mann_whitney", "chi2", "psi", "js", "wasserstein"]
SeverityName = Literal["none", "low", "medium", "high", "critical"]


class PValueLimits(_Section):
    """P-value limits of a hypothesis drift test: ``p < low`` is severity low, ..., ``p < critical`` critical."""

    low: float = Field(0.05, gt=0, lt=1)
    medium: float = Field(0.01, gt=0, lt=1)
    high: float = Field(1e-3, gt=0, lt=1)
    critical: float = Field(1e-6, gt=0, lt=1)

    @model_validator(mode="after")
    def _decreasing(self) -> PValueLimits:
        if not self.low > self.medium > self.high > self.critical:
            raise ValueError(f"p-value limits must decrease low > medium > high > critical, got {self.model_dump()}")
        return self


class StatisticLimits(_Section):
    """Statistic limits of a distance drift test: ``statistic >= low`` is severity low, ..."""

    low: float = Field(gt=0)
    medium: float = Field(gt=0)
    high: float = Field(gt=0)
    critical: float = Field(gt=0)

    @model_validator(mode="after")
    def _increasing(self) -> StatisticLimits:
        if not self.low < self.medium < self.high < self.critical:
            raise ValueError(f"statistic limits must increase low < medium < high < critical, got {self.model_dump()}")
        return self


class DriftSettings(_Section):
    """Drift tests (``pdm_ray.drift``) and the stream ``DriftMonitor``.

    ``n_bins`` reference quantile bins serve chi-square, PSI and Jensen–Shannon;
    ``min_samples`` is the smallest reference or current sample a check accepts;
    ``current_size`` is the monitor's sliding window. Wasserstein limits are in reference
    standard deviations, Jensen–Shannon limits in bits.
    """

    tests: tuple[DriftTestName, ...] = ("ks", "mann_whitney", "chi2", "psi", "js", "wasserstein")
    n_bins: int = Field(10, ge=2)
    psi_epsilon: float = Field(1e-4, gt=0, lt=1)
    min_samples: int = Field(50, ge=2)
    current_size: int = Field(500, gt=0)
    ks: PValueLimits = PValueLimits()
    mann_whitney: PValueLimits = PValueLimits()
    chi2: PValueLimits = PValueLimits()
    psi: StatisticLimits = StatisticLimits(low=0.1, medium=0.2, high=0.3, critical=0.5)
    js: StatisticLimits = StatisticLimits(low=0.02, medium=0.04, high=0.06, critical=0.1)
    wasserstein: StatisticLimits = StatisticLimits(low=0.15, medium=0.3, high=0.5, critical=1.0)

    @model_validator(mode="after")
    def _consistent(self) -> DriftSettings:
        if not self.tests or len(set(self.tests)) != len(self.tests):
            raise ValueError(f"tests must be a non-empty list without repeats, got {list(self.tests)}")
        if self.current_size < self.min_samples:
            raise ValueError(f"current_size ({self.current_size}) must be at least min_samples ({self.min_samples})")
        return self


class TriggerSettings(_Section):
    """One automatic retraining trigger: on/off and the cooldown after it fires."""

    enabled: bool = True
    cooldown_s: float = Field(21600.0, ge=0)


class DriftTriggerSettings(TriggerSettings):
    """Retrain when a drift check reaches ``min_severity``."""

    min_severity: SeverityName = "high"

    @model_validator(mode="after")
    def _not_none(self) -> DriftTriggerSettings:
        if self.min_severity == "none":
            raise ValueError("min_severity 'none' would retrain on every check; use low..critical")
        return self


class DegradationTriggerSettings(TriggerSettings):
    """Retrain when the rolling forecast error exceeds ``factor`` x the model's validation error."""

    factor: float = Field(1.5, gt=0)
    min_points: int = Field(100, gt=0)


class QualityTriggerSettings(TriggerSettings):
    """Retrain when data quality stays poor or critical for ``duration_s``."""

    duration_s: float = Field(1800.0, ge=0)


class ScheduleTriggerSettings(TriggerSettings):
    """Retrain when the production model is older than ``max_age_s``."""

    cooldown_s: float = Field(86400.0, ge=0)
    max_age_s: float = Field(7 * 86400.0, gt=0)


class RetrainingSettings(_Section):
    """The retraining policy (``pdm_ray.retraining``): five triggers and a global cap.

    Each automatic trigger has its own cooldown; manual requests ignore cooldowns and
    are only stopped by ``max_concurrent`` (retrains in flight across the state's sensors).
    """

    max_concurrent: int = Field(1, gt=0)
    drift: DriftTriggerSettings = DriftTriggerSettings()
    degradation: DegradationTriggerSettings = DegradationTriggerSettings()
    quality: QualityTriggerSettings = QualityTriggerSettings()
    schedule: ScheduleTriggerSettings = ScheduleTriggerSettings()


class RaySettings(_Section):
    """Ray connection. ``address`` None starts a local cluster."""

    address: str | None = None
    namespace: str = "pdm"
    num_cpus: int | None = Field(None, gt=0)


class ActorsSettings(_Section):
    """Per-sensor actors (``actors/``) and their durable state under ``home/sensors/<id>/``.

    Each actor keeps the last ``buffer_size`` readings (at least ``windows.l_s`` for scoring),
    logs every accepted batch to its write-ahead log (``fsync``: flushed to disk before the
    ack) and snapshots its state every ``snapshot_every`` batches. Quality is assessed every
    ``quality_every`` batches over the last ``quality_window`` readings; once the stream holds
    ``drift_reference_size`` readings, the newest that many become the drift reference (a
    first batch larger than that contributes its tail) until ``reset_reference``.
    Without a model for its sensor an actor asks again after ``model_retry_s`` seconds.
    ``max_restarts`` -1 restarts an actor forever. The mean squared forecast error over the
    last ``error_window`` scored readings feeds the retraining policy's degradation trigger;
    the Fleet evaluates that policy every ``retrain_check_s`` seconds (0: only when asked).
    ``forecaster`` says where the actors get predictions from the production models: the
    fleet's shared ``ModelHost`` actor (``model_host``) or the Serve application's model
    deployment (``serve``; ``actors.forecaster.production_forecaster``).
    """

    buffer_size: int = Field(10_000, gt=0)
    snapshot_every: int = Field(100, gt=0)
    fsync: bool = True
    max_batch_readings: int = Field(100_000, gt=0)
    recent_events: int = Field(100, ge=0)
    quality_every: int = Field(10, gt=0)
    quality_window: int = Field(2_000, ge=3)
    drift_reference_size: int = Field(2_000, gt=0)
    model_retry_s: float = Field(30.0, ge=0)
    max_restarts: int = Field(-1, ge=-1)
    error_window: int = Field(1_000, gt=0)
    retrain_check_s: float = Field(0.0, ge=0)
    forecaster: Literal["model_host", "serve"] = "model_host"

    @model_validator(mode="after")
    def _fit_in_buffer(self) -> ActorsSettings:
        for name in ("quality_window", "drift_reference_size"):
            if getattr(self, name) > self.buffer_size:
                raise ValueError(f"{name} ({getattr(self, name)}) must not exceed buffer_size ({self.buffer_size})")
        return self


class ServeAutoscalingSettings(_Section):
    """Serve autoscaling of the model deployment (replicas follow ongoing requests)."""

    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(2, gt=0)
    target_ongoing_requests: float = Field(16.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> ServeAutoscalingSettings:
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas ({self.max_replicas}) must be >= min_replicas ({self.min_replicas})")
        return self


class ServeSettings(_Section):
    """Ray Serve HTTP API (``serve_apps``).

    Binds to loopback unless ``host`` says otherwise. ``auth_token`` (or env
    ``PDM_SERVE__AUTH_TOKEN``) turns on bearer-token auth for every route but ``/healthz``.
    Each ingress replica caches a sensor's production version for ``version_ttl_s``
    seconds (``POST /v1/models/reload`` forgets it at once); a sensor with several
    registered kinds is served by the first of ``model_kinds`` that has a production
    version. The model deployment keeps ``max_models_per_replica`` models per replica and
    batches up to ``batch_max_size`` calls of one model, waiting at most
    ``batch_wait_timeout_s``. With ``ingress_batching`` each ingress replica sends the
    requests for one model that arrive while two calls per model replica are out as one call
    of up to ``batch_max_size`` windows (``serve_apps.call_batching``); without, one call per request.
    ``grpc_transport`` sends requests from the proxy to the ``Api`` replicas, and calls from
    ``Api`` to ``SensorModels``, over the replicas' gRPC servers instead of as Ray actor calls;
    the proxy's half is a switch of the whole Ray cluster (``serve_apps.serve_env``).
    ``model_autoscaling`` (when set) replaces ``model_replicas``.
    Each replica reserves ``replica_num_cpus`` CPUs. ``direct_ingress_port`` (when set) makes
    each ``Api`` replica also answer HTTP itself, from that port up, skipping the proxy's hop;
    ``one_event_loop`` saves two thread hops per request in each of pdm-ray's replicas. The
    first is a switch of the whole Ray cluster, the second travels in the replicas' runtime
    env (docs/serve.md).
    """

    host: str = "127.0.0.1"
    port: int = Field(8000, gt=0, lt=65536)
    auth_token: str | None = None
    max_body_bytes: int = Field(8 * 1024 * 1024, gt=0)
    max_window_points: int = Field(100_000, gt=0)
    max_bulk_windows: int = Field(256, gt=0)
    max_models_per_replica: int = Field(8, gt=0)
    model_kinds: list[Literal["lstm", "transformer"]] = Field(
        default_factory=lambda: ["lstm", "transformer"], min_length=1
    )
    version_ttl_s: float = Field(30.0, ge=0)
    ingress_replicas: int = Field(1, gt=0)
    model_replicas: int = Field(1, gt=0)
    model_autoscaling: ServeAutoscalingSettings | None = None
    max_ongoing_requests: int = Field(64, gt=0)
    replica_num_cpus: float = Field(0.5, ge=0)
    batch_max_size: int = Field(16, gt=0)
    batch_wait_timeout_s: float = Field(0.002, ge=0)
    ingress_batching: bool = True
    grpc_transport: bool = True
    fleet_actor: str = "fleet"
    direct_ingress_port: int | None = Field(None, gt=0, lt=65536)
    one_event_loop: bool = False

    @field_validator("auth_token")
    @classmethod
    def _token_not_blank(cls, token: str | None) -> str | None:
        # A blank token is falsy, so the API would silently run without auth.
        if token is not None and not token.strip():
            raise ValueError("must not be blank (leave it unset for no auth)")
        return token


class DashboardSettings(_Section):
    """The operator dashboard (``GET /dashboard`` on the Serve app) and its alert limits.

    The page polls every ``refresh_s`` seconds; the drill-down plots the newest
    ``series_points`` readings (at most ``actors.buffer_size`` are kept), the fleet table
    shows each sensor's last ``recent_events`` anomalies, and the registry (model versions)
    is read at most every ``registry_ttl_s`` seconds. A sensor gets an alert when its
    rolling forecast RMSE (over ``actors.error_window`` scored readings, at least
    ``min_rmse_points``) exceeds ``max_rmse_ratio`` x its production model's validation RMSE,
    when more than ``max_events_per_hour`` anomalies ended in the last hour of its own
    timestamps, when drift reaches ``drift_severity``, or when quality is one of
    ``quality_levels``. Links into the MLflow UI use ``mlflow_ui_url``, else the tracking
    URI when it is http(s), else ``http://127.0.0.1:5000`` (``mlflow ui`` on the store).
    """

    refresh_s: float = Field(5.0, gt=0)
    series_points: int = Field(2_000, gt=0)
    recent_events: int = Field(5, ge=0)
    history_limit: int = Field(50, gt=0)
    registry_ttl_s: float = Field(10.0, ge=0)
    max_rmse_ratio: float = Field(2.0, gt=0)
    min_rmse_points: int = Field(100, gt=0)
    max_events_per_hour: float = Field(3.0, ge=0)
    drift_severity: SeverityName = "high"
    quality_levels: tuple[Literal["excellent", "good", "fair", "poor", "critical"], ...] = ("poor", "critical")
    mlflow_ui_url: str | None = None


class RunSettings(_Section):
    """Sizes of the main job (``pdm-ray run``), chosen so it finishes in minutes on 2 cores.

    ``epochs`` and ``sweep_samples`` shrink the Tune sweep of the main job only; ``pdm-ray
    tune`` and the benchmark use the ``train`` and ``sweep`` sections unchanged.
    """

    epochs: int = Field(4, gt=0)
    sweep_samples: int = Field(2, gt=0)
    learning_rates: list[float] = Field(default_factory=lambda: [1e-3, 3e-3], min_length=1)
    replay_batch_size: int = Field(500, gt=0)
    report: Path | None = None  # None = <home>/report.html


class Settings(_Section):
    """The whole resolved configuration."""

    home: Path = Path(".pdm_ray")
    compile_cache: bool = True  # share XLA compilations between training processes (pdm_ray.models.compile_cache)
    data: DataSettings = DataSettings()
    windows: WindowSettings = WindowSettings()
    normalize: NormalizeSettings = NormalizeSettings()
    quality: QualitySettings = QualitySettings()
    impute: ImputeSettings = ImputeSettings()
    features: FeatureSettings = FeatureSettings()
    lstm: LSTMSettings = LSTMSettings()
    transformer: TransformerSettings = TransformerSettings()
    train: TrainSettings = TrainSettings()
    threshold: ThresholdSettings = ThresholdSettings()
    tracking: TrackingSettings = TrackingSettings()
    sweep: SweepSettings = SweepSettings()
    drift: DriftSettings = DriftSettings()
    retraining: RetrainingSettings = RetrainingSettings()
    ray: RaySettings = RaySettings()
    actors: ActorsSettings = ActorsSettings()
    serve: ServeSettings = ServeSettings()
    dashboard: DashboardSettings = DashboardSettings()
    run: RunSettings = RunSettings()

    @field_validator("home", mode="before")
    @classmethod
    def _home_not_empty(cls, home: Any) -> Any:
        # Path("") is the working directory: an empty PDM_HOME must not scatter state there.
        if isinstance(home, str) and not home.strip():
            raise ValueError("must not be empty")
        return home

    def public_dump(self) -> dict[str, Any]:
        """The settings as JSON data to print or write next to results: secrets masked."""
        data = self.model_dump(mode="json")
        if data["serve"]["auth_token"] is not None:
            data["serve"]["auth_token"] = "***"
        return data

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking URI: the configured one, else SQLite under ``home``."""
        if self.tracking.uri:
            return self.tracking.uri
        return f"sqlite:///{(self.home / 'mlflow.db').resolve()}"

    @property
    def compile_cache_dir(self) -> Path | None:
        """Where training processes keep compiled XLA programs: ``home/jax_cache``; None when turned off."""
        return (self.home / "jax_cache").resolve() if self.compile_cache else None


def _is_text_field(path: Sequence[str]) -> bool:
    """Whether ``path`` names a field holding text: ``str``, a ``Path`` or a ``Literal`` of strings, optional or not.

    Such a field takes its ``PDM_*`` value verbatim: as YAML, ``&tok`` is an anchor, ``null``
    None, ``a #b`` just ``a`` and ``0123`` a number.
    """
    node: Any = Settings
    for part in path:
        if not (isinstance(node, type) and issubclass(node, BaseModel)) or part not in node.model_fields:
            return False
        annotation = node.model_fields[part].annotation
        union = get_origin(annotation) in (Union, types.UnionType)
        kinds = [a for a in get_args(annotation) if a is not type(None)] if union else [annotation]
        node = kinds[0] if len(kinds) == 1 else None
    if get_origin(node) is Literal:
        return all(isinstance(v, str) for v in get_args(node))
    return isinstance(node, type) and issubclass(node, str | PurePath)


def _env_overrides(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """Nested overrides from ``PDM_*`` variables, and which variable set each field path.

    Raises:
        ConfigError: a non-text value is not valid YAML (named by its variable).
    """
    out: dict[str, Any] = {}
    sources: dict[tuple[str, ...], str] = {}
    for key, raw in env.items():
        if not key.startswith("PDM_"):
            continue
        path = key[4:].lower().split("__")
        if path[0] not in Settings.model_fields:
            continue
        value = raw
        if raw and not _is_text_field(path):
            try:
                value = yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                raise ConfigError(f"environment variable {key}: not valid YAML: {str(exc).splitlines()[0]}") from exc
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
        sources[tuple(path)] = key
    return out, sources


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _describe(error: ValidationError, source: str, env_sources: dict[tuple[str, ...], str]) -> str:
    first = error.errors()[0]
    loc = tuple(str(p) for p in first["loc"])
    field = ".".join(loc) or "<root>"
    for n in range(len(loc), 0, -1):
        if loc[:n] in env_sources:
            source = f"environment variable {env_sources[loc[:n]]}"
            break
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    got = first.get("input")
    detail = "" if first["type"] == "extra_forbidden" or isinstance(got, dict) else f" (got {got!r})"
    more = len(error.errors()) - 1
    suffix = f" [+{more} more error(s)]" if more else ""
    return f"{source}: {field}: {msg}{detail}{suffix}"


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Load settings from a YAML file (default ``configs/default.yaml``) plus env overrides.

    Args:
        path: YAML file; None uses the packaged default file when it exists.
        env: environment mapping (default ``os.environ``).

    Raises:
        ConfigError: the file is missing or unreadable, or a field is invalid. The message
            names the file, the field path and what was expected.
    """
    env = os.environ if env is None else env
    source = Path(path) if path is not None else DEFAULT_CONFIG
    raw: dict[str, Any] = {}
    if path is not None or source.exists():
        if not source.is_file():
            raise ConfigError(f"{source}: config file not found")
        try:
            loaded = yaml.safe_load(source.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML: {str(exc).splitlines()[0]}") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{source}: cannot read config file: {exc}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{source}: expected a mapping at the top level, got {type(loaded).__name__}")
        raw = loaded
    overrides, env_sources = _env_overrides(env)
    merged = _merge(raw, overrides)
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, str(source), env_sources)) from None
