from pathlib import Path

import numpy as np
import pytest
import ray

from actors.forecaster import ModelHostForecaster
from actors.model_host import ModelHost
from actors.sensor import SensorActor, absolute_paths
from pdm_ray.config import LSTMSettings, TrackingSettings, TrainSettings
from pdm_ray.data.windows import make_windows
from pdm_ray.errors import UnknownSensorError
from pdm_ray.models import ModelSpec, load_model, save_model, train
from pdm_ray.streaming import Scoring
from pdm_ray.tracking.pyfunc import forecast
from pdm_ray.tracking.runs import connect_settings
from tests.serve_apps.support import register

from .conftest import sine_batches, small_settings

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny LSTM (l_s = 5, 2 features) trained for one epoch on the test sine."""
    series = np.concatenate([b.values for b in sine_batches(300, 300)])
    x, y = make_windows(series, 5, 1)
    spec = ModelSpec(kind="lstm", n_features=2, l_s=5, n_predictions=1, lstm=LSTMSettings(layers=[8], dropout=0.0))
    model = train(spec, TrainSettings(epochs=1, batch_size=64, patience=1), x, y)
    return save_model(model, tmp_path_factory.mktemp("model") / "M-1")


def test_sensor_actors_score_through_the_shared_host_without_jax(
    ray_actors: None, tmp_path: Path, model_dir: Path
) -> None:
    settings = small_settings(tmp_path)
    data = absolute_paths(settings).model_dump(mode="json")
    host = ModelHost.remote(data, use_registry=False)
    info = ray.get(host.load.remote("M-1", str(model_dir)))
    assert (info.sensor_id, info.l_s, info.n_features) == ("M-1", 5, 2)
    window = sine_batches(40, 40)[0].values
    np.testing.assert_allclose(
        ray.get(host.predict.remote("M-1", window)), forecast(load_model(model_dir), window), rtol=1e-6
    )
    with pytest.raises(UnknownSensorError, match="no model loaded"):
        ray.get(host.predict.remote("N-1", window))

    forecaster = ModelHostForecaster(host)
    scored = SensorActor.remote("M-1", data, forecaster)
    unscored = SensorActor.remote("N-1", data, forecaster)
    batches = sine_batches(100, 25)
    ray.get([scored.ingest.remote(b) for b in batches] + [unscored.ingest.remote(b) for b in batches])
    status, other = ray.get([scored.status.remote(), unscored.status.remote()])
    assert status.scoring == Scoring.SCORING and status.scored == 95
    assert other.scoring == Scoring.NO_MODEL and "no model loaded" in other.scoring_detail and other.readings == 100
    assert "jax" not in ray.get(scored.process_info.remote()).modules
    assert [m.sensor_id for m in ray.get(host.models.remote())] == ["M-1"]


def test_registry_models_are_resolved_in_serve_model_kinds_order(
    ray_actors: None, tmp_path: Path, model_dir: Path, mlflow_uri: str
) -> None:
    """As the Serve API and the dashboard resolve a sensor's production model: ``serve.model_kinds`` in order."""
    settings = small_settings(tmp_path).model_copy(update={"tracking": TrackingSettings(uri=mlflow_uri)})
    register(connect_settings(settings), "M-1", load_model(model_dir), production=True)  # pdm-M-1-lstm
    window = sine_batches(40, 40)[0].values

    def host(kinds: list[str]) -> ray.actor.ActorHandle:
        serve = settings.serve.model_copy(update={"model_kinds": kinds})
        return ModelHost.remote(absolute_paths(settings.model_copy(update={"serve": serve})).model_dump(mode="json"))

    with pytest.raises(UnknownSensorError, match=r"no registered model \(pdm-M-1-transformer\)"):
        ray.get(host(["transformer"]).predict.remote("M-1", window))
    fallback = host(["transformer", "lstm"])
    assert ray.get(fallback.predict.remote("M-1", window)).shape == (35,)
    assert [m.source for m in ray.get(fallback.models.remote())] == ["pdm-M-1-lstm/1"]
