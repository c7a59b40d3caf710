"""Serve's fast mode: the environment that turns on direct ingress and one event loop per replica.

Ray Serve reads these switches from the environment of its controller and replicas when they
start, so they are properties of the Ray cluster, not of one application: ``pdm_ray.cli``'s
``connect_ray`` puts them in the environment before it starts a local Ray, and a cluster must
be started with them (docs/serve.md, "Fast mode"; docs/cluster.md). Plain data, no Ray import.
"""

from __future__ import annotations

from pdm_ray.config import ServeSettings


def serve_env(cfg: ServeSettings) -> dict[str, str]:
    """The variables for ``cfg.direct_ingress_port`` and ``cfg.one_event_loop`` (empty when both are off).

    Direct ingress: the first ``Api`` replica on a node answers HTTP on ``direct_ingress_port``,
    further ones on the ports above it (one spare for a replica that replaces another; Serve
    hands out ``range(min, max)``). No outside load balancer drains these ports, so a stopping
    replica frees its port at once. One event loop: each replica runs user code and its handle
    router on its main loop instead of two extra threads (what Serve's throughput mode does);
    safe here because every handler hands blocking work to a thread.
    """
    env: dict[str, str] = {}
    if cfg.direct_ingress_port is not None:
        first = cfg.direct_ingress_port
        env |= {
            "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1",
            "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(first),
            "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(min(first + cfg.ingress_replicas + 1, 65536)),
            "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "0",
            "RAY_SERVE_PORT_QUARANTINE_S": "0",
        }
    if cfg.one_event_loop:
        env |= {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0", "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0"}
    return env
