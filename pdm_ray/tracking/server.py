"""A local ``mlflow server`` over the embedded SQLite store, for when several processes log at once.

SQLite takes one writer at a time and MLflow's schema set-up races between creators, so
processes other than the driver (Ray tasks retraining a sensor and registering the
result, several CLI commands at once) must not open the file directly. They log through
one HTTP server on 127.0.0.1 instead, which serialises the writes. A sweep does not need
it: Tune's MLflow callback and the registration of the best models run in the driver.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from pdm_ray.config import Settings
from pdm_ray.errors import TrackingError
from pdm_ray.tracking.runs import connect_settings, default_artifact_location

logger = logging.getLogger(__name__)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server and the uvicorn worker it forked (one process group)."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextmanager
def local_mlflow_server(
    backend_uri: str,
    artifact_root: str,
    *,
    host: str = "127.0.0.1",
    startup_timeout_s: float = 120.0,
) -> Iterator[str]:
    """Run ``mlflow server`` on ``host``:<free port> over ``backend_uri``; yield its ``http://`` URI.

    The store must already exist with the current schema (``connect`` creates it), so the
    server never races another creator. The server runs in its own process group and is
    stopped (SIGTERM, then SIGKILL after 15 s) when the block exits, also on error.

    Args:
        backend_uri: the store, e.g. ``sqlite:////abs/path/mlflow.db``.
        artifact_root: artifact root URI for experiments the server creates.
        host: interface to bind; keep 127.0.0.1 unless access control is in place.
        startup_timeout_s: how long to wait for ``/health`` (MLflow imports slowly).

    Raises:
        TrackingError: the server exited or did not answer in time; the message has its log tail.
    """
    port = _free_port(host)
    url = f"http://{host}:{port}"
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend_uri,
        "--default-artifact-root",
        artifact_root,
        "--no-serve-artifacts",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + startup_timeout_s
            while not _healthy(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    tail = log.read().decode(errors="replace").strip().splitlines()[-5:]
                    state = f"exited with status {proc.returncode}" if proc.poll() is not None else "did not answer"
                    raise TrackingError(
                        f"local mlflow server over {backend_uri} {state} within {startup_timeout_s:.0f} s: "
                        + " | ".join(tail)
                    )
                time.sleep(0.5)
            logger.info("mlflow server for %s listening on %s (pid %d)", backend_uri, url, proc.pid)
            yield url
        finally:
            _stop(proc)


@contextmanager
def tracking_uri_for_writers(settings: Settings, *, several_writers: bool) -> Iterator[str]:
    """The tracking URI that processes should log to, with a local server when it is needed.

    A server URI (http, postgresql) is used as is. A SQLite store is used directly by a
    single writer; with ``several_writers`` the store is first created here and then
    served by ``local_mlflow_server`` for as long as the block runs.

    Raises:
        TrackingError: the store is unreachable or the server did not start.
    """
    tracking = connect_settings(settings)
    artifacts = default_artifact_location(tracking.uri)
    if not several_writers or artifacts is None:
        yield tracking.uri
        return
    with local_mlflow_server(tracking.uri, artifacts) as url:
        yield url
