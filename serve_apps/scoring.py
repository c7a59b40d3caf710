"""Score and forecast request windows with a loaded model: the Ray-free half of serving.

Telemanom scoring (Hundman et al. 2018, arXiv:1802.04431): a window ``[T]`` gives one-step
predictions for indices ``l_s .. T-1`` (the first ``l_s`` points are context); their
errors, in the units of ``values`` (as the promotion gate scores them), go through the
core's dynamic threshold. All numerics are the core's
(``pdm_ray.models.predict``, ``pdm_ray.detection.detect``); this module validates shapes
against the model, stacks the windows of many requests into one forward pass and maps
indices back to each request. The model deployment and the benchmark's in-process
baseline both call it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt

from pdm_ray.config import ThresholdSettings
from pdm_ray.data.normalize import Normalizer
from pdm_ray.data.windows import input_windows
from pdm_ray.detection import detect
from pdm_ray.detection.smoothing import short_series_settings
from pdm_ray.errors import DataError, PdmError
from pdm_ray.tracking.registry import load_version
from pdm_ray.tracking.runs import Tracking
from serve_apps.errors import ApiError

if TYPE_CHECKING:  # JAX loads in the model replicas, which predict, not in the ingress
    from pdm_ray.models import TrainedModel

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class WindowInput:
    """One request's readings.

    Attributes:
        values: float32 ``[T]``, channel 0.
        commands: float32 ``[T, C]`` command columns, or None for a one-feature model.
        horizon: forecast steps (None: the model's ``n_predictions``); unused by detection.
    """

    values: npt.NDArray[np.float32] = field(repr=False)
    commands: npt.NDArray[np.float32] | None = field(default=None, repr=False)
    horizon: int | None = None


@dataclass(frozen=True)
class WindowScores:
    """Telemanom scores of one window, in the units of ``values``.

    Arrays are float32 ``[T - l_s]``; element ``i`` belongs to window index ``l_s + i``.

    Attributes:
        name: registered model name used.
        version: its version.
        l_s: context length, the index of the first scored point.
        predictions: one-step predictions.
        smoothed_errors: EWMA of the absolute errors.
        threshold: epsilon of the threshold window that judged each point.
        scores: dimensionless point scores (positive: above a threshold).
        sequences: ``(start, end, score)`` with inclusive indices into the submitted window.
    """

    name: str
    version: str
    l_s: int
    predictions: npt.NDArray[np.float32] = field(repr=False)
    smoothed_errors: npt.NDArray[np.float32] = field(repr=False)
    threshold: npt.NDArray[np.float32] = field(repr=False)
    scores: npt.NDArray[np.float32] = field(repr=False)
    sequences: tuple[tuple[int, int, float], ...]


@dataclass(frozen=True)
class WindowForecast:
    """The next ``horizon`` values of channel 0 after a window, float32, units of ``values``."""

    name: str
    version: str
    values: npt.NDArray[np.float32] = field(repr=False)


@dataclass(frozen=True)
class ServedModel:
    """A loaded model version and the normalizer its inputs went through in training."""

    name: str
    version: str
    model: TrainedModel = field(repr=False)
    normalizer: Normalizer | None = field(default=None, repr=False)

    def to_values(self, predictions: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Model outputs of channel 0 (any shape) back in the units of ``values``, float32."""
        if self.normalizer is None:
            return np.asarray(predictions, dtype=np.float32)
        return self.normalizer.inverse_value(predictions)

    def series(self, window: WindowInput) -> npt.NDArray[np.float32]:
        """The window as the model's input ``[T, F]``, normalized as in training.

        Raises:
            ApiError: 422 when the command columns do not match the model's features.
        """
        n_commands = self.model.spec.n_features - 1
        got = 0 if window.commands is None else int(window.commands.shape[1])
        if got != n_commands:
            need = "no command columns" if n_commands == 0 else f"{n_commands} command columns"
            detail = f"model {self.name}/{self.version} needs {need}, got {got}"
            raise ApiError(422, "invalid_input", detail, "commands")
        series = window.values[:, None]
        if n_commands:
            series = np.concatenate([series, window.commands], axis=1)
        if self.normalizer is not None:
            series = self.normalizer.transform(series)
        return np.ascontiguousarray(series, dtype=np.float32)


def load_served(tracking: Tracking, model_id: str) -> ServedModel:
    """Load registered version ``model_id = "<name>/<version>"`` and compile its forward pass.

    Raises:
        ApiError: 400 for a malformed id; 503 when the version cannot be downloaded or loaded.
    """
    name, _, version = model_id.rpartition("/")
    if not name or not version:
        raise ApiError(400, "invalid_model_id", f"model id must be '<name>/<version>', got {model_id!r}")
    try:
        model = load_version(tracking, name, version)
    except PdmError as exc:  # the stored model is unusable: a server-side fault, not bad input
        raise ApiError(503, "model_unavailable", f"cannot load {model_id}: {exc}") from exc
    normalizer = Normalizer.from_dict(model.normalizer) if model.normalizer is not None else None
    _predict(model, np.zeros((1, model.spec.l_s, model.spec.n_features), np.float32))
    logger.info("loaded %s version %s (%s, l_s=%d)", name, version, model.spec.kind, model.spec.l_s)
    return ServedModel(name=name, version=version, model=model, normalizer=normalizer)


def _too_few(l_s: int, got: int, need: int, what: str) -> ApiError:
    return ApiError(422, "too_few_points", f"{what} needs at least {need} values (l_s={l_s}), got {got}", "values")


def score_windows(
    served: ServedModel, windows: list[WindowInput], config: ThresholdSettings
) -> list[WindowScores | ApiError]:
    """Telemanom scores of every window, with one forward pass over all of them.

    Args:
        served: the model.
        windows: ``k`` windows of lengths ``T_i > l_s``.
        config: dynamic-threshold settings.

    Returns:
        ``k`` outcomes in order: ``WindowScores``, or an ``ApiError`` (422) for a window
        that is too short, whose command columns do not fit the model, or whose extreme
        values make the model's predictions or errors non-finite. Windows share a forward
        pass, so each is checked on its own: one caller's bad window fails only its call.
    """
    l_s = served.model.spec.l_s
    out: list[Any] = [None] * len(windows)
    inputs: list[tuple[int, npt.NDArray[np.float32]]] = []
    for i, window in enumerate(windows):
        if len(window.values) <= l_s:
            out[i] = _too_few(l_s, len(window.values), l_s + 1, "detection")
            continue
        try:
            inputs.append((i, served.series(window)))
        except ApiError as exc:
            out[i] = exc
    if inputs:
        stacked = [input_windows(series, l_s) for _, series in inputs]  # [T_i - l_s, l_s, F] each
        predictions = _predict(served.model, np.concatenate(stacked))[:, 0]
        bounds = np.cumsum([0] + [len(x) for x in stacked])
        for (i, _), lo, hi in zip(inputs, bounds[:-1], bounds[1:], strict=True):
            try:
                out[i] = _scores(served, served.to_values(predictions[lo:hi]), windows[i].values[l_s:], config)
            except DataError as exc:
                out[i] = _unusable(exc)
    return out


def _unusable(exc: DataError) -> ApiError:
    """A window whose predictions or errors the core refuses (non-finite) as its own 422."""
    return ApiError(422, "invalid_input", f"the window cannot be used with this model: {exc}", "values")


def _scores(
    served: ServedModel,
    predictions: npt.NDArray[np.float32],
    actual: npt.NDArray[np.float32],
    config: ThresholdSettings,
) -> WindowScores:
    """Threshold one window's errors, in the units of ``values`` (as the promotion gate scores)."""
    l_s = served.model.spec.l_s
    result = detect(predictions - actual, actual, short_series_settings(config, len(actual)))
    return WindowScores(
        name=served.name,
        version=served.version,
        l_s=l_s,
        predictions=predictions,
        smoothed_errors=result.smoothed_errors,
        threshold=result.threshold,
        scores=result.point_scores,
        sequences=tuple((s.start + l_s, s.end + l_s, float(s.score)) for s in result.sequences),
    )


def forecast_windows(served: ServedModel, windows: list[WindowInput]) -> list[WindowForecast | ApiError]:
    """Forecast ``horizon`` steps after each window's last ``l_s`` points, one forward pass.

    Forecasts are the model's direct ``n_predictions``-step output, never iterated: the
    command columns of future steps are unknown.

    Returns:
        ``k`` outcomes in order: ``WindowForecast``, or an ``ApiError`` (422) for a window
        shorter than ``l_s``, a horizon above ``n_predictions``, mismatched commands or
        non-finite forecasts (each window on its own, as in ``score_windows``).
    """
    spec = served.model.spec
    out: list[Any] = [None] * len(windows)
    rows: list[tuple[int, npt.NDArray[np.float32]]] = []
    for i, window in enumerate(windows):
        horizon = window.horizon or spec.n_predictions
        if len(window.values) < spec.l_s:
            out[i] = _too_few(spec.l_s, len(window.values), spec.l_s, "a forecast")
        elif horizon > spec.n_predictions:
            detail = f"horizon {horizon} exceeds the model's n_predictions={spec.n_predictions}"
            out[i] = ApiError(422, "horizon_too_large", detail, "horizon")
        else:
            try:
                rows.append((i, served.series(window)[-spec.l_s :]))
            except ApiError as exc:
                out[i] = exc
    if rows:
        forecasts = _predict(served.model, np.stack([r for _, r in rows]))  # [k, n_predictions], normalized
        for (i, _), row in zip(rows, forecasts, strict=True):
            horizon = windows[i].horizon or spec.n_predictions
            try:
                out[i] = WindowForecast(served.name, served.version, served.to_values(row[:horizon]))
            except DataError as exc:
                out[i] = _unusable(exc)
    return out


def unwrap(outcome: T | ApiError) -> T:
    """One outcome of ``score_windows``/``forecast_windows``: the result, or its error raised."""
    if isinstance(outcome, ApiError):
        raise outcome
    return outcome


# Rows per forward pass. A request's 250-point window is 200 rows; with the core's default of
# 1,024, a batch of k requests ran in power-of-two passes of up to 1,024 rows, padded by up to
# 41%, and big passes were no cheaper per row. Measured on 2 cores, 16 windows in one call
# (per window, in-process): Transformer 7.2-9.6 ms CPU at 128-512 rows against 11.9 at 1,024,
# LSTM 16 3.2-3.3 against 4.4 (BENCHMARKS.md, "Serve load").
PREDICT_ROWS = 256


def _predict(model: TrainedModel, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    from pdm_ray.models import predict

    return predict(model, x, batch_size=PREDICT_ROWS)
