"""Tiny trained forecasters in a real MLflow registry (SQLite under a temp dir) for the API tests.

Training takes seconds (an LSTM of 8 units, ``l_s`` = 30, one epoch on a noisy sine), so the
two models (one feature; one feature + two command columns) are trained once per session.
Each module gets its own registry with:

* ``S-1``: version 1 of ``pdm-S-1-lstm`` is ``production`` (one feature);
* ``C-1``: version 1 of ``pdm-C-1-lstm`` is ``production`` (two command columns);
* ``N-1``: version 1 of ``pdm-N-1-lstm`` is only ``staging`` (no production model).
"""

from __future__ import annotations

import pytest

from pdm_ray.models import TrainedModel
from pdm_ray.tracking.runs import connect_settings
from tests.serve_apps.support import Registry, register, serve_settings, train_tiny


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[int, TrainedModel]:
    """``{n_features: model}`` for 1 and 3 features, trained once per session."""
    settings = serve_settings(tmp_path_factory.mktemp("train"))
    return {f: train_tiny(settings, f) for f in (1, 3)}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[int, TrainedModel]) -> Registry:
    """A fresh registry with S-1, C-1 (production) and N-1 (staging only)."""
    home = tmp_path_factory.mktemp("serve-home")
    settings = serve_settings(home)
    tracking = connect_settings(settings)
    register(tracking, "S-1", tiny_models[1], production=True)
    register(tracking, "C-1", tiny_models[3], production=True)
    register(tracking, "N-1", tiny_models[1], production=False)
    return Registry(settings=settings, tracking=tracking, models=tiny_models)
