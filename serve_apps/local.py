"""The API without Serve: models run in the web server's own process.

This is the baseline of ``benchmarks/serve_load.py`` (plain FastAPI + uvicorn serving
the same models with the same validation and JSON), and a way to run the API where Ray
is not wanted. Models are cached per ``<name>/<version>`` with the same LRU bound as a
Serve replica; each request is scored on its own (no cross-request batching).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from fastapi import FastAPI

from pdm_ray.config import Settings
from pdm_ray.tracking.runs import Tracking, connect_settings
from serve_apps.api import create_app
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
from serve_apps.versions import registry_versions


class LocalModels:
    """``serve_apps.api.Models`` in process, with an LRU of ``max_models`` loaded versions."""

    def __init__(self, tracking: Tracking, settings: Settings) -> None:
        self._tracking = tracking
        self._settings = settings
        self._models: OrderedDict[str, ServedModel] = OrderedDict()
        self._lock = asyncio.Lock()

    async def _model(self, model_id: str) -> ServedModel:
        async with self._lock:
            if model_id in self._models:
                self._models.move_to_end(model_id)
                return self._models[model_id]
            served = await asyncio.to_thread(load_served, self._tracking, model_id)
            self._models[model_id] = served
            while len(self._models) > self._settings.serve.max_models_per_replica:
                self._models.popitem(last=False)
            return served

    async def detect(self, model_id: str, window: WindowInput) -> WindowScores:
        served = await self._model(model_id)
        (out,) = await asyncio.to_thread(score_windows, served, [window], self._settings.threshold)
        return unwrap(out)

    async def forecast(self, model_id: str, window: WindowInput) -> WindowForecast:
        served = await self._model(model_id)
        (out,) = await asyncio.to_thread(forecast_windows, served, [window])
        return unwrap(out)


def local_app(settings: Settings) -> FastAPI:
    """The full API over in-process models; no Fleet (its routes answer 503), no Ray metrics."""
    tracking = connect_settings(settings)
    return create_app(LocalModels(tracking, settings), registry_versions(tracking, settings.serve), settings.serve)
