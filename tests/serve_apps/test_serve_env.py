"""Settings -> the environment Serve reads at start: the proxy's gRPC transport and fast mode."""

from __future__ import annotations

from pdm_ray.config import ServeSettings
from serve_apps.serve_env import cluster_env, replica_env


def test_only_the_proxys_grpc_transport_is_on_by_default() -> None:
    assert cluster_env(ServeSettings()) == {"RAY_SERVE_PROXY_USE_GRPC": "1"}
    assert cluster_env(ServeSettings(grpc_transport=False)) == replica_env(ServeSettings()) == {}


def test_direct_ingress_ports() -> None:
    env = cluster_env(ServeSettings(direct_ingress_port=8100, ingress_replicas=2))
    assert env["RAY_SERVE_ENABLE_DIRECT_INGRESS"] == "1"
    # Serve hands out range(min, max): the replicas' ports plus one spare.
    ports = (env["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"], env["RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"])
    assert ports == ("8100", "8103")


def test_one_event_loop_is_for_the_replicas_only() -> None:
    cfg = ServeSettings(one_event_loop=True, grpc_transport=False)
    assert cluster_env(cfg) == {}  # sync handle callers elsewhere in the cluster keep their router thread
    env = replica_env(cfg)
    assert env["RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD"] == env["RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP"] == "0"
