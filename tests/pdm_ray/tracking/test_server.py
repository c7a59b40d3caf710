from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pdm_ray.config import Settings
from pdm_ray.tracking.runs import connect
from pdm_ray.tracking.server import local_mlflow_server, tracking_uri_for_writers


@pytest.mark.slow
def test_local_server_serves_the_sqlite_store_and_stops(mlflow_uri: str, tmp_path: Path) -> None:
    direct = connect(mlflow_uri, "pdm-ray", artifact_location=(tmp_path / "art").as_uri())
    with local_mlflow_server(mlflow_uri, (tmp_path / "art").as_uri()) as url:
        assert url.startswith("http://127.0.0.1:")
        served = connect(url, "pdm-ray")
        assert served.experiment_id == direct.experiment_id
        run = served.client.create_run(served.experiment_id, run_name="through-http")
        served.client.log_metric(run.info.run_id, "val_loss", 0.25)
    # Written through the server, read straight from the file.
    assert direct.client.get_run(run.info.run_id).data.metrics == {"val_loss": 0.25}
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{url}/health", timeout=2)


def test_a_single_writer_uses_the_sqlite_store_directly(mlflow_uri: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, tracking={"uri": mlflow_uri})
    with tracking_uri_for_writers(settings, several_writers=False) as uri:
        assert uri == mlflow_uri
