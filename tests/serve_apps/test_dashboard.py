"""The operator dashboard: its JSON through Ray Serve, and the page in headless Chromium.

One Serve app on the session's Serve proxy over a real registry (``S-1`` in production), a real
Fleet scoring with the persistence forecaster, and a real retraining history. Two sensors
stream 600 readings each over HTTP: ``S-1`` (a sine with a spike) and ``T-9`` (a sine whose
level jumps, so it drifts). The page must list both, draw the drill-down's four traces with
the anomaly bands, and follow the stream as new readings arrive.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from pdm_ray.config import Settings
from pdm_ray.retraining import Decision, DecisionKind, Outcome, RetrainingHistory, Trigger, history_path
from pdm_ray.tracking.runs import connect_settings
from serve_apps.dashboard import Dashboard, install_dashboard, mlflow_ui, model_url
from serve_apps.local import local_app
from tests.serve_apps.support import Registry, sine_series

ARTIFACTS = Path(__file__).resolve().parents[2] / "out" / "test-artifacts"
START = 1_764_000_000.0  # 2025-11-24T16:00:00Z, one reading per second
BATCH = 100
TOKEN = "dash-token"


def test_mlflow_ui_links() -> None:
    assert mlflow_ui("http://mlflow.internal:5000/") == {"url": "http://mlflow.internal:5000", "hint": None}
    assert mlflow_ui("sqlite:////x/mlflow.db") == {
        "url": "http://127.0.0.1:5000",
        "hint": "mlflow ui --backend-store-uri sqlite:////x/mlflow.db",
    }
    assert mlflow_ui("sqlite:////x/mlflow.db", "https://ui.example/")["url"] == "https://ui.example"
    assert model_url("http://h:5000", "pdm-A-1-lstm", "3") == "http://h:5000/#/models/pdm-A-1-lstm/versions/3"
    assert model_url("http://h:5000", "pdm-A-1-lstm") == "http://h:5000/#/models/pdm-A-1-lstm"


def test_page_is_public_and_data_needs_the_token(registry: Registry) -> None:
    settings = registry.settings.model_copy(
        update={"serve": registry.settings.serve.model_copy(update={"auth_token": TOKEN})}
    )
    app = local_app(settings)
    install_dashboard(app, Dashboard(settings, None, connect_settings(settings)))
    with TestClient(app) as client:
        page = client.get("/dashboard")
        assert page.status_code == 200 and 'data-refresh="5"' in page.text
        assert client.get("/dashboard/static/dashboard.js").status_code == 200
        assert client.get("/dashboard/static/nope.js").json()["error"] == "not_found"
        assert client.get("/dashboard/api/models").status_code == 401
        assert client.get("/v1/sensors/S-1/series").status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        models = client.get("/dashboard/api/models", headers=auth).json()
        assert {(v["name"], v["version"]) for v in models["versions"]} >= {("pdm-S-1-lstm", "1"), ("pdm-N-1-lstm", "1")}
        assert client.get("/dashboard/api/fleet", headers=auth).json()["error"] == "fleet_unavailable"
        assert client.get("/dashboard/api/retraining", headers=auth).json() == {"entries": []}
        bad = client.get("/dashboard/api/retraining?limit=0", headers=auth)
        assert (bad.status_code, bad.json()["field"]) == (422, "limit")


class OverflowedFleet:
    """The Fleet as the dashboard asks it: one scoring sensor whose rolling MSE overflowed float32."""

    async def status_all(self) -> list[dict[str, object]]:
        status = {"sensor_id": "S-1", "scoring": "scoring", "rolling_mse": np.float32("inf"), "rolling_points": 500}
        return [{**status, "last_timestamp": START, "drift_severity": None, "quality": None, "quality_reasons": []}]

    async def recent(self, sensor_id: str, n: int) -> list[dict[str, object]]:
        return []


def test_fleet_view_shows_a_non_finite_statistic_as_null(registry: Registry) -> None:
    app = local_app(registry.settings)
    install_dashboard(app, Dashboard(registry.settings, OverflowedFleet(), connect_settings(registry.settings)))
    with TestClient(app) as client:
        r = client.get("/dashboard/api/fleet")
    assert r.status_code == 200, r.text
    (s1,) = r.json()["sensors"]
    assert (s1["status"]["rolling_mse"], s1["kpis"]["rolling_rmse"], s1["kpis"]["rmse_ratio"]) == (None, None, None)


def _scoring(sensor_id: str, rolling_mse: float) -> dict[str, object]:
    status = {"sensor_id": sensor_id, "scoring": "scoring", "scoring_detail": "scored", "readings": 600}
    return {**status, "rolling_mse": rolling_mse, "rolling_points": 500, "last_timestamp": START}


class StubFleet:
    """The Fleet as the dashboard asks it, with fixed answers; ``(id, error)``: that sensor's actor is broken."""

    def __init__(self, *answers: dict[str, object] | tuple[str, str]) -> None:
        self.answers = list(answers)

    async def status_all(self) -> list[dict[str, object] | tuple[str, str]]:
        return self.answers

    async def recent(self, sensor_id: str, n: int) -> list[dict[str, object]]:
        if (sensor_id, BROKEN) in self.answers:
            raise RuntimeError(f"sensor {sensor_id}: its actor is dead")
        return []


BROKEN = "pdm_ray.errors.DataError: sensors/B-0/snapshot.npz: not a readable snapshot"


def test_a_failed_validation_rmse_read_is_tried_again(registry: Registry) -> None:
    """A transient registry failure must not turn the forecast alert off for the replica's lifetime."""
    from pdm_ray.models.persistence import MODEL_FILE

    dash = registry.settings.dashboard.model_copy(update={"registry_ttl_s": 0.0})
    settings = registry.settings.model_copy(update={"dashboard": dash})
    app = local_app(settings)
    install_dashboard(app, Dashboard(settings, StubFleet(_scoring("S-1", 1.0)), connect_settings(settings)))
    source = registry.tracking.client.get_model_version("pdm-S-1-lstm", "1").source
    model_json = next(Path(urlparse(source).path).rglob(MODEL_FILE))
    away = model_json.with_name("away.json")
    with TestClient(app) as client:
        model_json.rename(away)
        try:
            (unreadable,) = client.get("/dashboard/api/fleet").json()["sensors"]
        finally:
            away.rename(model_json)
        (readable,) = client.get("/dashboard/api/fleet").json()["sensors"]
    assert unreadable["kpis"]["validation_rmse"] is None and unreadable["alerts"] == []
    model = registry.models[1]
    expected = math.sqrt(model.val_loss) * model.normalizer["scale"][0]
    assert readable["kpis"]["validation_rmse"] == pytest.approx(expected, rel=1e-9)
    assert readable["kpis"]["rmse_ratio"] == pytest.approx(1.0 / expected)


def test_a_sensor_whose_actor_is_broken_is_a_critical_row(registry: Registry) -> None:
    app = local_app(registry.settings)
    fleet = StubFleet(_scoring("S-1", 0.01), ("B-0", BROKEN))
    install_dashboard(app, Dashboard(registry.settings, fleet, connect_settings(registry.settings)))
    with TestClient(app) as client:
        r = client.get("/dashboard/api/fleet")
    assert r.status_code == 200, r.text
    broken, s1 = r.json()["sensors"]
    assert (broken["sensor_id"], broken["state"], broken["status"], broken["status_error"]) == (
        "B-0",
        "critical",
        None,
        BROKEN,
    )
    assert [(a["kind"], a["level"]) for a in broken["alerts"]] == [("unavailable", "critical")]
    assert (s1["sensor_id"], s1["status"]["readings"], s1["status_error"]) == ("S-1", 600, None)
    assert r.json()["alerts"][0]["sensor_id"] == "B-0"


@contextlib.contextmanager
def uvicorn_serving(app: FastAPI) -> Iterator[str]:
    """``app`` on a free loopback port in a thread of this process, for a browser to load."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_page_shows_a_broken_sensor_and_whole_numbers(registry: Registry) -> None:
    """The page renders a sensor without status, and a rolling RMSE of 100 as 100."""
    app = local_app(registry.settings)
    fleet = StubFleet(_scoring("U-1", 10_000.0), ("B-0", BROKEN))  # U-1: no model, RMSE 100 shown as is
    install_dashboard(app, Dashboard(registry.settings, fleet, connect_settings(registry.settings)))
    with uvicorn_serving(app) as url, _browser_or_skip() as browser:
        browser.open(f"{url}/dashboard")
        browser.wait_for("pdmDashboard.ticks >= 1")
        assert browser.evaluate("pdmDashboard.lastError") is None
        rows = "[...document.querySelectorAll('#fleet tbody tr')]"
        assert browser.evaluate(f"{rows}.map(r => r.dataset.sensor)") == ["B-0", "U-1"]
        cells = browser.evaluate(f"{rows}.map(r => [...r.cells].map(c => c.textContent))")
        assert cells[0][1:4] == ["critical", "unavailable", "–"]
        assert cells[1][8] == "RMSE 100"
        assert browser.evaluate("document.getElementById('t-critical').textContent") == "1"
        browser.evaluate("location.hash = 'sensor=B-0'")
        browser.wait_for("document.getElementById('sensor-title').textContent === 'B-0'")
        assert "scoring: unavailable" in browser.evaluate("document.getElementById('sensor-kpis').textContent")
        ticks = browser.evaluate("pdmDashboard.ticks")
        browser.wait_for(f"pdmDashboard.ticks > {ticks}")
        assert browser.evaluate("pdmDashboard.lastError") is None  # no series is asked of a broken sensor
        assert browser.evaluate("document.getElementById('sensor-plot').data") is None  # and none is shown


# ------------------------------------------------------------------ through Serve
@dataclass(frozen=True)
class Served:
    url: str
    http: httpx.Client
    settings: Settings

    def post_batch(self, sensor_id: str, seq: int, series: np.ndarray) -> None:
        chunk = series[seq * BATCH : (seq + 1) * BATCH]
        stamps = [START + seq * BATCH + i for i in range(len(chunk))]
        body = {"seq": seq, "timestamps": stamps, "values": chunk.tolist()}
        r = self.http.post(f"/v1/sensors/{sensor_id}/readings", json=body)
        assert r.status_code == 200, r.text


def spiky(n: int = 700) -> np.ndarray:
    values = sine_series(n, seed=3)[:, 0].astype(np.float64)
    values[420:426] += 6.0
    return values


def drifting(n: int = 700) -> np.ndarray:
    values = sine_series(n, seed=4)[:, 0].astype(np.float64)
    values[350:] += 4.0 + 0.5 * np.sin(np.arange(n - 350) / 3.0)
    return values


@pytest.fixture(scope="module")
def served(serve_port: int, registry: Registry) -> Iterator[Served]:
    import ray
    from ray import serve
    from ray.util import list_named_actors

    from actors.fleet import fleet_handle
    from actors.forecaster import PersistenceForecaster
    from serve_apps.app import application

    base = registry.settings
    settings = base.model_copy(
        update={
            "serve": base.serve.model_copy(update={"version_ttl_s": 3600.0, "fleet_actor": "fleet-dashboard"}),
            "actors": base.actors.model_copy(
                update={"drift_reference_size": 300, "quality_window": 300, "quality_every": 1, "buffer_size": 2000}
            ),
            "dashboard": base.dashboard.model_copy(update={"refresh_s": 1.0, "series_points": 600}),
        }
    )
    history = RetrainingHistory(history_path(settings.home))
    fired = Decision(START + 300, "T-9", Trigger.DRIFT, DecisionKind.FIRE, {"severity": "critical"})
    entry = history.record(fired)
    history.update_outcome(entry, Outcome.REJECTED, START + 400)
    history.record(Decision(START + 500, "T-9", Trigger.DRIFT, DecisionKind.SUPPRESSED_COOLDOWN, {"severity": "high"}))
    history.close()

    actors_before = set(list_named_actors())
    fleet_handle(settings, PersistenceForecaster(), name=settings.serve.fleet_actor)
    serve.run(application(settings), name="pdm-dashboard", route_prefix="/")
    url = f"http://127.0.0.1:{serve_port}"
    try:
        with httpx.Client(base_url=url, timeout=120) as http:
            assert http.get("/healthz").json() == {"status": "ok"}
            out = Served(url, http, settings)
            for seq in range(6):
                out.post_batch("S-1", seq, spiky())
                out.post_batch("T-9", seq, drifting())
            yield out
    finally:
        serve.delete("pdm-dashboard")
        for name in set(list_named_actors()) - actors_before:
            with contextlib.suppress(ValueError):
                ray.kill(ray.get_actor(name, namespace=settings.ray.namespace), no_restart=True)


@pytest.mark.ray
@pytest.mark.slow
def test_series_endpoint(served: Served) -> None:
    r = served.http.get("/v1/sensors/S-1/series", params={"n": 250})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["sensor_id"], body["n"], body["first_index"]) == ("S-1", 250, 350)
    assert body["timestamps"][0] == START + 350 and body["values"][0] == pytest.approx(spiky()[350], abs=1e-5)
    # persistence forecasts: each reading is predicted by the one before it
    assert body["forecast"][1] == pytest.approx(body["values"][0], abs=1e-6)
    assert all(v is not None for v in body["smoothed_errors"]) and body["threshold"][-100] is not None
    assert any(e["start"] <= 423 <= e["end"] for e in body["events"]), body["events"]
    everything = served.http.get("/v1/sensors/S-1/series", params={"n": 100_000}).json()
    assert everything["n"] == 600 and everything["forecast"][:30] == [None] * 30  # l_s readings of context
    assert served.http.get("/v1/sensors/S-1/series", params={"n": 0}).json()["field"] == "n"
    assert served.http.get("/v1/sensors/Q-0/series").json()["error"] == "unknown_sensor"


@pytest.mark.ray
@pytest.mark.slow
def test_fleet_models_and_history_json(served: Served, registry: Registry) -> None:
    fleet = served.http.get("/dashboard/api/fleet").json()
    by_id = {s["sensor_id"]: s for s in fleet["sensors"]}
    assert set(by_id) == {"S-1", "T-9"}
    s1, t9 = by_id["S-1"], by_id["T-9"]
    model = registry.models[1]
    expected = math.sqrt(model.val_loss) * model.normalizer["scale"][0]
    assert s1["model"] == {"name": "pdm-S-1-lstm", "version": "1"}
    assert s1["kpis"]["validation_rmse"] == pytest.approx(expected, rel=1e-9)
    assert s1["kpis"]["rmse_ratio"] == pytest.approx(s1["kpis"]["rolling_rmse"] / expected)
    assert s1["status"]["readings"] == 600 and s1["recent_events"]
    assert t9["model"] is None and t9["kpis"]["rmse_ratio"] is None
    assert t9["status"]["drift_severity"] in {"high", "critical"}
    assert "drift" in {a["kind"] for a in t9["alerts"]} and t9["state"] in {"warning", "critical"}
    assert fleet["sensors"][0]["sensor_id"] == "T-9"  # worst first
    assert {a["sensor_id"] for a in fleet["alerts"]} >= {"T-9"}

    models = served.http.get("/dashboard/api/models").json()
    s1_row = next(v for v in models["versions"] if v["name"] == "pdm-S-1-lstm" and v["version"] == "1")
    assert "production" in s1_row["aliases"]
    assert s1_row["url"] == "http://127.0.0.1:5000/#/models/pdm-S-1-lstm/versions/1"
    assert models["mlflow_ui"]["hint"] == f"mlflow ui --backend-store-uri {served.settings.tracking_uri}"

    entries = served.http.get("/dashboard/api/retraining").json()["entries"]
    assert [(e["sensor"], e["trigger"], e["decision"], e["outcome"]) for e in entries] == [
        ("T-9", "drift", "suppressed_cooldown", None),
        ("T-9", "drift", "fire", "rejected"),
    ]
    js = served.http.get("/dashboard/static/plotly.min.js", headers={"Accept-Encoding": "gzip"})
    assert js.status_code == 200 and js.headers["content-encoding"] == "gzip" and len(js.content) > 1_000_000


def _browser_or_skip():
    from tests.chromium import Chromium, chromium_path

    if chromium_path() is None:
        if os.environ.get("CI"):
            pytest.fail("chromium must be installed in CI (.ci/run installs it)")
        pytest.skip("chromium is not installed")
    return Chromium()


@pytest.mark.ray
@pytest.mark.slow
def test_dashboard_in_headless_chromium(served: Served) -> None:
    with _browser_or_skip() as browser:
        browser.open(f"{served.url}/dashboard#sensor=S-1")
        browser.wait_for("window.pdmDashboard && pdmDashboard.plotted === 'S-1'", timeout=60)
        assert browser.evaluate("pdmDashboard.lastError") is None
        rows = browser.evaluate("[...document.querySelectorAll('#fleet tbody tr')].map(r => r.dataset.sensor)")
        assert rows == ["T-9", "S-1"]
        # telemetry, forecast, smoothed error, threshold; the spike's anomaly band
        assert browser.evaluate("document.getElementById('sensor-plot').data.length") == 4
        assert browser.evaluate("document.getElementById('sensor-plot').layout.shapes.length") >= 1
        assert browser.evaluate("document.getElementById('sensor-plot').data[0].x.length") == 600
        assert browser.evaluate("document.querySelectorAll('#alerts li.alert').length") >= 1
        assert browser.evaluate("document.querySelectorAll('#models tbody tr').length") >= 3
        assert browser.evaluate("document.querySelectorAll('#retraining tbody tr').length") == 2
        href = browser.evaluate("document.querySelector('#models tbody a.ext').href")
        assert href.startswith("http://127.0.0.1:5000/#/models/pdm-")

        # live: a new batch shows up without reloading the page
        served.post_batch("S-1", 6, spiky())
        last_ms = (START + 699) * 1000
        browser.wait_for(
            f"document.getElementById('sensor-plot').data[0].x[599] === {last_ms} && "
            "pdmDashboard.fleet.sensors.find(s => s.sensor_id === 'S-1').status.readings === 700"
        )
        # the drill-down follows the URL
        browser.evaluate("location.hash = 'sensor=T-9'")
        browser.wait_for("pdmDashboard.plotted === 'T-9'")
        assert browser.evaluate("document.getElementById('sensor-title').textContent") == "T-9"
        browser.evaluate("location.hash = 'sensor=S-1'")
        browser.wait_for("pdmDashboard.plotted === 'S-1'")
        browser.evaluate("window.scrollTo(0, 0)")
        shot = browser.screenshot(ARTIFACTS / "dashboard.png")
    assert shot.stat().st_size > 50_000
