"""``pdm-ray serve``: run the HTTP API (Ray Serve) until interrupted.

The same application as ``serve run configs/serve.yaml``: the ``Api`` ingress in front of
the multiplexed ``SensorModels`` deployment, on ``serve.host:serve.port`` (127.0.0.1:8000
by default), and with ``serve.direct_ingress_port`` set also straight from the ``Api``
replica on that port (no proxy hop). Replicas, batching and auth come from the ``serve``
section of the config.
"""

from __future__ import annotations

import argparse
import faulthandler
import signal
import threading

from pydantic import ValidationError

from pdm_ray.cli.common import add_config_option, connect_ray, settings_from
from pdm_ray.config import Settings
from pdm_ray.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("serve", help="run the HTTP API (Ray Serve) on serve.host:serve.port")
    add_config_option(parser)
    parser.add_argument("--host", default=None, help="bind address (default: serve.host, 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: serve.port, 8000)")
    parser.set_defaults(handler=serve_api)


def _with_overrides(settings: Settings, host: str | None, port: int | None) -> Settings:
    serve = settings.serve.model_dump()
    serve.update({k: v for k, v in (("host", host), ("port", port)) if v is not None})
    try:
        return settings.model_copy(update={"serve": type(settings.serve).model_validate(serve)})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"--{first['loc'][0]}: {first['msg']} (got {first['input']!r})") from None


def serve_api(args: argparse.Namespace) -> int:
    settings = _with_overrides(settings_from(args), args.host, args.port)  # bad options fail before the imports
    import ray
    from ray import serve

    from serve_apps.app import run_app

    faulthandler.enable()  # a long-running server: fatal signals print every thread's stack
    # Ctrl-C stops the server even when it was started with SIGINT ignored (Python then leaves
    # it ignored; background jobs and some launchers start children that way).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    connect_ray(settings)
    run_app(settings)
    auth = "bearer token required" if settings.serve.auth_token else "no auth"
    print(
        f"pdm-ray API on http://{settings.serve.host}:{settings.serve.port} ({auth}); docs at /docs; Ctrl-C stops",
        flush=True,
    )
    if settings.serve.direct_ingress_port is not None:
        where = (
            "" if not settings.ray.address else " (if the cluster was started with serve_apps.serve_env.cluster_env)"
        )
        print(f"direct ingress on http://{settings.serve.host}:{settings.serve.direct_ingress_port}{where}", flush=True)
    try:
        threading.Event().wait()  # until Ctrl-C (KeyboardInterrupt: exit status 130)
    finally:
        # On a cluster the app would outlive us: take it down. A local Ray started here goes
        # down with this process (and the app with it), so skip Serve's slower orderly shutdown.
        if settings.ray.address:
            serve.shutdown()
        else:
            ray.shutdown()  # here, not at interpreter exit, while Serve's handle threads still run
    return 0
