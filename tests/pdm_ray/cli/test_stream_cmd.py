import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pdm_ray.cli import main

pytestmark = pytest.mark.ray


@pytest.fixture
def ray_actors(ray_cluster: None) -> Iterator[None]:
    """The session's Ray; the named actors a test leaves in ``pdm-test`` (fleet, sensors) are killed after it."""
    import ray
    from ray.util import list_named_actors

    before = set(list_named_actors())
    yield
    for name in set(list_named_actors()) - before:
        with contextlib.suppress(ValueError):
            ray.kill(ray.get_actor(name, namespace="pdm-test"), no_restart=True)


def _config(tmp_path: Path, address: str | None = None) -> str:
    path = tmp_path / f"config-{address}.yaml"
    ray_section = {"namespace": "pdm-test", "address": address}
    path.write_text(yaml.safe_dump({"home": str(tmp_path / "home"), "ray": ray_section}))
    return str(path)


def test_stream_replays_scores_and_resumes(
    ray_actors: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    args = ["stream", "--data", "data/sample", "--channels", "A-5,A-6", "--forecaster", "persistence"]
    assert main([*args, "--batch-size", "1000", "--config", config]) == 0
    first = capsys.readouterr().out
    assert "streaming 2 channel(s), 9146 readings in batches of 1000" in first
    rows = {line.split()[0]: line.split() for line in first.splitlines() if line.startswith(("A-5 ", "A-6 "))}
    assert rows["A-5"][1:4] == ["4693", "4443", "scoring"]  # readings, scored (after l_s = 250), scoring
    assert "events: tp=" in first

    assert main([*args, "--batch-size", "700", "--config", config]) == 0  # continues the stored streams
    capsys.readouterr()
    for cfg, source in ((config, "stored state under"), (_config(tmp_path, "auto"), "Fleet actor 'fleet'")):
        assert main(["fleet", "status", "--config", cfg]) == 0  # from disk, then from the live Fleet
        status = capsys.readouterr().out
        assert source in status
        a5 = next(line.split() for line in status.splitlines() if line.startswith("A-5 "))
        assert a5[1:3] == [str(5 + 7 - 1), str(2 * 4693)]  # last seq after 5 + 7 batches, readings

    assert main([*args, "--batch-size", "1000", "--fresh", "--config", config]) == 0
    again = capsys.readouterr().out
    assert again.split("events: ")[1] == first.split("events: ")[1]  # same data, same detections


def test_stream_rejects_bad_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stream", "--data", "data/sample", "--batch-size", "0", "--config", _config(tmp_path)]) == 2
    assert "--batch-size must be positive" in capsys.readouterr().err


def test_fleet_retrain_asks_the_running_fleet(
    ray_actors: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from actors.fleet import fleet_handle
    from pdm_ray.config import load_settings

    assert main(["fleet", "retrain", "--config", _config(tmp_path)]) == 2
    assert "needs a running cluster" in capsys.readouterr().err
    config = _config(tmp_path, "auto")
    fleet_handle(load_settings(config), name="fleet-cli")
    assert main(["fleet", "retrain", "--name", "fleet-cli", "--config", config]) == 0
    assert "0 decision(s)" in capsys.readouterr().out
