"""``pdm-ray serve``: option checks, and the real command serving /healthz until interrupted.

The real command runs in Serve's fast mode (``serve.direct_ingress_port``,
``serve.one_event_loop``), which it turns on in the Ray it starts: the API answers on the
proxy's port and on the ``Api`` replica's own port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from pdm_ray.cli import main
from pdm_ray.tracking.runs import new_sqlite_store

ROOT = Path(__file__).resolve().parents[3]


def test_port_zero_is_a_usage_error_naming_the_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The lower bound, and the option's name rather than ``serve.port`` (test_cli checks 70000)."""
    config = tmp_path / "empty.yaml"
    config.write_text("{}\n")
    assert main(["serve", "--config", str(config), "--port", "0"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "pdm-ray serve: error: --port: Input should be greater than 0 (got 0)"
    ]


def test_bad_config_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("serve: {port: 0}\n")
    assert main(["serve", "--config", str(config)]) == 2
    assert "serve.port" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_serve_runs_until_interrupted(tmp_path: Path) -> None:
    new_sqlite_store(tmp_path / "mlflow.db")  # the embedded store, from the session's template
    port, direct = _free_port(), _free_port()
    env = {
        **os.environ,
        "PDM_HOME": str(tmp_path),
        "PDM_SERVE__REPLICA_NUM_CPUS": "0.1",
        "PDM_SERVE__DIRECT_INGRESS_PORT": str(direct),
        "PDM_SERVE__ONE_EVENT_LOOP": "true",
        "JAX_PLATFORMS": "cpu",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "pdm_ray.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, b"")), daemon=True)
    reader.start()
    try:
        healthy = None
        deadline = time.monotonic() + 300
        while healthy is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                # The proxy answers 404 in plain text until the application is deployed.
                healthy = answer if answer.status_code == 200 else None
            except httpx.HTTPError:
                pass
            if healthy is None:
                time.sleep(1)
        if healthy is None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            proc.wait(timeout=120)
            pytest.fail(f"pdm-ray serve never became healthy:\n{b''.join(lines).decode()[-3000:]}")
        assert healthy.json() == {"status": "ok"}
        for url in (f"http://127.0.0.1:{port}", f"http://127.0.0.1:{direct}"):  # proxy, then the replica itself
            missing = httpx.post(f"{url}/v1/sensors/A-2/detect", json={"values": [1.0]})
            assert missing.status_code == 404 and missing.json()["error"] == "unknown_sensor"
        # The proxy can answer before serve.run() returns: wait for the banner, then interrupt.
        banner = f"http://127.0.0.1:{port}".encode()
        while not any(banner in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert any(banner in line for line in lines), b"".join(lines).decode()[-3000:]
        assert not any(b"will not be applied" in line for line in lines)  # Serve's misleading notice
        assert any(f"direct ingress on http://127.0.0.1:{direct}".encode() in line for line in lines)
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
            proc.wait(timeout=30)
            pytest.fail(f"pdm-ray serve ignored Ctrl-C for 120 s:\n{b''.join(lines).decode()[-6000:]}")
        assert proc.returncode == 130
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
