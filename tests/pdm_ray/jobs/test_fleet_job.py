"""The Ray job entry point against a separate local cluster started with ``ray start --head``.

Small sizes (two short sample channels, one tiny trial each) keep it to a few minutes; the
job still runs every real step: Tune + MLflow, the registry, Serve over HTTP, the sensor
actors, scoring and the HTML report.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from pdm_ray.config import load_settings
from pdm_ray.streaming import SensorStore, SensorStream, StreamSettings, sensor_dir

ROOT = Path(__file__).resolve().parents[3]
RAY = Path(sys.executable).parent / "ray"
SMALL = """
data: {dir: %(data)s, channels: [A-5, A-6]}
lstm: {layers: [16], dropout: 0.1}
run: {epochs: 1, sweep_samples: 1, learning_rates: [0.003], replay_batch_size: 1000}
serve: {port: %(port)d}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


TOKEN_ENV = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}


@pytest.fixture
def head_node():
    """A Ray head node on loopback, in its own short temp dir (Unix socket paths are limited).

    ``ray start --block`` runs in its own process group, so stopping it stops only this
    cluster (``ray stop`` would stop every Ray on the machine, the session's test cluster too).
    Its orderly stop takes over 30 s on 2 cores; after 10 s the group is killed.
    """
    port = free_port()
    temp = tempfile.mkdtemp(prefix="rh", dir="/tmp")
    proc = subprocess.Popen(
        [
            str(RAY),
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--num-cpus=2",
            "--include-dashboard=false",
            f"--temp-dir={temp}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, **TOKEN_ENV},
    )
    try:
        deadline = time.monotonic() + 120
        while not _listening(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray start --head did not come up on 127.0.0.1:{port}")
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(temp, ignore_errors=True)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
def test_fleet_job_runs_the_main_job_on_a_started_cluster(head_node: str, tmp_path: Path) -> None:
    config = tmp_path / "job.yaml"
    config.write_text(SMALL % {"data": ROOT / "data" / "sample", "port": free_port()})
    # Ray's token authentication: the job presents the cluster's token, as `ray job submit` would.
    env = {**os.environ, **TOKEN_ENV, "PDM_HOME": str(tmp_path / "home"), "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(
        [sys.executable, "-m", "pdm_ray.jobs.fleet", "--config", str(config), "--address", head_node],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for step in (
        "[1] load data",
        "[3] tune, register and promote",
        "[5] replay the test series",
        "[6] score detected",
        "event-level: tp=",
    ):
        assert step in out.stdout
    report = tmp_path / "home" / "report.html"
    assert report.exists() and "sensor-A-5" in report.read_text()
    # the report's forecast KPIs come from what the sensor actors scored: finite for both sensors
    kpis = out.stdout.split("forecast KPIs on the test series")[1].split("drift and quality")[0]
    for sensor in ("A-5", "A-6"):
        row = next(line for line in kpis.splitlines() if line.strip().startswith(sensor))
        assert "nan" not in row.lower(), row
    assert (tmp_path / "home" / "mlflow.db").exists()
    # every reading sent reached the sensors' stored state: rebuilt read-only from each
    # sensor's snapshot and write-ahead log, it counts every test reading, in 1000-reading batches
    assert {p.name for p in (tmp_path / "home" / "sensors").iterdir()} == {"A-5", "A-6"}
    settings = load_settings(config, {"PDM_HOME": str(tmp_path / "home")})
    for sensor in ("A-5", "A-6"):
        sent = len(np.load(ROOT / "data" / "sample" / "test" / f"{sensor}.npy"))
        stream = SensorStream(sensor, StreamSettings.from_settings(settings))
        SensorStore(sensor_dir(settings.home, sensor)).recover(stream, repair=False)
        status = stream.status()
        assert (status.readings, status.last_seq) == (sent, -(-sent // 1000) - 1), sensor


def test_fleet_job_bad_config_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("run: {epochs: -1}\n")
    out = subprocess.run(
        [sys.executable, "-m", "pdm_ray.jobs.fleet", "--config", str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"pdm_ray.jobs.fleet: error: {bad}: run.epochs: Input should be greater than 0 (got -1)"
    ]


def test_fleet_job_usage_error_is_one_line_exit_2() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pdm_ray.jobs.fleet", "--bogus"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == ["python -m pdm_ray.jobs.fleet: error: unrecognized arguments: --bogus"]
