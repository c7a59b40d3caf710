"""``ServeForecaster``: sensor actors predict through the Serve model deployment, for real.

A tiny LSTM (l_s = 5, 2 features, one epoch, with its normalizer) is registered in a temp
MLflow registry as the production model of ``S-1``, ``P-1`` and ``F-1``; ``N-1`` has only a staging
version. The Serve application (``Api`` + ``SensorModels``) runs on the session's Ray on a
free loopback port; Serve is shut down after the module.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import ray

from actors.forecaster import ForecasterUnavailableError, ServeForecaster, production_forecaster, wait_predictions
from actors.sensor import SensorActor, absolute_paths
from pdm_ray.config import LSTMSettings, NormalizeSettings, Settings, TrainSettings
from pdm_ray.data.normalize import fit_normalizer
from pdm_ray.data.windows import make_windows
from pdm_ray.errors import DataError, RegistryError, UnknownSensorError
from pdm_ray.models import ModelSpec, TrainedModel, train
from pdm_ray.streaming import Scoring
from pdm_ray.tracking.pyfunc import forecast
from pdm_ray.tracking.registry import load_version, model_name
from pdm_ray.tracking.runs import Tracking, connect_settings
from tests.serve_apps.support import promote_alias, register

from .conftest import sine_batches, small_settings

pytestmark = [pytest.mark.ray, pytest.mark.slow]

APP = "pdm-forecaster"
TIMEOUT_S = 120.0
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Deployed:
    settings: Settings
    tracking: Tracking
    model: TrainedModel  # S-1's production version as the registry gives it back


def _values(n: int) -> npt.NDArray[np.float32]:
    return np.concatenate([b.values for b in sine_batches(n, n)])


@pytest.fixture(scope="module")
def deployed(serve_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    from ray import serve

    from serve_apps.app import application

    home = tmp_path_factory.mktemp("serve-forecaster")
    settings = small_settings(home)
    # one_event_loop: the replica's router shares its main loop; the sync sensor actors keep theirs.
    serve_cfg = settings.serve.model_copy(
        update={"replica_num_cpus": 0.1, "version_ttl_s": 3600.0, "one_event_loop": True}
    )
    settings = absolute_paths(settings.model_copy(update={"serve": serve_cfg}))

    series = _values(300)
    normalizer = fit_normalizer(series, NormalizeSettings())
    x, y = make_windows(normalizer.transform(series), 5, 1)
    spec = ModelSpec(kind="lstm", n_features=2, l_s=5, n_predictions=1, lstm=LSTMSettings(layers=[8], dropout=0.0))
    trained = replace(
        train(spec, TrainSettings(epochs=1, batch_size=64, patience=1), x, y), normalizer=normalizer.to_dict()
    )
    tracking = connect_settings(settings)
    for sensor, production in (("S-1", True), ("P-1", True), ("F-1", True), ("N-1", False)):
        register(tracking, sensor, trained, production=production)

    serve.run(application(settings), name=APP, route_prefix="/forecaster")
    try:
        yield Deployed(settings, tracking, load_version(tracking, model_name("S-1", "lstm"), "1"))
    finally:
        serve.delete(APP)


def test_sensor_actor_scores_through_the_deployment_like_the_model_host(ray_actors: None, deployed: Deployed) -> None:
    forecaster = ServeForecaster(APP)
    window = _values(40)
    direct = wait_predictions(forecaster.predict("S-1", window), TIMEOUT_S)
    # ModelHost.predict is forecast(model, window) on the same registered version.
    assert direct.dtype == np.float32 and direct.shape == (35,)
    np.testing.assert_allclose(direct, forecast(deployed.model, window), rtol=1e-5, atol=1e-6)

    data = deployed.settings.model_dump(mode="json")
    actor = SensorActor.remote("S-1", data, forecaster)
    batches = sine_batches(100, 25)
    ray.get([actor.ingest.remote(b) for b in batches])
    status, series, info = ray.get([actor.status.remote(), actor.series.remote(100), actor.process_info.remote()])
    assert status.scoring == Scoring.SCORING and status.scored == 95
    assert np.isnan(series.forecast[:5]).all()
    np.testing.assert_allclose(series.forecast[5:], forecast(deployed.model, _values(100)), rtol=1e-5, atol=1e-6)
    assert "jax" not in info.modules  # the model runs in the Serve replica


def test_unknown_sensor_and_other_errors_are_the_model_hosts(ray_actors: None, deployed: Deployed) -> None:
    forecaster = ServeForecaster(APP)
    window = _values(40)
    with pytest.raises(UnknownSensorError, match="'Z-9' has no registered model"):
        wait_predictions(forecaster.predict("Z-9", window), TIMEOUT_S)
    with pytest.raises(RegistryError, match="'N-1' has no production model yet"):
        wait_predictions(forecaster.predict("N-1", window), TIMEOUT_S)
    with pytest.raises(DataError, match="does not fit the model's 2 features"):
        wait_predictions(forecaster.predict("S-1", window[:, :1]), TIMEOUT_S)
    with pytest.raises(ForecasterUnavailableError, match="no Serve deployment 'SensorModels' in application 'nope'"):
        ServeForecaster("nope").predict("S-1", window)

    data = deployed.settings.model_dump(mode="json")
    unknown = SensorActor.remote("Z-9", data, forecaster)
    unserved = SensorActor.remote("U-1", data, ServeForecaster("nope"))  # its own state dir
    batches = sine_batches(50, 25)
    ray.get([unknown.ingest.remote(b) for b in batches] + [unserved.ingest.remote(b) for b in batches])
    no_model, failing = ray.get([unknown.status.remote(), unserved.status.remote()])
    assert no_model.scoring == Scoring.NO_MODEL and "UnknownSensorError" in no_model.scoring_detail
    assert failing.scoring == Scoring.FORECASTER_ERROR and "ForecasterUnavailableError" in failing.scoring_detail
    assert no_model.readings == failing.readings == 50


def test_forget_picks_up_a_promotion_before_the_ttl(deployed: Deployed) -> None:
    forecaster = ServeForecaster(APP)
    window = _values(40)
    old = wait_predictions(forecaster.predict("P-1", window), TIMEOUT_S)
    shifted = fit_normalizer(_values(300) + np.float32([1.0, 0.0]), NormalizeSettings()).to_dict()
    new = register(deployed.tracking, "P-1", replace(deployed.model, normalizer=shifted), production=False)
    promote_alias(deployed.tracking, "P-1", new.version)
    cached = wait_predictions(forecaster.predict("P-1", window), TIMEOUT_S)
    np.testing.assert_array_equal(cached, old)  # serve.version_ttl_s is an hour
    assert forecaster.forget("P-1") == ["P-1"]
    fresh = wait_predictions(forecaster.predict("P-1", window), TIMEOUT_S)
    reference = load_version(deployed.tracking, model_name("P-1", "lstm"), new.version)
    np.testing.assert_allclose(fresh, forecast(reference, window), rtol=1e-5, atol=1e-6)
    assert not np.allclose(fresh, old)


def test_the_fleet_hands_it_on_and_makes_the_deployment_forget_after_a_promotion(
    ray_actors: None, deployed: Deployed
) -> None:
    from actors.fleet import fleet_handle

    fleet = fleet_handle(deployed.settings, ServeForecaster(APP), name="fleet-serve")
    acks = ray.get([fleet.ingest.remote("F-1", b) for b in sine_batches(100, 50)])
    assert [a.scoring for a in acks] == [Scoring.SCORING, Scoring.SCORING]
    ray.get(fleet._adopt_new_model.remote("F-1"))  # what settle_retrains does after a promotion
    assert ServeForecaster(APP).forget("F-1") == []  # the Fleet's forget already dropped it
    assert ray.get(fleet.status.remote("F-1")).scored == 95


def test_the_config_chooses_the_forecaster(tmp_path: Path) -> None:
    settings = small_settings(tmp_path, forecaster="serve")
    chosen = production_forecaster(settings)
    assert isinstance(chosen, ServeForecaster) and (chosen.app_name, chosen.deployment_name) == ("pdm", "SensorModels")
    assert small_settings(tmp_path).actors.forecaster == "model_host"  # the default is unchanged


def test_the_forecaster_module_imports_neither_jax_nor_serve() -> None:
    import subprocess
    import sys

    code = "import sys, actors.forecaster; print(sorted({'jax', 'ray.serve'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
