from pathlib import Path

import pytest
import ray
from ray.exceptions import RayActorError

from actors.fleet import find_fleet, fleet_handle
from actors.forecaster import PersistenceForecaster
from pdm_ray.errors import FleetUnavailableError, InvalidChannelError, UnknownSensorError
from pdm_ray.streaming import Scoring

from .conftest import sine_batches, small_settings

pytestmark = pytest.mark.ray


def test_fleet_creates_routes_lists_and_survives_its_restart(ray_actors: None, tmp_path: Path) -> None:
    settings = small_settings(tmp_path)
    fleet = fleet_handle(settings, PersistenceForecaster(), name="fleet-a")
    assert find_fleet(settings, "fleet-a") == fleet
    batches = sine_batches(60, 20)
    acks = ray.get(
        [fleet.ingest.remote("A-1", b) for b in batches[:1]] + [fleet.ingest.remote("B-2", b) for b in batches[:1]]
    )
    assert [a.sensor_id for a in acks] == ["A-1", "B-2"]
    handles = ray.get(fleet.sensors.remote(["A-1"]))
    assert ray.get(handles["A-1"].ingest.remote(batches[1])).accepted == 20  # producers may call actors directly
    with pytest.raises(InvalidChannelError):
        ray.get(fleet.ingest.remote("../etc", batches[0]))
    with pytest.raises(UnknownSensorError, match="no sensor 'Z-9'"):
        ray.get(fleet.status.remote("Z-9"))
    (tmp_path / "sensors" / "C-3").mkdir()  # state on disk without an actor
    assert ray.get(fleet.list_sensors.remote()) == ["A-1", "B-2", "C-3"]
    statuses = ray.get(fleet.status_all.remote())
    assert [(s.sensor_id, s.readings) for s in statuses] == [("A-1", 40), ("B-2", 20), ("C-3", 0)]
    assert statuses[0].scoring == Scoring.SCORING

    ray.kill(fleet, no_restart=False)  # the supervisor restarts with nothing in memory
    assert ray.get(fleet.list_sensors.remote()) == ["A-1", "B-2", "C-3"]
    assert ray.get(fleet.status.remote("A-1")).readings == 40
    assert ray.get(fleet.ingest.remote("A-1", batches[2])).seq == 2


def test_one_broken_sensor_does_not_hide_the_others(ray_actors: None, tmp_path: Path) -> None:
    settings = small_settings(tmp_path)
    fleet = fleet_handle(settings, PersistenceForecaster(), name="fleet-broken")
    ray.get([fleet.ingest.remote("A-1", b) for b in sine_batches(60, 20)])
    damaged = tmp_path / "sensors" / "D-4"
    damaged.mkdir()
    (damaged / "snapshot.npz").write_bytes(b"not a snapshot")  # its actor fails to recover it
    statuses = ray.get(fleet.status_all.remote())
    assert [getattr(s, "readings", None) for s in statuses] == [60, None]
    sensor_id, error = statuses[1]
    assert sensor_id == "D-4" and "DataError" in error and "D-4/snapshot.npz: not a readable snapshot" in error
    with pytest.raises(RayActorError):  # one sensor's status still fails on its own
        ray.get(fleet.status.remote("D-4"))
    assert ray.get(fleet.check_retraining.remote()) == []  # the round skips it


def test_remove_stops_the_actor_and_optionally_the_state(ray_actors: None, tmp_path: Path) -> None:
    settings = small_settings(tmp_path)
    fleet = fleet_handle(settings, name="fleet-b")
    ray.get(fleet.ingest.remote("R-1", sine_batches(10, 10)[0]))
    assert ray.get(fleet.remove.remote("R-1")) is True
    assert ray.get(fleet.status.remote("R-1")).readings == 10  # state kept: brought back from disk
    assert ray.get(fleet.remove.remote("R-1", delete_state=True)) is True
    assert not (tmp_path / "sensors" / "R-1").exists()
    with pytest.raises(UnknownSensorError):
        ray.get(fleet.status.remote("R-1"))


def test_find_fleet_without_one(ray_actors: None, tmp_path: Path) -> None:
    with pytest.raises(FleetUnavailableError, match="no Fleet actor 'nobody'"):
        find_fleet(small_settings(tmp_path), "nobody")
