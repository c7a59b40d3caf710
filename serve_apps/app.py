"""The Serve application: the ``Api`` ingress in front of the ``SensorModels`` deployment.

``serve run configs/serve.yaml`` imports ``serve_apps.app:build_app``; ``pdm-ray serve``
calls ``application(settings)``. The ingress builds the FastAPI app of ``serve_apps.api``
at replica start (``__serve_build_asgi_app__``), resolves each sensor's production version
(TTL cache, ``serve.version_ttl_s``; ``POST /v1/models/reload`` forgets it at once), and
calls ``SensorModels`` through a ``DeploymentHandle`` with
``options(multiplexed_model_id="<name>/<version>")``. The model id travels on the handle,
not in the ``serve_multiplexed_model_id`` HTTP header, so HAProxy mode (which drops that
header) does not matter. Readings and status go to the Fleet actor.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from pathlib import Path
from typing import Any

import ray
from ray import serve
from ray.exceptions import RayActorError, RayTaskError
from ray.serve import Application
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from ray.serve.handle import DeploymentHandle

from pdm_ray.config import ServeSettings, Settings, load_settings
from pdm_ray.environment import muted_log_messages
from pdm_ray.tracking.runs import connect_settings
from serve_apps.api import create_app
from serve_apps.call_batching import CallBatcher
from serve_apps.dashboard import Dashboard, install_dashboard
from serve_apps.errors import ApiError
from serve_apps.metrics import ApiMetrics
from serve_apps.scoring import WindowForecast, WindowInput, WindowScores, unwrap
from serve_apps.serve_env import replica_env
from serve_apps.versions import registry_versions

logger = logging.getLogger(__name__)


# gRPC's default message limit is 4 MiB; a call carries its windows one way and about four
# float32 arrays of the same length back (``WindowScores``).
BY_VALUE_MAX_BYTES = 1 << 20


def fits_by_value(windows: list[WindowInput]) -> bool:
    """Whether a call of ``windows`` and its answer stay well inside one gRPC message."""
    size = sum(5 * w.values.nbytes + (0 if w.commands is None else w.commands.nbytes) for w in windows)
    return size <= BY_VALUE_MAX_BYTES


class HandleModels:
    """``serve_apps.api.Models`` over the model deployment's handle.

    ``SensorModels`` takes a list of windows per call. With ``cfg.ingress_batching`` the
    requests for one model that arrive while ``calls_in_flight(cfg)`` calls for it are out go
    as one call of up to ``cfg.batch_max_size`` windows (``serve_apps.call_batching``);
    without, each request is a call of one window. With ``cfg.grpc_transport`` a call that
    ``fits_by_value`` goes by value to the replica's gRPC server, which costs both ends less
    CPU than a Ray actor call; larger ones go through Ray's object store, with no size limit.
    """

    def __init__(self, handle: DeploymentHandle, cfg: ServeSettings) -> None:
        self._handle = handle
        self._grpc = cfg.grpc_transport
        in_flight = calls_in_flight(cfg)
        self._batchers = {
            method: CallBatcher(partial(self._send, method), cfg.batch_max_size, in_flight)
            if cfg.ingress_batching
            else None
            for method in ("detect", "forecast")
        }

    async def _send(self, method: str, model_id: str, windows: list[WindowInput]) -> list[Any]:
        try:
            by_reference = not (self._grpc and fits_by_value(windows))
            handle = self._handle.options(multiplexed_model_id=model_id, _by_reference=by_reference)
            return await getattr(handle, method).remote(windows)
        except (BackPressureError, DeploymentUnavailableError) as exc:
            raise ApiError(503, "overloaded", f"model deployment cannot take the request now: {exc}") from exc

    async def _call(self, method: str, model_id: str, window: WindowInput) -> Any:
        batcher = self._batchers[method]
        if batcher is None:
            (outcome,) = await self._send(method, model_id, [window])
        else:
            outcome = await batcher.call(model_id, window)
        return unwrap(outcome)

    async def detect(self, model_id: str, window: WindowInput) -> WindowScores:
        return await self._call("detect", model_id, window)

    async def forecast(self, model_id: str, window: WindowInput) -> WindowForecast:
        return await self._call("forecast", model_id, window)


def calls_in_flight(cfg: ServeSettings) -> int:
    """Calls for one model an ingress replica keeps out: two per model replica it may reach.

    Each ``SensorModels`` replica computes two batches at once (``max_concurrent_batches=2``),
    so this keeps every replica's two slots busy for a single hot sensor. A further call would
    pay for its own trip only to wait in a replica's queue; held here, it goes out with others.
    """
    replicas = cfg.model_replicas if cfg.model_autoscaling is None else cfg.model_autoscaling.max_replicas
    return 2 * replicas


class ActorFleet:
    """``serve_apps.api.Fleet`` over the named Fleet actor (looked up lazily, re-looked-up after a crash)."""

    def __init__(self, name: str, namespace: str) -> None:
        self._name = name
        self._namespace = namespace
        self._actor: Any = None

    async def _call(self, method: str, *args: Any) -> Any:
        if self._actor is None:
            try:
                self._actor = await asyncio.to_thread(ray.get_actor, self._name, namespace=self._namespace)
            except ValueError:
                detail = f"the Fleet actor {self._name!r} is not running in namespace {self._namespace!r}"
                raise ApiError(503, "fleet_unavailable", detail) from None
        try:
            return await getattr(self._actor, method).remote(*args)
        except RayActorError as exc:
            if isinstance(exc, RayTaskError):  # the Fleet ran and a sensor's actor failed under it
                cause = str(exc.cause if isinstance(exc.cause, BaseException) else exc).strip().splitlines()
                detail = f"the sensor's actor failed: {cause[-1] if cause else type(exc).__name__}"
                raise ApiError(503, "sensor_unavailable", detail) from exc
            self._actor = None
            raise ApiError(503, "fleet_unavailable", f"the Fleet actor failed: {type(exc).__name__}") from exc

    async def ingest(self, sensor_id: str, batch: dict[str, Any]) -> Any:
        return await self._call("ingest", sensor_id, batch)

    async def status(self, sensor_id: str) -> Any:
        return await self._call("status", sensor_id)

    async def recent(self, sensor_id: str, n: int) -> Any:
        return await self._call("recent", sensor_id, n)

    async def list_sensors(self) -> Any:
        return await self._call("list_sensors")

    async def status_all(self) -> Any:
        return await self._call("status_all")

    async def series(self, sensor_id: str, n: int) -> Any:
        return await self._call("series", sensor_id, n)


@serve.deployment(name="Api")
@serve.ingress()
class Api:
    """The HTTP ingress. Args: the ``SensorModels`` handle and ``Settings`` as plain data."""

    def __init__(self, models: DeploymentHandle, settings: dict[str, Any]) -> None:
        self._settings = Settings.model_validate(settings)
        cfg = self._settings.serve
        tracking = connect_settings(self._settings)
        versions = registry_versions(tracking, cfg)
        fleet = ActorFleet(cfg.fleet_actor, self._settings.ray.namespace)
        self._app = create_app(HandleModels(models, cfg), versions, cfg, fleet, ApiMetrics())
        install_dashboard(self._app, Dashboard(self._settings, fleet, tracking))

    def __serve_build_asgi_app__(self) -> Any:
        return self._app

    def check_health(self) -> None:
        """Serve's periodic probe: the app was built (a failed constructor never gets here)."""
        if self._app is None:
            raise RuntimeError("the API app was not built")


def _replica_options(settings: Settings, replicas: int) -> dict[str, Any]:
    cfg = settings.serve
    actor_options: dict[str, Any] = {"num_cpus": cfg.replica_num_cpus}
    if env := replica_env(cfg):
        actor_options["runtime_env"] = {"env_vars": env}
    return {
        "num_replicas": replicas,
        "max_ongoing_requests": cfg.max_ongoing_requests,
        "ray_actor_options": actor_options,
    }


def application(settings: Settings) -> Application:
    """The bound application: ``Api`` (``serve.ingress_replicas``) -> ``SensorModels``.

    ``serve.model_autoscaling`` (when set) replaces the fixed ``serve.model_replicas``.

    Raises:
        TrackingError: the registry is unreachable (checked before anything is deployed).
    """
    cfg = settings.serve
    # Once, here: replicas starting together must not race to create an embedded SQLite store.
    connect_settings(settings)
    plain = settings.model_dump(mode="json")
    model_options = _replica_options(settings, cfg.model_replicas)
    if cfg.model_autoscaling is not None:
        model_options["num_replicas"] = "auto"
        model_options["autoscaling_config"] = cfg.model_autoscaling.model_dump()
    from serve_apps.model_server import SensorModels  # JAX: in the driver and the model replicas only

    models = SensorModels.options(**model_options).bind(plain)
    return Api.options(**_replica_options(settings, cfg.ingress_replicas)).bind(models, plain)


def run_app(settings: Settings) -> None:
    """Start Serve on ``serve.host``:``serve.port`` and deploy the app as ``pdm`` at ``/``.

    ``serve.run`` starts Serve again without options, finds it running and logs that "New
    http_options/controller_options will not be applied", which reads as if the configured
    port had been ignored; that one message is muted.
    """
    serve.start(http_options={"host": settings.serve.host, "port": settings.serve.port})
    with muted_log_messages("ray.serve", "will not be applied"):
        serve.run(application(settings), name="pdm", route_prefix="/")


def build_app(args: dict[str, Any]) -> Application:
    """Serve's application builder (``import_path: serve_apps.app:build_app``).

    Args:
        args: ``{"config": "<yaml file>"}`` (optional; default ``configs/default.yaml``),
            resolved against the working directory, plus ``PDM_*`` environment overrides.
    """
    config = args.get("config")
    settings = load_settings(Path(config) if config else None)
    logger.info("serve app: tracking %s, %d model replica(s)", settings.tracking_uri, settings.serve.model_replicas)
    return application(settings)
