"""The model deployment: per-sensor production models, multiplexed, with batched inference.

The ingress resolves a sensor's production version in the MLflow registry and calls this
deployment through a ``DeploymentHandle`` with ``multiplexed_model_id="<name>/<version>"``
(e.g. ``pdm-A-2-lstm/3``). Each replica loads a version once (``@serve.multiplexed``, at
most ``serve.max_models_per_replica``, least recently used evicted) and batches concurrent
requests for one model (``@serve.batch``; Serve splits batches by model id), so a batch is
one jitted forward pass over every request's windows. A promotion changes the id, so the
new version is loaded on its first request and the old one ages out; no restart needed.
Routing uses the handle option, never the HTTP multiplexing header, which Serve's HAProxy
mode drops.
"""

from __future__ import annotations

import asyncio
from typing import Any

import jax
from ray import serve

from pdm_ray.config import Settings
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
    unwrap,
)


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

        async def load(model_id: str) -> ServedModel:
            return await asyncio.to_thread(load_served, tracking, model_id)

        # Wrapped here, not at class level, because the LRU size comes from the settings; a
        # plain function rather than a bound method, because Serve keeps its cache on it.
        self.load_model = serve.multiplexed(max_num_models_per_replica=cfg.max_models_per_replica)(load)
        for batched in (self._detect_batch, self._forecast_batch):
            batched.set_max_batch_size(cfg.batch_max_size)
            batched.set_batch_wait_timeout_s(cfg.batch_wait_timeout_s)

    async def detect(self, window: WindowInput) -> WindowScores:
        """Telemanom scores of one window (``scoring.score_windows``)."""
        return unwrap(await self._detect_batch(window))

    async def forecast(self, window: WindowInput) -> WindowForecast:
        """The next ``horizon`` values after one window (``scoring.forecast_windows``)."""
        return unwrap(await self._forecast_batch(window))

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.002)
    async def _detect_batch(self, windows: list[WindowInput]) -> list[WindowScores | ApiError]:
        served = await self.load_model(serve.get_multiplexed_model_id())
        # In a thread: the event loop keeps collecting the next batch while JAX computes.
        return await asyncio.to_thread(score_windows, served, windows, self._settings.threshold)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.002)
    async def _forecast_batch(self, windows: list[WindowInput]) -> list[WindowForecast | ApiError]:
        served = await self.load_model(serve.get_multiplexed_model_id())
        return await asyncio.to_thread(forecast_windows, served, windows)

    def check_health(self) -> None:
        """Serve's periodic probe: the JAX backend still answers (a replica without it is useless)."""
        if not jax.devices():
            raise RuntimeError("JAX reports no devices")
