"""The API through Ray Serve for real: the session's Serve proxy, a real registry, a real Fleet actor.

Two applications run side by side: ``pdm-open`` at ``/`` (no token) and ``pdm-auth`` at
``/auth`` (bearer token). Both are deleted at the end of the module.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serve_apps.support import L_S, Registry, promote_alias, register, sine_series

pytestmark = [pytest.mark.ray, pytest.mark.slow]

TOKEN = "serve-test-token"


@dataclass(frozen=True)
class Served:
    url: str
    http: httpx.Client


@pytest.fixture(scope="module")
def served(serve_port: int, registry: Registry) -> Iterator[Served]:
    import ray
    from ray import serve
    from ray.util import list_named_actors

    from actors.fleet import fleet_handle
    from serve_apps.app import application

    # The open app runs each replica on one event loop (serve.one_event_loop), the other with Serve's
    # threads; the open app batches concurrent requests at the ingress (serve.ingress_batching), the other not.
    open_serve = registry.settings.serve.model_copy(update={"version_ttl_s": 3600.0, "one_event_loop": True})
    open_settings = registry.settings.model_copy(update={"serve": open_serve})
    auth_serve = registry.settings.serve.model_copy(update={"auth_token": TOKEN, "ingress_batching": False})
    auth_settings = registry.settings.model_copy(update={"serve": auth_serve})
    actors_before = set(list_named_actors())
    fleet_handle(open_settings)
    serve.run(application(open_settings), name="pdm-open", route_prefix="/")
    serve.run(application(auth_settings), name="pdm-auth", route_prefix="/auth")
    url = f"http://127.0.0.1:{serve_port}"
    try:
        with httpx.Client(base_url=url, timeout=120) as http:
            assert http.get("/healthz").json() == {"status": "ok"}  # our port, not someone else's Serve
            yield Served(url, http)
    finally:
        serve.delete("pdm-open")
        serve.delete("pdm-auth")
        for name in set(list_named_actors()) - actors_before:
            with contextlib.suppress(ValueError):
                ray.kill(ray.get_actor(name, namespace=open_settings.ray.namespace), no_restart=True)


def values(n: int = 100, seed: int = 0) -> list[float]:
    return sine_series(n, seed=seed)[:, 0].tolist()


def error_of(response: httpx.Response) -> tuple[int, str, str | None]:
    body = response.json()
    assert set(body) == {"error", "detail", "field"} and body["detail"], body
    return response.status_code, body["error"], body["field"]


def test_detect_through_the_model_deployment(served: Served) -> None:
    series = sine_series(120, seed=1)
    series[90:93, 0] += 40.0
    r = served.http.post("/v1/sensors/S-1/detect", json={"values": series[:, 0].tolist()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == {"name": "pdm-S-1-lstm", "version": "1"}
    assert (body["n_points"], body["scored_from"], len(body["scores"])) == (120, L_S, 120 - L_S)
    assert any(s["start"] <= 90 <= s["end"] for s in body["sequences"])

    commands = sine_series(80, n_features=3)
    ok = served.http.post(
        "/v1/sensors/C-1/detect", json={"values": commands[:, 0].tolist(), "commands": commands[:, 1:].tolist()}
    )
    assert ok.status_code == 200 and ok.json()["model"]["name"] == "pdm-C-1-lstm"


def test_errors_cross_the_handle_with_status_and_field(served: Served) -> None:
    post = served.http.post
    assert error_of(post("/v1/sensors/S-1/detect", json={"values": values(L_S)})) == (422, "too_few_points", "values")
    assert error_of(post("/v1/sensors/C-1/detect", json={"values": values()})) == (422, "invalid_input", "commands")
    assert error_of(post("/v1/sensors/N-1/detect", json={"values": values()}))[:2] == (503, "no_production_model")
    assert error_of(post("/v1/sensors/Z-9/detect", json={"values": values()})) == (404, "unknown_sensor", "sensor_id")
    assert error_of(post("/v1/sensors/-x/detect", json={"values": values()})) == (404, "unknown_sensor", "sensor_id")
    nan = post("/v1/sensors/S-1/detect", content=b'{"values": [1, NaN]}', headers={"content-type": "application/json"})
    assert error_of(nan) == (422, "invalid_input", "values.1")
    far = post("/v1/sensors/S-1/forecast", json={"values": values(40), "timestamps": list(range(40)), "horizon": 99})
    assert error_of(far) == (422, "horizon_too_large", "horizon")


def test_requests_batched_at_the_ingress_answer_as_requests_sent_alone(served: Served) -> None:
    """Concurrent requests: the open app sends them to the model as one call, the auth app one call each."""
    series = [sine_series(120, seed=seed)[:, 0] for seed in range(6)]
    series[2][90:93] += 40.0
    bodies = [{"values": s.tolist()} for s in series] + [{"values": values(L_S)}]  # the last is too short

    async def post_all(prefix: str, headers: dict[str, str]) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=served.url, timeout=120, headers=headers) as http:
            return await asyncio.gather(*(http.post(f"{prefix}/v1/sensors/S-1/detect", json=b) for b in bodies))

    for _ in range(3):  # a few bursts, so some arrive while a call is out
        batched = asyncio.run(post_all("", {}))
        alone = asyncio.run(post_all("/auth", {"Authorization": f"Bearer {TOKEN}"}))
        assert [r.status_code for r in batched] == [r.status_code for r in alone] == [200] * 6 + [422]
        assert error_of(batched[-1]) == error_of(alone[-1]) == (422, "too_few_points", "values")
        for b, a in zip(batched[:-1], alone[:-1], strict=True):
            b, a = b.json(), a.json()
            assert [(s["start"], s["end"]) for s in b["sequences"]] == [(s["start"], s["end"]) for s in a["sequences"]]
            np.testing.assert_allclose(b["predictions"], a["predictions"], rtol=1e-5, atol=1e-5)
        assert any(s["start"] <= 90 <= s["end"] for s in batched[2].json()["sequences"])


def test_forecast_timestamps(served: Served) -> None:
    stamps = [1_700_000_000 + 15 * i for i in range(40)]  # last input: 2023-11-14T22:23:05Z
    r = served.http.post("/v1/sensors/S-1/forecast", json={"values": values(40), "timestamps": stamps, "horizon": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["interval_s"] == 15.0 and body["model"]["version"] == "1"
    assert [p["epoch_s"] for p in body["forecasts"]] == [stamps[-1] + 15.0, stamps[-1] + 30.0]
    assert [p["timestamp"] for p in body["forecasts"]] == ["2023-11-14T22:23:20.000Z", "2023-11-14T22:23:35.000Z"]


def test_a_window_beyond_one_grpc_message_is_served_whole(served: Served) -> None:
    """A body over gRPC's 4 MiB limit through the proxy, and a window the ingress sends by reference.

    The session's Ray runs with ``serve.grpc_transport`` (tests/conftest.py), so the proxy sends
    requests to ``Api`` over gRPC; ``Api`` sends small calls by value, this one not (``fits_by_value``).
    """
    n = 100_000  # serve.max_window_points
    long, stamps = values(n), [1_700_000_000 + 15 * i for i in range(n)]
    content = json.dumps({"values": long, "timestamps": stamps, "horizon": 2}, indent=4).encode()
    assert len(content) > 4 << 20
    whole = served.http.post("/v1/sensors/S-1/forecast", content=content, headers={"content-type": "application/json"})
    tail = served.http.post(
        "/v1/sensors/S-1/forecast", json={"values": long[-L_S:], "timestamps": stamps[-L_S:], "horizon": 2}
    )
    assert whole.status_code == tail.status_code == 200, whole.text
    assert whole.json()["forecasts"] == tail.json()["forecasts"]  # a forecast reads the last l_s points


def test_bulk_detect(served: Served) -> None:
    windows = [{"sensor_id": s, "values": values()} for s in ("S-1", "S-1", "N-1", "Z-9")]
    r = served.http.post("/v1/detect", json={"windows": windows})
    assert [(x["sensor_id"], x["status"]) for x in r.json()["results"]] == [
        ("S-1", 200),
        ("S-1", 200),
        ("N-1", 503),
        ("Z-9", 404),
    ]


def test_readings_and_status_go_to_the_fleet(served: Served) -> None:
    batch = {"seq": 0, "values": values(20), "timestamps": [1000.0 + i for i in range(20)]}
    r = served.http.post("/v1/sensors/S-1/readings", json=batch)
    assert r.status_code == 200, r.text
    ack = r.json()["ack"]
    assert (ack["sensor_id"], ack["seq"], ack["accepted"], ack["duplicate"]) == ("S-1", 0, 20, False)
    again = served.http.post("/v1/sensors/S-1/readings", json=batch).json()["ack"]
    assert again["duplicate"] and again["accepted"] == 0
    backwards = {"seq": 1, "values": [1.0, 2.0], "timestamps": [5000.0, 4000.0]}
    assert error_of(served.http.post("/v1/sensors/S-1/readings", json=backwards))[:2] == (422, "invalid_input")

    assert "S-1" in served.http.get("/v1/sensors").json()["sensors"]
    status = served.http.get("/v1/sensors/S-1").json()
    assert status["model"]["production"] == {"name": "pdm-S-1-lstm", "version": "1"}
    assert status["status"]["readings"] == 20
    assert status["recent_events"] == []  # the actor has no forecaster here, so nothing is scored
    assert error_of(served.http.get("/v1/sensors/Q-7"))[:2] == (404, "unknown_sensor")


def test_promotion_is_served_after_reload_without_restart(served: Served, registry: Registry) -> None:
    detect = lambda: served.http.post("/v1/sensors/S-1/detect", json={"values": values()}).json()  # noqa: E731
    assert detect()["model"]["version"] == "1"
    new = register(registry.tracking, "S-1", registry.models[1], production=False)
    promote_alias(registry.tracking, "S-1", new.version)
    try:
        assert detect()["model"]["version"] == "1"  # cached for version_ttl_s (an hour here)
        reloaded = served.http.post("/v1/models/reload", json={"sensor_id": "S-1"})
        assert reloaded.json()["reloaded"]["S-1"]["version"] == new.version
        assert detect()["model"]["version"] == new.version  # loaded by the multiplexed deployment on demand
    finally:
        promote_alias(registry.tracking, "S-1", "1")
        served.http.post("/v1/models/reload")


def test_auth_on_the_second_application(served: Served) -> None:
    body = {"values": values()}
    assert served.http.get("/auth/healthz").status_code == 200
    assert error_of(served.http.post("/auth/v1/sensors/S-1/detect", json=body)) == (
        401,
        "unauthorized",
        "Authorization",
    )
    wrong = served.http.post("/auth/v1/sensors/S-1/detect", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    ok = served.http.post("/auth/v1/sensors/S-1/detect", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ok.json()["model"]["name"] == "pdm-S-1-lstm"
    assert served.http.post("/v1/sensors/S-1/detect", json=body).status_code == 200  # the open app needs none


def test_direct_ingress_answers_as_the_proxy_does(served: Served, direct_ingress_ports: range) -> None:
    """Each app's ``Api`` replica also answers on its own port (no proxy hop), under its route
    prefix: same scores, same auth."""
    body = {"values": values()}
    via_proxy = served.http.post("/v1/sensors/S-1/detect", json=body)
    answers: dict[int, httpx.Response] = {}
    for port in direct_ingress_ports:
        with contextlib.suppress(httpx.ConnectError):
            answers[port] = httpx.post(f"http://127.0.0.1:{port}/v1/sensors/S-1/detect", json=body, timeout=120)
    assert sorted(r.status_code for r in answers.values()) == [200, 404]  # pdm-open; pdm-auth lives under /auth
    assert next(r for r in answers.values() if r.status_code == 200).json() == via_proxy.json()
    auth_url = next(f"http://127.0.0.1:{port}/auth" for port, r in answers.items() if r.status_code == 404)
    assert error_of(httpx.post(f"{auth_url}/v1/sensors/S-1/detect", json=body, timeout=120))[0] == 401
    token = {"Authorization": f"Bearer {TOKEN}"}
    with_token = httpx.post(f"{auth_url}/v1/sensors/S-1/detect", json=body, headers=token, timeout=120)
    assert with_token.json()["scores"] == via_proxy.json()["scores"]


def test_docs_and_openapi_fuzz_over_http(served: Served) -> None:
    assert served.http.get("/docs").status_code == 200
    schema = schemathesis.openapi.from_url(f"{served.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(case=st.one_of([op.as_strategy() for op in operations]))
    def call(case: schemathesis.Case) -> None:
        response = case.call(base_url=served.url)
        if response.status_code >= 500:
            assert response.json()["error"] in {"fleet_unavailable", "no_production_model"}, response.text

    call()


def test_request_and_anomaly_metrics_reach_prometheus(served: Served) -> None:
    import ray

    series = sine_series(120, seed=2)
    series[60:63, 0] += 40.0
    flagged = served.http.post("/v1/sensors/S-1/detect", json={"values": series[:, 0].tolist()}).json()
    assert flagged["sequences"]
    (node,) = ray.nodes()
    url = f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"
    wanted = (
        "ray_pdm_serve_requests_total{",
        'route="/v1/sensors/{sensor_id}/detect"',
        "ray_pdm_serve_anomalies_flagged_total{",
        "ray_pdm_serve_request_latency_ms_bucket{",
    )
    text = ""
    deadline = time.monotonic() + 120  # Ray exports every few seconds
    while time.monotonic() < deadline and not all(w in text for w in wanted):
        time.sleep(2)
        text = httpx.get(url, timeout=10).text
    missing = [w for w in wanted if w not in text]
    assert not missing, missing
    anomalies = [line for line in text.splitlines() if line.startswith("ray_pdm_serve_anomalies_flagged_total{")]
    assert any('sensor="S-1"' in line and float(line.rsplit(" ", 1)[1]) >= 1 for line in anomalies), anomalies
