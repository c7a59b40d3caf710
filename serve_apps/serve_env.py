"""Ray Serve switches read from process environments: gRPC from the proxy, and fast mode.

Ray Serve reads these switches from a process's environment when it starts.

* The proxy's transport (``serve.grpc_transport``) and direct ingress
  (``serve.direct_ingress_port``) are read by Serve's own processes (the proxy, the
  controller, every replica), so they are properties of the Ray cluster: ``pdm_ray.cli``'s
  ``connect_ray`` puts ``cluster_env`` in the environment before it starts a local Ray, and a
  cluster must be started with it (docs/cluster.md).
* One event loop is read by each process that routes requests through a ``DeploymentHandle``.
  It must stay off in sync callers (a sensor actor calling ``SensorModels`` has no running
  loop for the router), so ``replica_env`` goes only into the runtime env of the ``Api`` and
  ``SensorModels`` replicas (``serve_apps.app``).

Plain data, no Ray import (docs/serve.md, "Fast mode").
"""

from __future__ import annotations

from pdm_ray.config import ServeSettings


def cluster_env(cfg: ServeSettings) -> dict[str, str]:
    """The proxy's gRPC transport and direct ingress, as far as ``cfg`` turns them on.

    With ``cfg.grpc_transport`` the proxy sends each request to a replica over the replica's
    gRPC server instead of as a Ray actor call, which costs every process on the path less
    CPU; bodies above gRPC's 4 MiB message limit still arrive whole. With
    ``cfg.direct_ingress_port`` the first ``Api`` replica on a node answers HTTP on that port,
    further ones on the ports above it (one spare for a replica that replaces another; Serve hands out
    ``range(min, max)``). No outside load balancer drains these ports, so a stopping replica
    frees its port at once.
    """
    env = {"RAY_SERVE_PROXY_USE_GRPC": "1"} if cfg.grpc_transport else {}
    if cfg.direct_ingress_port is None:
        return env
    first = cfg.direct_ingress_port
    return env | {
        "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1",
        "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(first),
        "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(min(first + cfg.ingress_replicas + 1, 65536)),
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "0",
        "RAY_SERVE_PORT_QUARANTINE_S": "0",
    }


def replica_env(cfg: ServeSettings) -> dict[str, str]:
    """One event loop per replica for ``cfg.one_event_loop`` (empty when it is off).

    User code and the handle router run on the replica's main loop instead of two extra
    threads (what Serve's throughput mode does). Safe in these replicas because every handler
    hands blocking work to a thread.
    """
    if not cfg.one_event_loop:
        return {}
    return {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0", "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0"}
