"""The HTTP API in process (plain FastAPI over in-process models and a real registry): every route's
contract and every kind of bad input, answered 4xx/503 and never 5xx. ``test_serve_app`` repeats the
essentials through Ray Serve. The ``ray``-marked tests put the real ``ActorFleet`` on the session's Ray."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdm_ray.tracking.runs import connect_settings
from serve_apps.api import create_app
from serve_apps.local import LocalModels, local_app
from serve_apps.versions import registry_versions
from tests.serve_apps.support import L_S, N_PREDICTIONS, Registry, promote_alias, register, sine_series

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def client(registry: Registry) -> Iterator[TestClient]:
    settings = registry.settings.model_copy(
        update={"serve": registry.settings.serve.model_copy(update={"max_body_bytes": 200_000, "version_ttl_s": 3600})}
    )
    with TestClient(local_app(settings)) as c:
        yield c


@pytest.fixture(scope="module")
def secured(registry: Registry) -> Iterator[TestClient]:
    serve = registry.settings.serve.model_copy(update={"auth_token": TOKEN})
    with TestClient(local_app(registry.settings.model_copy(update={"serve": serve}))) as c:
        yield c


def values(n: int = 100, seed: int = 0) -> list[float]:
    return sine_series(n, seed=seed)[:, 0].tolist()


def error_of(response) -> tuple[int, str, str | None]:
    body = response.json()
    assert set(body) == {"error", "detail", "field"}, body
    assert body["detail"]
    return response.status_code, body["error"], body["field"]


def test_detect_scores_the_window_after_its_context(client: TestClient) -> None:
    series = sine_series(120, seed=1)
    series[90:93, 0] += 40.0  # far beyond the tiny model's error level
    r = client.post("/v1/sensors/S-1/detect", json={"values": series[:, 0].tolist()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == {"name": "pdm-S-1-lstm", "version": "1"}
    assert (body["sensor_id"], body["n_points"], body["scored_from"]) == ("S-1", 120, L_S)
    for key in ("scores", "predictions", "smoothed_errors", "threshold"):
        assert len(body[key]) == 120 - L_S
    assert any(s["start"] <= 90 <= s["end"] for s in body["sequences"]), body["sequences"]
    assert all(L_S <= s["start"] <= s["end"] < 120 for s in body["sequences"])


def test_detect_with_command_columns(client: TestClient) -> None:
    series = sine_series(80, n_features=3)
    ok = client.post(
        "/v1/sensors/C-1/detect", json={"values": series[:, 0].tolist(), "commands": series[:, 1:].tolist()}
    )
    assert ok.status_code == 200, ok.text
    missing = client.post("/v1/sensors/C-1/detect", json={"values": series[:, 0].tolist()})
    assert error_of(missing) == (422, "invalid_input", "commands")
    ragged = client.post("/v1/sensors/C-1/detect", json={"values": [1.0, 2.0], "commands": [[0, 1], [1]]})
    assert error_of(ragged) == (422, "invalid_input", "commands")
    short = client.post("/v1/sensors/C-1/detect", json={"values": [1.0, 2.0], "commands": [[0, 1]]})
    assert error_of(short) == (422, "invalid_input", "commands")


@pytest.mark.parametrize(
    ("path", "status", "code", "field"),
    [
        ("/v1/sensors/N-1/detect", 503, "no_production_model", None),
        ("/v1/sensors/Z-9/detect", 404, "unknown_sensor", "sensor_id"),
        ("/v1/sensors/-bad/detect", 404, "unknown_sensor", "sensor_id"),
        ("/v1/sensors/a%20b/detect", 404, "unknown_sensor", "sensor_id"),
        ("/v1/sensors/" + "x" * 65 + "/detect", 404, "unknown_sensor", "sensor_id"),
        ("/v1/sensors/..%2Fetc/detect", 404, "not_found", None),  # decoded to a path no route matches
    ],
)
def test_unknown_invalid_and_unpromoted_sensors(
    client: TestClient, path: str, status: int, code: str, field: str | None
) -> None:
    r = client.post(path, json={"values": values()})
    assert error_of(r) == (status, code, field)
    if status == 503:
        assert "staging=1" in r.json()["detail"]  # the reason: only a staging version exists


@pytest.mark.parametrize(
    ("raw", "status", "code", "field"),
    [
        ('{"values": [1.0, NaN, 3.0]}', 422, "invalid_input", "values.1"),
        ('{"values": [1.0, Infinity]}', 422, "invalid_input", "values.1"),
        ('{"values": [1.0, "2"]}', 422, "invalid_input", "values.1"),
        ('{"values": [true, 1.0]}', 422, "invalid_input", "values.0"),
        ('{"values": [1e39]}', 422, "invalid_input", "values.0"),
        ('{"values": "abc"}', 422, "invalid_input", "values"),
        ('{"values": [[1.0]]}', 422, "invalid_input", "values.0"),
        ('{"values": []}', 422, "invalid_input", "values"),
        ('{"vals": [1.0]}', 422, "invalid_input", "values"),
        ('{"values": [1.0, 2.0]}', 422, "too_few_points", "values"),
        ("[1, 2, 3]", 422, "invalid_input", None),
        ('{"values": [1.0,', 400, "invalid_json", None),
        (b'{"values": [1.0], "x": "\xff"}', 400, "invalid_json", None),  # not UTF-8
        ("", 422, "invalid_input", None),
    ],
)
def test_bad_bodies_are_4xx_with_the_field(
    client: TestClient, raw: str | bytes, status: int, code: str, field: str | None
) -> None:
    r = client.post("/v1/sensors/S-1/detect", content=raw, headers={"content-type": "application/json"})
    assert error_of(r) == (status, code, field)


def test_body_limit(client: TestClient) -> None:
    big = json.dumps({"values": [1.0] * 50_000}).encode()  # ~250 kB > 200 kB
    assert error_of(client.post("/v1/sensors/S-1/detect", content=big, headers={"content-type": "application/json"}))[
        :2
    ] == (413, "payload_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold while reading
        for i in range(0, len(big), 8192):
            yield big[i : i + 8192]

    r = client.post("/v1/sensors/S-1/detect", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_forecast_timestamps_continue_from_the_last_input(client: TestClient) -> None:
    stamps = [f"2024-05-01T12:{m:02d}:00Z" for m in range(40)]
    r = client.post("/v1/sensors/S-1/forecast", json={"values": values(40), "timestamps": stamps, "horizon": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == {"name": "pdm-S-1-lstm", "version": "1"}
    assert body["interval_s"] == 60.0
    assert [p["timestamp"] for p in body["forecasts"]] == [
        "2024-05-01T12:40:00.000Z",
        "2024-05-01T12:41:00.000Z",
        "2024-05-01T12:42:00.000Z",
    ]
    last = datetime(2024, 5, 1, 12, 39, tzinfo=UTC).timestamp()
    assert [p["epoch_s"] for p in body["forecasts"]] == [last + 60, last + 120, last + 180]
    assert all(np.isfinite(p["value"]) for p in body["forecasts"])

    epoch = client.post("/v1/sensors/S-1/forecast", json={"values": values(40), "timestamps": list(range(0, 400, 10))})
    assert [p["epoch_s"] for p in epoch.json()["forecasts"]] == [400.0, 410.0, 420.0, 430.0, 440.0]
    assert len(epoch.json()["forecasts"]) == N_PREDICTIONS  # default horizon


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"horizon": N_PREDICTIONS + 1}, "horizon_too_large", "horizon"),
        ({"horizon": 0}, "invalid_input", "horizon"),
        ({"timestamps": list(range(39))}, "invalid_input", "timestamps"),
        ({"timestamps": [0] * 40}, "invalid_input", "timestamps"),
        ({"timestamps": ["noon"] * 40}, "invalid_input", "timestamps"),
        ({"timestamps": ["now"] * 40}, "invalid_input", "timestamps"),  # pandas reads it as the clock
        ({"timestamps": ["NaT"] * 40}, "invalid_input", "timestamps"),
        ({"timestamps": [f"9999-01-01T00:00:{s:02d}Z" for s in range(40)]}, "invalid_input", "timestamps"),
        ({"timestamps": [True] * 40}, "invalid_input", "timestamps.0"),  # not pydantic's timestamps.0.constrained-float
        ({"values": values(L_S - 1), "timestamps": list(range(L_S - 1))}, "too_few_points", "values"),
    ],
)
def test_bad_forecasts(client: TestClient, body: dict[str, object], code: str, field: str) -> None:
    request = {"values": values(40), "timestamps": list(range(40)), **body}
    assert error_of(client.post("/v1/sensors/S-1/forecast", json=request)) == (422, code, field)


def test_forecast_times_beyond_pandas_nanoseconds(client: TestClient) -> None:
    """pandas' nanoseconds end in 1677 and 2262; ISO times within ±1e11 epoch s are valid as numbers are."""
    stamps = [f"3000-01-01T00:{m:02d}:00Z" for m in range(40)]
    r = client.post("/v1/sensors/S-1/forecast", json={"values": values(40), "timestamps": stamps, "horizon": 1})
    assert r.status_code == 200, r.text
    (point,) = r.json()["forecasts"]
    assert (point["timestamp"], point["epoch_s"]) == ("3000-01-01T00:40:00.000Z", 32_503_682_400.0)


def test_bulk_detect_reports_each_sensor(client: TestClient) -> None:
    windows = [
        {"sensor_id": "S-1", "values": values()},
        {"sensor_id": "N-1", "values": values()},
        {"sensor_id": "Z-9", "values": values()},
        {"sensor_id": "S-1", "values": values(5)},
    ]
    r = client.post("/v1/detect", json={"windows": windows})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [(x["sensor_id"], x["status"]) for x in results] == [("S-1", 200), ("N-1", 503), ("Z-9", 404), ("S-1", 422)]
    assert results[0]["result"]["model"]["version"] == "1" and results[0]["error"] is None
    assert results[3]["error"]["error"] == "too_few_points"
    assert error_of(client.post("/v1/detect", json={"windows": []}))[:2] == (422, "invalid_input")
    bad_id = client.post("/v1/detect", json={"windows": [{"sensor_id": "no/slash", "values": [1.0]}]})
    assert error_of(bad_id) == (422, "invalid_input", "windows.0.sensor_id")


def test_reload_picks_up_a_promotion_at_once(client: TestClient, registry: Registry) -> None:
    assert client.post("/v1/sensors/S-1/detect", json={"values": values()}).json()["model"]["version"] == "1"
    new = register(registry.tracking, "S-1", registry.models[1], production=False)
    promote_alias(registry.tracking, "S-1", new.version)
    try:
        # TTL of an hour: still the cached version until an explicit reload.
        assert client.post("/v1/sensors/S-1/detect", json={"values": values()}).json()["model"]["version"] == "1"
        r = client.post("/v1/models/reload", json={"sensor_id": "S-1"})
        assert r.status_code == 200, r.text
        assert r.json()["reloaded"] == {"S-1": {"name": "pdm-S-1-lstm", "version": new.version}}
        after = client.post("/v1/sensors/S-1/detect", json={"values": values()}).json()
        assert after["model"]["version"] == new.version
        everything = client.post("/v1/models/reload")
        assert everything.json()["reloaded"]["S-1"]["version"] == new.version
        assert error_of(client.post("/v1/models/reload", json={"sensor_id": "Z-9"}))[:2] == (404, "unknown_sensor")
        assert error_of(client.post("/v1/models/reload", json={"sensor_id": "N-1"}))[:2] == (503, "no_production_model")
    finally:
        promote_alias(registry.tracking, "S-1", "1")
        client.post("/v1/models/reload")


def test_fleet_routes_without_a_fleet_are_503(client: TestClient) -> None:
    assert error_of(client.get("/v1/sensors"))[:2] == (503, "fleet_unavailable")
    body = {"seq": 0, "values": [1.0], "timestamps": [0]}
    assert error_of(client.post("/v1/sensors/S-1/readings", json=body))[:2] == (503, "fleet_unavailable")
    status = client.get("/v1/sensors/S-1")  # the registry still answers for the model part
    assert status.status_code == 200 and status.json()["model"]["production"]["version"] == "1"
    assert status.json()["status"] is None and status.json()["recent_events"] is None
    assert error_of(client.get("/v1/sensors/S-1", params={"events": -1}))[:2] == (422, "invalid_input")
    assert error_of(client.get("/v1/sensors/Z-9"))[:2] == (404, "unknown_sensor")


class StubFleet:
    """The Fleet's status calls as ``GET /v1/sensors/{id}`` makes them; ``status`` answers
    ``status_answer``, raised if it is an exception."""

    def __init__(self, status_answer: Any) -> None:
        self.status_answer = status_answer

    async def status(self, sensor_id: str) -> Any:
        if isinstance(self.status_answer, BaseException):
            raise self.status_answer
        return self.status_answer

    async def recent(self, sensor_id: str, n: int) -> Any:
        return []


class RecordedMetrics:
    """``serve_apps.metrics.ApiMetrics`` without Ray: the ``(route, sensor, status)`` of each request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None, int]] = []

    def request(self, route: str, sensor: str | None, status: int, seconds: float) -> None:
        self.requests.append((route, sensor, status))

    def anomalies(self, sensor: str, count: int) -> None:
        pass


@pytest.fixture(scope="module")
def with_fleet(registry: Registry) -> Callable[..., TestClient]:
    """The API over in-process models and the given Fleet (and metrics); server errors are answered, not raised."""
    tracking = connect_settings(registry.settings)
    versions = registry_versions(tracking, registry.settings.serve)
    models = LocalModels(tracking, registry.settings)

    def make(fleet: Any, metrics: Any = None) -> TestClient:
        app = create_app(models, versions, registry.settings.serve, fleet, metrics)
        return TestClient(app, raise_server_exceptions=False)

    return make


@pytest.mark.ray
def test_status_without_a_running_fleet_keeps_the_model_half(
    ray_cluster: None, with_fleet: Callable[..., TestClient]
) -> None:
    """The real ``ActorFleet`` over a Fleet actor name nobody started."""
    from serve_apps.app import ActorFleet

    client = with_fleet(ActorFleet("no-such-fleet", "pdm-test"))
    down = {
        "error": "fleet_unavailable",
        "detail": "the Fleet actor 'no-such-fleet' is not running in namespace 'pdm-test'",
        "field": None,
    }
    r = client.get("/v1/sensors/S-1")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"]["production"] == {"name": "pdm-S-1-lstm", "version": "1"}
    assert (body["status"], body["recent_events"]) == (None, None)
    assert body["status_error"] == {"error": down["error"], "detail": down["detail"]}
    neither = client.get("/v1/sensors/N-1")  # neither half answers
    assert (neither.status_code, neither.json()) == (503, down)
    listing = client.get("/v1/sensors")
    assert (listing.status_code, listing.json()) == (503, down)


@pytest.mark.ray
def test_a_fleet_actor_that_died_is_looked_up_again(
    ray_cluster: None, with_fleet: Callable[..., TestClient], registry: Registry, tmp_path: Path
) -> None:
    """``ActorFleet`` forgets a dead Fleet actor and finds the one started under its name next."""
    import ray

    from actors.fleet import fleet_handle
    from serve_apps.app import ActorFleet

    settings = registry.settings.model_copy(update={"home": tmp_path})
    name = "fleet-api-relookup"
    client = with_fleet(ActorFleet(name, settings.ray.namespace))
    assert error_of(client.get("/v1/sensors"))[:2] == (503, "fleet_unavailable")  # not started yet
    started: list[Any] = []
    try:
        started.append(fleet_handle(settings, name=name))
        first = client.get("/v1/sensors")  # a failed lookup is not remembered
        assert first.status_code == 200 and isinstance(first.json()["sensors"], list), first.text
        ray.kill(started[0], no_restart=True)
        died = client.get("/v1/sensors")
        assert error_of(died)[:2] == (503, "fleet_unavailable")
        assert died.json()["detail"].startswith("the Fleet actor failed: ")
        started.append(fleet_handle(settings, name=name))  # a new Fleet under the same name
        again = client.get("/v1/sensors")
        assert again.status_code == 200 and isinstance(again.json()["sensors"], list), again.text
    finally:
        for handle in started:
            ray.kill(handle, no_restart=True)


@pytest.mark.ray
def test_a_broken_sensor_actor_is_not_a_missing_fleet(
    ray_cluster: None, with_fleet: Callable[..., TestClient], registry: Registry, tmp_path: Path
) -> None:
    """The Fleet runs; the sensor's own actor fails to recover its state: 503 sensor_unavailable."""
    import ray

    from actors.fleet import fleet_handle
    from serve_apps.app import ActorFleet

    settings = registry.settings.model_copy(update={"home": tmp_path})
    damaged = tmp_path / "sensors" / "S-1"
    damaged.mkdir(parents=True)
    (damaged / "snapshot.npz").write_bytes(b"not a snapshot")
    name = "fleet-api-broken-sensor"
    handle = fleet_handle(settings, name=name)
    try:
        client = with_fleet(ActorFleet(name, settings.ray.namespace))
        r = client.get("/v1/sensors/S-1")  # the model half answers; the status half says why not
        assert r.status_code == 200, r.text
        assert r.json()["model"]["production"] == {"name": "pdm-S-1-lstm", "version": "1"}
        assert r.json()["status_error"]["error"] == "sensor_unavailable"
        assert "not a readable snapshot" in r.json()["status_error"]["detail"]
        assert error_of(client.get("/v1/sensors/S-1/series"))[:2] == (503, "sensor_unavailable")
        assert client.get("/v1/sensors").status_code == 200  # the Fleet itself is fine
    finally:
        ray.kill(handle, no_restart=True)


def test_non_finite_statistics_are_null(with_fleet: Callable[..., TestClient]) -> None:
    status = {"sensor_id": "S-1", "rolling_mse": np.float32("inf"), "drift_p": float("nan"), "readings": 3}
    r = with_fleet(StubFleet(status)).get("/v1/sensors/S-1")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == {"sensor_id": "S-1", "rolling_mse": None, "drift_p": None, "readings": 3}
    assert r.json()["status_error"] is None


def test_unexpected_errors_get_the_json_error_body(with_fleet: Callable[..., TestClient]) -> None:
    r = with_fleet(StubFleet(RuntimeError("actor state is broken"))).get("/v1/sensors/S-1")
    assert r.headers["content-type"] == "application/json"
    assert error_of(r) == (500, "internal", None)
    assert "broken" not in r.json()["detail"]  # internals stay in the log


def test_metrics_name_a_sensor_only_for_successes(with_fleet: Callable[..., TestClient]) -> None:
    metrics = RecordedMetrics()
    client = with_fleet(StubFleet({"sensor_id": "S-1"}), metrics)
    detect = "/v1/sensors/{sensor_id}/detect"
    assert client.post("/v1/sensors/S-1/detect", json={"values": values()}).status_code == 200
    for sensor in ("probe-1", "probe-2", "_not_even_a_valid_id"):
        assert client.post(f"/v1/sensors/{sensor}/detect", json={}).status_code == 422
    assert client.post("/v1/sensors/Z-9/detect", json={"values": values()}).status_code == 404
    assert client.post("/v1/sensors/N-1/detect", json={"values": values()}).status_code == 503
    assert client.get("/v1/sensors/S-1").status_code == 200
    assert metrics.requests == [
        (detect, "S-1", 200),
        (detect, None, 422),
        (detect, None, 422),
        (detect, None, 422),
        (detect, None, 404),
        (detect, None, 503),
        ("/v1/sensors/{sensor_id}", "S-1", 200),
    ]


def test_health_docs_and_unknown_routes(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/v1/sensors/{sensor_id}/detect",
        "/v1/detect",
        "/v1/sensors/{sensor_id}/forecast",
        "/v1/models/reload",
    } <= set(paths)
    assert error_of(client.get("/v2/nothing"))[:2] == (404, "not_found")
    assert error_of(client.get("/v1/sensors/S-1/detect"))[:2] == (405, "method_not_allowed")


def test_auth_on(secured: TestClient) -> None:
    assert secured.get("/healthz").status_code == 200  # never needs the token
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": TOKEN},
        {"Authorization": f"Basic {TOKEN}"},
    ):
        r = secured.post("/v1/sensors/S-1/detect", json={"values": values()}, headers=headers)
        assert error_of(r) == (401, "unauthorized", "Authorization")
        assert r.headers["www-authenticate"] == "Bearer"
    assert secured.get("/openapi.json").status_code == 401
    ok = secured.post("/v1/sensors/S-1/detect", json={"values": values()}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200


def test_auth_off(client: TestClient) -> None:
    r = client.post("/v1/sensors/S-1/detect", json={"values": values()}, headers={"Authorization": "Bearer anything"})
    assert r.status_code == 200


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.dictionaries(
            st.sampled_from(["values", "commands", "timestamps", "horizon", "seq", "windows", "sensor_id", "x"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(
        [
            "/v1/sensors/S-1/detect",
            "/v1/sensors/C-1/detect",
            "/v1/sensors/S-1/forecast",
            "/v1/detect",
            "/v1/models/reload",
            "/v1/sensors/S-1/readings",
        ]
    ),
    body=json_values,
)
def test_fuzzed_bodies_never_cause_server_errors(client: TestClient, route: str, body: object) -> None:
    r = client.post(route, content=json.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code < 500 or r.json()["error"] in {"fleet_unavailable", "no_production_model"}, (
        r.status_code,
        r.text,
    )


def test_openapi_fuzz_has_no_server_errors(client: TestClient) -> None:
    """Schemathesis draws requests for every operation in /openapi.json; none may get a bare 5xx."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 9  # with GET /v1/sensors/{id}/series
    seen: set[str] = set()

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(case=st.one_of([op.as_strategy() for op in operations]))
    def call(case) -> None:
        response = case.call()
        seen.add(case.operation.label)
        if response.status_code >= 500:  # only the 503s that say why are allowed
            assert response.json()["error"] in {"fleet_unavailable", "no_production_model"}, response.text

    call()
    assert len(seen) >= 6
