"""A/B of one boolean ``serve`` setting on the Serve proxy path, in alternating starts.

The box's speed drifts between runs by more than most changes to Serve's path are worth, so
a setting is judged only against itself flipped, within one run: ``--pairs`` pairs of starts
of the application, the order alternating (off, on, on, off, ...), each measured as
``benchmarks/serve_load.py`` measures the proxy path (same model, windows, rounds and clients;
each start gets its own Ray, so settings read at Ray's start, ``serve_apps.serve_env``, apply;
``serve_load.bench_serve`` sets the Serve switches it can flip for each start, off ones too,
so the caller's shell cannot turn an "off" arm on, and puts the caller's values back after).
Prints each start's 16-client figures and the medians per arm; the CPU figure is the sum over
the proxy, ``Api`` and ``SensorModels`` replicas and the client (this process, also the Ray
driver), and the one after it adds the Serve controller, raylet and GCS server. Usage::

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/serve_ab.py grpc_transport [--model small] [--pairs 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

import serve_load

from pdm_ray.config import ServeSettings

LABEL = "detect, 16 clients"


def main() -> None:
    flags = sorted(name for name, field in ServeSettings.model_fields.items() if field.annotation is bool)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("setting", choices=flags, help="the serve setting to flip")
    parser.add_argument("--model", choices=sorted(serve_load.MODELS), default="small")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=800, help="requests per round at 16 clients")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="pdm-serve-ab-"))
    starts: dict[bool, list[tuple[serve_load.Round, float, float]]] = {False: [], True: []}
    path = "proxy+Api+SensorModels+client"
    try:
        settings = serve_load.prepare(home, args.model)
        for pair in range(args.pairs):
            for value in (False, True) if pair % 2 == 0 else (True, False):
                serve_cfg = settings.serve.model_copy(update={args.setting: value})
                print(f"=== pair {pair + 1}, {args.setting}={value}", flush=True)
                rounds, cpu_ms = serve_load.bench_serve(
                    settings.model_copy(update={"serve": serve_cfg}), args.rounds, args.requests
                )
                path, path_ms = serve_load.path_cpu(cpu_ms)
                starts[value].append((rounds[LABEL], path_ms, sum(cpu_ms.values())))
    finally:
        shutil.rmtree(home, ignore_errors=True)

    n = starts[False][0][0].n if starts[False] else 0
    print(
        f"\n{args.model} model, {LABEL}, proxy path; each start: req/s, {serve_load.p99_label(n)} ms, "
        f"CPU ms per request ({path}), the same with ServeController+raylet+GCS"
    )
    for value, runs in starts.items():
        each = "; ".join(f"{r.rps:.1f}, {r.p99_ms:.0f}, {cpu:.2f}, {cpu_all:.2f}" for r, cpu, cpu_all in runs)
        rps = statistics.median(r.rps for r, _, _ in runs)
        p99 = statistics.median(r.p99_ms for r, _, _ in runs)
        print(f"  {args.setting}={value!s:5}  median {rps:.1f} req/s, p99 {p99:.0f} ms  ({each})")


if __name__ == "__main__":
    main()
