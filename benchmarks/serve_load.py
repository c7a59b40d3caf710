"""Load test of ``POST /v1/sensors/{id}/detect`` through Ray Serve vs. the same app on plain uvicorn.

Both servers run the same FastAPI app (``serve_apps.api.create_app``: same validation, same
JSON) over the same registered model; Serve puts the ``Api`` ingress and the multiplexed,
batched ``SensorModels`` deployment behind its proxy (and, in a second Ray, in its fast mode:
requests go straight to the ``Api`` replica's own port, ``serve.direct_ingress_port``, and each
replica runs on one event loop, ``serve.one_event_loop``), the baseline (``serve_apps.local``)
scores in the uvicorn process itself. Model (``--model``): the paper's LSTM (2 x 80 units,
trained 2 epochs), a small one (16 units, 1 epoch) or the default Transformer (d_model 64,
2 layers, tokens of 10 steps; 2 epochs), ``l_s`` = 50, 10 predictions, on channel
0 of the sample channel T-1, registered in MLflow (SQLite in a temp dir) as production. Each
request posts a 250-point window of T-1's test series (200 scored points); the threshold runs
with the default settings.

For each server and 1 / 16 concurrent clients (keep-alive aiohttp sessions in this
process, each timed once its connection is open) it runs ``--rounds`` rounds after a
warm-up and prints the medians over rounds of p50, p99 and throughput, then points/s
through the bulk ``POST /v1/detect`` (16 windows per request, 4 clients), and the CPU time
each process spent per request over the 16-client rounds. Counted: the proxy, the ``Api`` and
``SensorModels`` replicas or the uvicorn process, and the client (this process: the load
generator and, in the Serve modes, the Ray driver too); their sum is the printed total. The
Serve controller, raylet and GCS server are printed beside it, not in it; Ray's log monitor,
dashboard agent and idle workers are not counted. The bulk rounds time ``--requests`` / 16
requests (48 at 800), so their "p99" is printed with its count: below 100 latencies
``np.percentile`` falls between the two largest, i.e. near the max. Usage::

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/serve_load.py [--model paper|small|transformer] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import aiohttp
import httpx
import numpy as np
import psutil

from pdm_ray.config import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
WINDOW = 250
SENSOR = "T-1"


# --model: (network kind, LSTM layers, training epochs); the Transformer keeps the config's defaults.
MODELS = {"paper": ("lstm", [80, 80], 2), "small": ("lstm", [16], 1), "transformer": ("transformer", [80, 80], 2)}


def bench_settings(home: Path, model: str) -> Settings:
    kind, layers, epochs = MODELS[model]
    base = load_settings(env={}).model_dump(mode="json")
    base["home"] = str(home)
    base["windows"] = {"l_s": 50, "n_predictions": 10}
    base["lstm"] = {**base["lstm"], "layers": layers}
    base["train"] = {**base["train"], "model": kind, "epochs": epochs}
    base["serve"] = {**base["serve"], "version_ttl_s": 3600.0}
    return Settings.model_validate(base)


def prepare(home: Path, model_size: str) -> Settings:
    """Train and register the benchmark model (production); returns the settings naming the store."""
    from pdm_ray.config import NormalizeSettings
    from pdm_ray.data.channels import load_channel
    from pdm_ray.data.normalize import fit_normalizer
    from pdm_ray.data.windows import make_windows
    from pdm_ray.models import ModelSpec, train
    from pdm_ray.tracking.registry import PRODUCTION, model_name, register_version
    from pdm_ray.tracking.runs import connect_settings

    settings = bench_settings(home, model_size)
    channel = load_channel(ROOT / "data" / "sample", SENSOR)
    series = channel.train[:, :1]
    normalizer = fit_normalizer(series, NormalizeSettings())
    X, y = make_windows(normalizer.transform(series), settings.windows.l_s, settings.windows.n_predictions)
    start = time.perf_counter()
    model = train(ModelSpec.from_settings(settings, 1), settings.train, X, y)
    print(f"trained {SENSOR} {model_size} model in {time.perf_counter() - start:.1f}s", flush=True)
    model = replace(model, normalizer=normalizer.to_dict())
    tracking = connect_settings(settings)
    run_id = tracking.client.create_run(tracking.experiment_id, run_name="serve-load").info.run_id
    info = register_version(tracking, run_id, model, SENSOR)
    tracking.client.set_registered_model_alias(model_name(SENSOR, settings.train.model), PRODUCTION, info.version)
    return settings


def windows(n: int) -> list[list[float]]:
    """``n`` 250-point windows cut from T-1's test series (values only)."""
    from pdm_ray.data.channels import load_channel

    test = load_channel(ROOT / "data" / "sample", SENSOR).test[:, 0]
    starts = np.linspace(0, len(test) - WINDOW, n).astype(int)
    return [test[s : s + WINDOW].tolist() for s in starts]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Round:
    p50_ms: float
    p99_ms: float
    rps: float
    n: int  # latencies per round that p50 and p99 come from


def p99_label(n: int) -> str:
    """The p99's label with its count: from fewer than 100 latencies ``np.percentile`` lies between the two largest."""
    return f"p99 (n={n})" if n >= 100 else f"p99 (n={n}: near the max)"


async def run_round(url: str, path: str, bodies: list[bytes], clients: int, requests: int) -> Round:
    """``requests`` POSTs of JSON ``bodies`` spread over ``clients`` concurrent keep-alive clients.

    Each client opens its connection with one untimed request first, so the latencies are
    those of requests on open connections, not of 16 clients being created and connecting at
    the same instant (which alone made up the p99 before: every request at or above it was
    some client's first). The clients are aiohttp sessions posting bodies encoded once: they
    share the two cores with the servers, and httpx with ``json=`` spent 2.2-3.0 ms of CPU per
    request on the Serve path where aiohttp spends 0.5 ms (BENCHMARKS.md).
    """
    latencies: list[float] = []
    per_client = max(1, requests // clients)
    headers = {"content-type": "application/json"}
    sessions = [
        aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(limit=1), timeout=aiohttp.ClientTimeout(total=120))
        for _ in range(clients)
    ]

    async def post(session: aiohttp.ClientSession, body: bytes) -> None:
        async with session.post(path, data=body, headers=headers) as r:
            text = await r.read()
            if r.status != 200:
                raise RuntimeError(f"{path}: HTTP {r.status}: {text[:300]!r}")

    async def client(k: int, session: aiohttp.ClientSession) -> None:
        for i in range(per_client):
            t0 = time.perf_counter()
            await post(session, bodies[(k * per_client + i) % len(bodies)])
            latencies.append(time.perf_counter() - t0)

    try:
        await asyncio.gather(*(post(s, bodies[k % len(bodies)]) for k, s in enumerate(sessions)))
        t0 = time.perf_counter()
        await asyncio.gather(*(client(k, s) for k, s in enumerate(sessions)))
        elapsed = time.perf_counter() - t0
    finally:
        await asyncio.gather(*(s.close() for s in sessions))
    lat = np.sort(np.asarray(latencies)) * 1e3
    return Round(float(np.percentile(lat, 50)), float(np.percentile(lat, 99)), len(lat) / elapsed, len(lat))


# Processes whose CPU time is counted, by a marker in their command line; ``cpu_seconds`` adds
# the client (this process: the load generator and, in the Serve modes, also the Ray driver).
SERVE_PROCESSES = {
    "proxy": "ProxyActor",
    "Api": "ServeReplica:pdm:Api",
    "SensorModels": "ServeReplica:pdm:SensorModels",
    "ServeController": "ray::ServeController",
}
BASELINE_PROCESSES = {"uvicorn": "--baseline-server"}
# Ray's binaries, by process name among this process's descendants (``ray.init`` starts them).
RAY_BINARIES = {"raylet": "raylet", "GCS": "gcs_server"}
# Counted and printed, but kept out of the request path's total: Ray's and Serve's own upkeep.
OUTSIDE_PATH = ("ServeController", *RAY_BINARIES)


def cpu_seconds(markers: dict[str, str], binaries: dict[str, str] | None = None) -> dict[str, float]:
    """User + system CPU seconds of the processes named by ``markers`` (in the command line), of
    this process's descendants named by ``binaries`` (process name), and of this one (the client)."""
    binaries = binaries or {}
    out = dict.fromkeys([*markers, *binaries], 0.0)
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        for name, marker in markers.items():
            if marker in cmdline:
                with contextlib.suppress(psutil.NoSuchProcess):
                    times = proc.cpu_times()
                    out[name] += times.user + times.system
    for proc in psutil.Process().children(recursive=True) if binaries else []:
        with contextlib.suppress(psutil.NoSuchProcess):
            for name, binary in binaries.items():
                if proc.name() == binary:
                    times = proc.cpu_times()
                    out[name] += times.user + times.system
    own = psutil.Process().cpu_times()
    out["client"] = own.user + own.system
    return out


def path_cpu(cpu: dict[str, float]) -> tuple[str, float]:
    """Which processes the request path's CPU total counts ("proxy+Api+SensorModels+client"), and the total."""
    path = {k: v for k, v in cpu.items() if k not in OUTSIDE_PATH}
    return "+".join(path), sum(path.values())


def cpu_summary(cpu: dict[str, float]) -> str:
    """Each counted process's CPU ms per request, the request path's total, and the total with Ray's own."""
    label, total = path_cpu(cpu)
    text = ", ".join(f"{k} {v:.2f}" for k, v in cpu.items()) + f"; total {label} {total:.2f}"
    if outside := [k for k in cpu if k in OUTSIDE_PATH]:
        text += f"; with {'+'.join(outside)} {sum(cpu.values()):.2f}"
    return text


def measure(
    url: str, rounds: int, requests: int, processes: dict[str, str], binaries: dict[str, str] | None = None
) -> tuple[dict[str, Round], dict[str, float]]:
    """Medians over rounds for 1 and 16 clients on /detect, and the bulk endpoint.

    Also returns each process's CPU milliseconds per request over the 16-client rounds
    (``processes`` and ``binaries``, plus the client), to show where a request's cost goes.
    """
    single = [json.dumps({"values": w}, separators=(",", ":")).encode() for w in windows(64)]
    bulk = [
        json.dumps(
            {"windows": [{"sensor_id": SENSOR, "values": w} for w in windows(16)]}, separators=(",", ":")
        ).encode()
    ]
    path = f"/v1/sensors/{SENSOR}/detect"
    asyncio.run(run_round(url, path, single, 16, 160))  # warm-up: model load, every padded batch shape
    asyncio.run(run_round(url, "/v1/detect", bulk, 4, 16))
    out: dict[str, Round] = {}
    cpu_ms: dict[str, float] = {}
    for label, p, bodies, clients, n in [
        ("detect, 1 client", path, single, 1, requests // 2),
        ("detect, 16 clients", path, single, 16, requests),
        ("bulk /v1/detect (16 windows), 4 clients", "/v1/detect", bulk, 4, max(8, requests // 16)),
    ]:
        before = cpu_seconds(processes, binaries) if clients == 16 else {}
        results = [asyncio.run(run_round(url, p, bodies, clients, n)) for _ in range(rounds)]
        if before:
            after = cpu_seconds(processes, binaries)
            sent = rounds * (clients + max(1, n // clients) * clients)  # each client's untimed first request too
            cpu_ms = {k: 1e3 * (after[k] - before[k]) / sent for k in after}
            print("  CPU ms per request at 16 clients: " + cpu_summary(cpu_ms))
        res = out[label] = Round(
            statistics.median(r.p50_ms for r in results),
            statistics.median(r.p99_ms for r in results),
            statistics.median(r.rps for r in results),
            results[0].n,
        )
        print(
            f"  {label}: p50 {res.p50_ms:.1f} ms, {p99_label(res.n)} {res.p99_ms:.1f} ms, {res.rps:.1f} req/s",
            flush=True,
        )
    return out, cpu_ms


def wait_healthy(url: str, proc: subprocess.Popen[bytes] | None = None, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not become healthy in {timeout_s:.0f}s")


def baseline_server(home: str, port: int, model: str) -> None:
    """Child process: the same app over in-process models, one uvicorn worker."""
    import uvicorn

    from serve_apps.local import local_app

    uvicorn.run(local_app(bench_settings(Path(home), model)), host="127.0.0.1", port=port, log_level="warning")


def bench_baseline(home: Path, model: str, rounds: int, requests: int) -> tuple[dict[str, Round], dict[str, float]]:
    port = free_port()
    cmd = [sys.executable, __file__, "--baseline-server", str(home), "--port", str(port), "--model", model]
    proc = subprocess.Popen(cmd, cwd=ROOT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        return measure(url, rounds, requests, BASELINE_PROCESSES)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# Serve's switches as off, for each start (``ray/serve/_private/constants.py`` reads them when a
# process starts; "1" is on). An unset RAY_SERVE_PROXY_USE_GRPC still means gRPC under
# RAY_SERVE_USE_GRPC_BY_DEFAULT or RAY_SERVE_THROUGHPUT_OPTIMIZED, so off is "0", and those two
# and HAProxy (which forces direct ingress) are held off too. ``cluster_env`` turns on what the
# settings ask for; ``replica_env`` (the ``Api`` and ``SensorModels`` runtime env) overrides
# the two one-event-loop switches, whose default is "1".
SERVE_SWITCHES_OFF = {
    "RAY_SERVE_PROXY_USE_GRPC": "0",
    "RAY_SERVE_USE_GRPC_BY_DEFAULT": "0",
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "0",
    "RAY_SERVE_ENABLE_DIRECT_INGRESS": "0",
    "RAY_SERVE_ENABLE_HA_PROXY": "0",
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "1",
    "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "1",
}
# Set by ``cluster_env`` with direct ingress only; removed for starts without it.
DIRECT_INGRESS_KEYS = (
    "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT",
    "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT",
    "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S",
    "RAY_SERVE_PORT_QUARANTINE_S",
)


def bench_serve(
    settings: Settings, rounds: int, requests: int, direct: bool = False
) -> tuple[dict[str, Round], dict[str, float]]:
    """Serve through its proxy, or (``direct``) straight to the ``Api`` replica's own port
    with every replica on one event loop (``serve.direct_ingress_port``, ``serve.one_event_loop``).

    Each mode gets its own Ray: Serve reads the direct-ingress switch when its processes start.
    """
    import ray
    from ray import serve

    from serve_apps.app import application
    from serve_apps.serve_env import cluster_env

    if direct:
        serve_cfg = settings.serve.model_copy(update={"direct_ingress_port": free_port(), "one_event_loop": True})
        settings = settings.model_copy(update={"serve": serve_cfg})
    # Every switch set for this start (an "off" one too), so none comes from the caller's shell;
    # inherited by the raylet and every replica; the caller's values come back afterwards.
    env = SERVE_SWITCHES_OFF | cluster_env(settings.serve)
    keys = {*env, *DIRECT_INGRESS_KEYS}
    saved = {key: os.environ.get(key) for key in keys}
    for key in keys:
        if key in env:
            os.environ[key] = env[key]
        else:
            os.environ.pop(key, None)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="pdm-bench")
    try:
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(application(settings), name="pdm", route_prefix="/")
        url = f"http://127.0.0.1:{settings.serve.direct_ingress_port if direct else port}"
        wait_healthy(url)
        return measure(url, rounds, requests, SERVE_PROCESSES, RAY_BINARIES)
    finally:
        serve.shutdown()
        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        choices=sorted(MODELS),
        default="paper",
        help="paper: LSTM 2x80; small: LSTM 16; transformer: the default one",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=400, help="requests per round at 16 clients")
    parser.add_argument("--baseline-server", metavar="HOME", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_server:
        baseline_server(args.baseline_server, args.port, args.model)
        return

    home = Path(tempfile.mkdtemp(prefix="pdm-serve-load-"))
    try:
        settings = prepare(home, args.model)
        print("plain FastAPI + uvicorn (in-process model):", flush=True)
        plain, plain_cpu = bench_baseline(home, args.model, args.rounds, args.requests)
        print("Ray Serve (Api -> SensorModels via DeploymentHandle):", flush=True)
        served, served_cpu = bench_serve(settings, args.rounds, args.requests)
        print("Ray Serve, fast mode (direct ingress to Api, one event loop per replica):", flush=True)
        direct, direct_cpu = bench_serve(settings, args.rounds, args.requests, direct=True)
    finally:
        shutil.rmtree(home, ignore_errors=True)

    print(f"\nmedians over {args.rounds} rounds; {args.model} model; {WINDOW}-point windows, l_s=50 (200 scored each)")
    print(f"{'case':42} {'server':8} {'p50 ms':>8} {'p99 ms':>8} {'n':>5} {'req/s':>8} {'points/s':>10}")
    for label in plain:
        points = WINDOW * (16 if label.startswith("bulk") else 1)
        for name, res in (("uvicorn", plain[label]), ("serve", served[label]), ("direct", direct[label])):
            print(
                f"{label:42} {name:8} {res.p50_ms:8.1f} {res.p99_ms:8.1f} {res.n:5d} {res.rps:8.1f} "
                f"{res.rps * points:10.0f}"
            )
        for name, res in (("serve", served[label]), ("direct", direct[label])):
            print(f"{'':42} {name + '/uv':8} {'':8} {'':8} {'':5} {res.rps / plain[label].rps:8.2f}x")
    if few := sorted({res.n for cases in (plain, served, direct) for res in cases.values() if res.n < 100}):
        print(f"n = latencies per round; with n = {', '.join(map(str, few))} (< 100) the p99 is near the max")
    print(
        "\nCPU ms per request at 16 clients (all rounds, each client's first request included); client = this"
        " process (load generator, and the Ray driver in the Serve modes); total = the processes named in it;"
        " Ray's log monitor, dashboard agent and idle workers are not counted:"
    )
    for name, cpu in (("uvicorn", plain_cpu), ("serve", served_cpu), ("direct", direct_cpu)):
        print(f"  {name:8} " + cpu_summary(cpu))


if __name__ == "__main__":
    main()
