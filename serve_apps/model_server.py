"""The model deployment: per-sensor production models, multiplexed, with batched inference.

The ingress resolves a sensor's production version in the MLflow registry and calls this
deployment through a ``DeploymentHandle`` with ``multiplexed_model_id="<name>/<version>"``
(e.g. ``pdm-A-2-lstm/3``). Each replica loads a version once (``@serve.multiplexed``, at
most ``serve.max_models_per_replica``, least recently used evicted) and batches concurrent
calls for one model (``@serve.batch``; Serve splits batches by model id), so a batch is
one jitted forward pass over every call's windows. Each call already carries a list: the
ingress sends the requests that arrive together as one call (``serve_apps.call_batching``).
A promotion changes the id, so the new version is loaded on its first request and the old
one ages out; no restart needed.
Routing uses the handle option, never the HTTP multiplexing header, which Serve's HAProxy
mode drops.

The sensor actors' ``actors.forecaster.ServeForecaster`` calls ``predict(sensor_id, window)``
instead: the replica resolves the sensor's production version itself, as the ingress does
(``serve_apps.versions``, cached for ``serve.version_ttl_s``), and loads it through the same
multiplexed cache. These calls carry no model id, so they are not routed by model, and they
are not batched: every sensor has its own model and sends one window at a time.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

import jax
import numpy as np
import numpy.typing as npt
from ray import serve

from pdm_ray.config import Settings
from pdm_ray.tracking.pyfunc import forecast_stream_window
from pdm_ray.tracking.runs import connect_settings
from serve_apps.errors import ApiError
from serve_apps.scoring import (
    ServedModel,
    WindowForecast,
    WindowInput,
    WindowScores,
    forecast_windows,
    load_served,
    score_windows,
)
from serve_apps.versions import model_id, registry_versions

T = TypeVar("T")


@serve.deployment(name="SensorModels")
class SensorModels:
    """Scores and forecasts windows with the model version named by the multiplexed id.

    Args:
        settings: ``Settings.model_dump(mode="json")`` (plain data travels to replicas).
    """

    def __init__(self, settings: dict[str, Any]) -> None:
        self._settings = Settings.model_validate(settings)
        cfg = self._settings.serve
        self._tracking = connect_settings(self._settings)
        tracking = self._tracking
        self._versions = registry_versions(tracking, cfg)  # for predict(sensor_id, ...)

        async def load(model_id: str) -> ServedModel:
            return await asyncio.to_thread(load_served, tracking, model_id)

        # Wrapped here, not at class level, because the LRU size comes from the settings; a
        # plain function rather than a bound method, because Serve keeps its cache on it.
        self.load_model = serve.multiplexed(max_num_models_per_replica=cfg.max_models_per_replica)(load)
        for batched in (self._detect_batch, self._forecast_batch):
            batched.set_max_batch_size(cfg.batch_max_size)
            batched.set_batch_wait_timeout_s(cfg.batch_wait_timeout_s)

    async def detect(self, windows: list[WindowInput]) -> list[WindowScores | ApiError]:
        """Telemanom scores of one model's windows (``scoring.score_windows``), in order.

        A list, because the ingress sends the requests for one model that arrive together as
        one call (``serve_apps.call_batching``); a window that does not fit gets its
        ``ApiError`` in its place rather than failing the others.
        """
        return await self._detect_batch(windows)

    async def forecast(self, windows: list[WindowInput]) -> list[WindowForecast | ApiError]:
        """The next ``horizon`` values after each window (``scoring.forecast_windows``), in order."""
        return await self._forecast_batch(windows)

    async def predict(self, sensor_id: str, window: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """One-step predictions ``[T, F] -> [T - l_s]`` of channel 0 for rows ``l_s ..``, in the window's units.

        What ``actors.model_host.ModelHost.predict`` returns, from the sensor's production
        model (resolved as the HTTP API resolves it, ``serve.model_kinds`` in order) through
        ``pdm_ray.tracking.pyfunc.forecast``. The sensor actors call it through
        ``actors.forecaster.ServeForecaster``.

        Raises:
            InvalidChannelError: ``sensor_id`` is not a valid id.
            UnknownSensorError: no model is registered for the sensor.
            RegistryError: models are registered but none is in production.
            DataError: the window does not fit the model.
            ApiError: 503 when the production version cannot be loaded.
        """
        version = await self._versions.get(sensor_id)
        served = await self.load_model(model_id(version))
        return await asyncio.to_thread(forecast_stream_window, served.model, window, sensor_id)

    async def forget(self, sensor_id: str | None = None) -> list[str]:
        """Forget this replica's cached production version of one sensor (or all), e.g. after a promotion.

        Returns the sensors that were cached; the next ``predict`` resolves them again.
        """
        return self._versions.forget(sensor_id)

    # Two batches in flight: while one computes in a worker thread (JAX releases the GIL), the
    # next one computes on the other core instead of queueing (measured on 2 cores: paper model
    # 22 -> 32 req/s at 16 clients). Each batch merges calls, each call a list of windows; sizes
    # and waits come from the settings in __init__.
    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.002, max_concurrent_batches=2)
    async def _detect_batch(self, calls: list[list[WindowInput]]) -> list[list[WindowScores | ApiError]]:
        served = await self.load_model(serve.get_multiplexed_model_id())
        # In a thread: the event loop keeps collecting the next batch while JAX computes.
        outcomes = await asyncio.to_thread(score_windows, served, _flat(calls), self._settings.threshold)
        return _split(outcomes, calls)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.002, max_concurrent_batches=2)
    async def _forecast_batch(self, calls: list[list[WindowInput]]) -> list[list[WindowForecast | ApiError]]:
        served = await self.load_model(serve.get_multiplexed_model_id())
        return _split(await asyncio.to_thread(forecast_windows, served, _flat(calls)), calls)

    def check_health(self) -> None:
        """Serve's periodic probe: the JAX backend still answers (a replica without it is useless)."""
        if not jax.devices():
            raise RuntimeError("JAX reports no devices")


def _flat(calls: list[list[WindowInput]]) -> list[WindowInput]:
    return [window for call in calls for window in call]


def _split(outcomes: list[T], calls: list[list[WindowInput]]) -> list[list[T]]:
    """``outcomes`` of ``_flat(calls)`` regrouped per call."""
    grouped, start = [], 0
    for call in calls:
        grouped.append(outcomes[start : start + len(call)])
        start += len(call)
    return grouped
