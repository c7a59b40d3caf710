"""The FastAPI application of the HTTP API (``/v1``), independent of how models are run.

``create_app`` wires routes, validation, errors, auth, the body limit and metrics to a
``Models`` backend (a ``DeploymentHandle`` in Serve, an in-process scorer in the
benchmark's baseline) and an optional ``Fleet`` (the Fleet actor). Routes:

* ``POST /v1/sensors/{id}/detect``: scores of one window (index convention in
  ``serve_apps.schemas``); ``POST /v1/detect``: many sensors' windows at once.
* ``POST /v1/sensors/{id}/forecast``: the next ``horizon`` values, stamped at
  ``last timestamp + k * median spacing``.
* ``POST /v1/sensors/{id}/readings``, ``GET /v1/sensors/{id}``, ``GET /v1/sensors``: the
  Fleet actor's ingest, status (+ recent events) and list.
* ``POST /v1/models/reload``: forget cached production versions now (else they expire
  after ``serve.version_ttl_s``).
* ``GET /healthz`` (never needs a token), ``GET /docs``, ``GET /openapi.json``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import math
import time
from typing import Any, Protocol

import numpy as np
from fastapi import FastAPI, HTTPException, Path, Query
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pdm_ray.config import ServeSettings
from pdm_ray.errors import PdmError
from pdm_ray.ids import validate_sensor_id
from pdm_ray.tracking.registry import VersionInfo
from serve_apps import errors
from serve_apps.errors import ApiError, HttpError
from serve_apps.metrics import ApiMetrics
from serve_apps.schemas import (
    BulkDetectItem,
    BulkDetectRequest,
    BulkDetectResponse,
    DetectRequest,
    DetectResponse,
    ErrorBody,
    ForecastPoint,
    ForecastRequest,
    ForecastResponse,
    Health,
    ModelRef,
    ReadingsRequest,
    ReloadRequest,
    ReloadResponse,
    Sequence,
    Window,
)
from serve_apps.scoring import WindowForecast, WindowInput, WindowScores
from serve_apps.timestamps import future_times, to_epoch_seconds
from serve_apps.versions import ProductionVersions, model_id

SENSOR_PATH = Path(description="sensor id, ``^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`` (others answer 404)")
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (400, 401, 404, 413, 422, 503)}


class Models(Protocol):
    """Runs a registered model version (``model_id = "<name>/<version>"``) on windows."""

    async def detect(self, model_id: str, window: WindowInput) -> WindowScores: ...

    async def forecast(self, model_id: str, window: WindowInput) -> WindowForecast: ...


class Fleet(Protocol):
    """The per-sensor actors' supervisor (``actors`` package), as the API uses it."""

    async def ingest(self, sensor_id: str, batch: dict[str, Any]) -> Any: ...

    async def status(self, sensor_id: str) -> Any: ...

    async def recent(self, sensor_id: str, n: int) -> Any: ...

    async def list_sensors(self) -> Any: ...

    async def series(self, sensor_id: str, n: int) -> Any: ...


def jsonable(value: Any) -> Any:
    """Actor results as plain JSON data: ``to_dict()`` when offered, else dataclasses,
    numpy arrays/scalars, enums, tuples and mappings converted field by field.

    Non-finite floats become None: JSON has no NaN or infinity and ``JSONResponse`` refuses
    them, so one overflowed statistic (an infinite ``rolling_mse``) would make the answer a 500.
    """
    if isinstance(value, float):  # also np.float64
        return float(value) if math.isfinite(value) else None
    if callable(getattr(value, "to_dict", None)) and not isinstance(value, type):
        return jsonable(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if hasattr(value, "value") and hasattr(value, "name") and not isinstance(value, (str, int, float)):
        return jsonable(value.value)  # Enum
    return value


def _json(model: Any, status: int = 200) -> Response:
    """Serialize a response model with pydantic's Rust encoder (no second validation)."""
    return Response(content=model.model_dump_json(), status_code=status, media_type="application/json")


def _window(body: Window) -> WindowInput:
    """Request lists as float32 arrays; ``commands`` must be ``[T, C]`` with ``T = len(values)``."""
    values = np.asarray(body.values, dtype=np.float32)
    commands = None
    if body.commands is not None:
        widths = {len(row) for row in body.commands}
        if len(body.commands) != len(values) or len(widths) > 1:
            detail = f"commands must have shape [{len(values)}, C] (one row per value, equal widths)"
            raise ApiError(422, "invalid_input", detail, "commands")
        commands = np.asarray(body.commands, dtype=np.float32).reshape(len(values), -1)
    return WindowInput(values=values, commands=commands)


def _model_ref(version: VersionInfo | WindowScores | WindowForecast) -> ModelRef:
    return ModelRef(name=version.name, version=version.version)


def _detect_response(sensor_id: str, n_points: int, s: WindowScores) -> DetectResponse:
    return DetectResponse(
        sensor_id=sensor_id,
        model=_model_ref(s),
        n_points=n_points,
        scored_from=s.l_s,
        scores=s.scores.tolist(),
        predictions=s.predictions.tolist(),
        smoothed_errors=s.smoothed_errors.tolist(),
        threshold=s.threshold.tolist(),
        sequences=[Sequence(start=a, end=b, score=c) for a, b, c in s.sequences],
    )


def _public(path: str) -> bool:
    """Paths that need no token: liveness, and the dashboard's page and static files (no data in them)."""
    return path in ("/healthz", "/dashboard") or path.startswith("/dashboard/static/")


class _Guard:
    """Outermost ASGI layer: bearer-token check, body-size check, request metrics."""

    def __init__(self, app: ASGIApp, token: str | None, max_body_bytes: int, metrics: ApiMetrics | None) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        received = 0

        async def limited_receive() -> Message:
            # A chunked body has no Content-Length to check up front: count while reading.
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body_bytes:
                raise HTTPException(413, f"request body exceeds serve.max_body_bytes={self.max_body_bytes}")
            return message

        try:
            rejection = self._reject(scope)
            if rejection is not None:
                await rejection(scope, receive, send_status)
            else:
                await self.app(scope, limited_receive, send_status)
        finally:
            if self.metrics is not None:
                route = scope.get("route")
                path = getattr(route, "path", None) or "unmatched"
                # Only a success names a known sensor: a path id answered 4xx/5xx may be anything,
                # and tagging it would let a client create metric series at will.
                sensor = scope.get("path_params", {}).get("sensor_id") if 200 <= status < 300 else None
                self.metrics.request(path, sensor, status, time.perf_counter() - start)

    def _reject(self, scope: Scope) -> Response | None:
        headers = dict(scope.get("headers") or ())
        path = scope.get("path", "")
        root = scope.get("root_path", "")
        if root and path.startswith(root):  # mounted under a Serve route_prefix
            path = path[len(root) :]
        if self.token is not None and not _public(path):
            given = headers.get(b"authorization", b"")
            scheme, _, credential = given.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(credential.strip(), self.token):
                response = HttpError(401, "unauthorized", "missing or wrong bearer token", "Authorization").response()
                response.headers["WWW-Authenticate"] = "Bearer"
                return response
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                return HttpError(400, "invalid_header", "Content-Length is not a number", "Content-Length").response()
            if int(length) > self.max_body_bytes:
                detail = f"request body of {int(length)} bytes exceeds serve.max_body_bytes={self.max_body_bytes}"
                return HttpError(413, "payload_too_large", detail, None).response()
        return None


def create_app(
    models: Models,
    versions: ProductionVersions,
    settings: ServeSettings,
    fleet: Fleet | None = None,
    metrics: ApiMetrics | None = None,
) -> FastAPI:
    """Build the API around a models backend, a production-version cache and the fleet.

    Args:
        models: runs model versions on windows.
        versions: sensor -> production version (TTL cache over the registry).
        settings: ``serve`` settings (token, body limit, window limits).
        fleet: the Fleet actor proxy; None answers its routes with 503.
        metrics: Ray metrics; None records nothing (plain uvicorn).

    Returns:
        The FastAPI app, with the auth/body-limit/metrics guard as its middleware.
    """
    app = FastAPI(
        title="pdm-ray",
        version="1",
        description="Predictive maintenance for sensor fleets: Telemanom anomaly detection and forecasts.",
    )
    errors.install(app)

    def check_points(n: int, field: str = "values") -> None:
        if n > settings.max_window_points:
            detail = f"{field} has {n} points; at most serve.max_window_points={settings.max_window_points}"
            raise ApiError(422, "too_many_points", detail, field)

    async def production(sensor_id: str) -> VersionInfo:
        validate_sensor_id(sensor_id)
        return await versions.get(sensor_id)

    async def detect_one(sensor_id: str, body: Window) -> DetectResponse:
        check_points(len(body.values))
        window = _window(body)
        version = await production(sensor_id)
        scores = await models.detect(model_id(version), window)
        if metrics is not None:
            metrics.anomalies(sensor_id, len(scores.sequences))
        return _detect_response(sensor_id, len(window.values), scores)

    @app.get("/healthz", response_model=Health, tags=["ops"])
    async def healthz() -> Health:
        """Liveness: the ingress answers (no token needed)."""
        return Health()

    @app.post("/v1/sensors/{sensor_id}/detect", response_model=DetectResponse, responses=_ERRORS, tags=["detection"])
    async def detect(body: DetectRequest, sensor_id: str = SENSOR_PATH) -> Response:
        """Telemanom scores of a window with the sensor's production model.

        The first ``l_s`` points are context; ``scores[i]`` is for index ``scored_from + i``
        and ``sequences`` are inclusive indices into the submitted window.
        """
        return _json(await detect_one(sensor_id, body))

    @app.post("/v1/detect", response_model=BulkDetectResponse, responses=_ERRORS, tags=["detection"])
    async def detect_bulk(body: BulkDetectRequest) -> Response:
        """Scores of many sensors' windows; each item has its own status (200 or its error)."""
        if len(body.windows) > settings.max_bulk_windows:
            detail = f"{len(body.windows)} windows; at most serve.max_bulk_windows={settings.max_bulk_windows}"
            raise ApiError(422, "too_many_windows", detail, "windows")
        check_points(sum(len(w.values) for w in body.windows), "windows")

        async def one(item: Any) -> BulkDetectItem:
            try:
                result = await detect_one(item.sensor_id, item)
            except PdmError as exc:
                err = errors.classify(exc)
                body = ErrorBody(error=err.code, detail=err.detail, field=err.field)
                return BulkDetectItem(sensor_id=item.sensor_id, status=err.status, error=body)
            return BulkDetectItem(sensor_id=item.sensor_id, status=200, result=result)

        items = await asyncio.gather(*(one(w) for w in body.windows))
        return _json(BulkDetectResponse(results=list(items)))

    @app.post("/v1/sensors/{sensor_id}/forecast", response_model=ForecastResponse, responses=_ERRORS, tags=["forecast"])
    async def forecast(body: ForecastRequest, sensor_id: str = SENSOR_PATH) -> Response:
        """The next ``horizon`` values (at most the model's ``n_predictions``; never iterated).

        Forecast ``k`` (1-based) is stamped ``t_last + k * dt``, ``dt`` the median spacing of
        the input timestamps.
        """
        check_points(len(body.values))
        if len(body.timestamps) != len(body.values):
            detail = f"timestamps has {len(body.timestamps)} entries, values has {len(body.values)}"
            raise ApiError(422, "invalid_input", detail, "timestamps")
        window = dataclasses.replace(_window(body), horizon=body.horizon)
        version = await production(sensor_id)
        result = await models.forecast(model_id(version), window)
        times = future_times(body.timestamps, len(result.values))
        points = [
            ForecastPoint(timestamp=iso, epoch_s=float(t), value=float(v))
            for iso, t, v in zip(times.iso, times.epoch_s, result.values, strict=True)
        ]
        response = ForecastResponse(
            sensor_id=sensor_id, model=_model_ref(result), interval_s=times.interval_s, forecasts=points
        )
        return _json(response)

    @app.post("/v1/models/reload", response_model=ReloadResponse, responses=_ERRORS, tags=["models"])
    async def reload(body: ReloadRequest | None = None) -> Response:
        """Forget cached production versions (one sensor or all) and resolve them again now.

        Returns the versions now serving; a sensor that lost its production model is left out.
        """
        sensor_id = body.sensor_id if body is not None else None
        if sensor_id is not None:
            validate_sensor_id(sensor_id)
        targets = versions.forget(sensor_id)
        if sensor_id is not None and sensor_id not in targets:
            targets.append(sensor_id)
        reloaded: dict[str, ModelRef] = {}
        for sensor in targets:
            try:
                reloaded[sensor] = _model_ref(await versions.get(sensor))
            except PdmError:
                if sensor == sensor_id:
                    raise
        return _json(ReloadResponse(reloaded=reloaded))

    def need_fleet() -> Fleet:
        if fleet is None:
            raise ApiError(503, "fleet_unavailable", "the Fleet actor is not configured for this API")
        return fleet

    @app.post("/v1/sensors/{sensor_id}/readings", responses=_ERRORS, tags=["fleet"])
    async def readings(body: ReadingsRequest, sensor_id: str = SENSOR_PATH) -> JSONResponse:
        """Hand a batch of readings to the sensor's actor; returns its ack and any new events."""
        validate_sensor_id(sensor_id)
        check_points(len(body.values))
        if len(body.timestamps) != len(body.values):
            detail = f"timestamps has {len(body.timestamps)} entries, values has {len(body.values)}"
            raise ApiError(422, "invalid_input", detail, "timestamps")
        window = _window(body)
        columns = [window.values[:, None]] + ([window.commands] if window.commands is not None else [])
        batch = {
            "seq": body.seq,
            "timestamps": to_epoch_seconds(body.timestamps),
            "values": np.concatenate(columns, axis=1),
        }
        ack = await need_fleet().ingest(sensor_id, batch)
        return JSONResponse({"sensor_id": sensor_id, "ack": jsonable(ack)})

    @app.get("/v1/sensors/{sensor_id}", responses=_ERRORS, tags=["fleet"])
    async def sensor_status(
        sensor_id: str = SENSOR_PATH, events: int = Query(10, ge=0, le=1000, description="recent events to list")
    ) -> JSONResponse:
        """The actor's status (drift, quality, counters), its newest anomaly events and the production model.

        Either half may be missing: ``status``/``recent_events`` null without a running Fleet
        or an actor, with the reason in ``status_error``; ``model.production`` null with the
        reason. 404 only when neither knows the sensor.
        """
        validate_sensor_id(sensor_id)
        status: Any = None
        recent: Any = None
        status_error: dict[str, str] | None = None
        model_exc: PdmError | None = None
        try:
            model = {"production": _model_ref(await production(sensor_id)).model_dump()}
        except PdmError as exc:
            model_exc, err = exc, errors.classify(exc)
            model = {"production": None, "error": err.code, "detail": err.detail}
        try:
            status = jsonable(await need_fleet().status(sensor_id))
            recent = jsonable(await need_fleet().recent(sensor_id, events)) if events else []
        except PdmError as exc:
            err = errors.classify(exc)
            if err.status not in (404, 503):
                raise
            if model_exc is not None:
                # Neither half answers: 404 only when both say the sensor is unknown; otherwise a
                # half that could not look (a 503) speaks, the Fleet's before the model's.
                if fleet is None or (err.status == 404 and errors.classify(model_exc).status != 404):
                    raise model_exc from None
                raise
            status_error = {"error": err.code, "detail": err.detail}
        return JSONResponse(
            {
                "sensor_id": sensor_id,
                "model": model,
                "status": status,
                "recent_events": recent,
                "status_error": status_error,
            }
        )

    @app.get("/v1/sensors/{sensor_id}/series", responses=_ERRORS, tags=["fleet"])
    async def sensor_series(
        sensor_id: str = SENSOR_PATH,
        n: int = Query(1000, ge=1, le=settings.max_window_points, description="newest readings to return"),
    ) -> JSONResponse:
        """The newest ``n`` readings (at most the actor's buffer) with what the stream made of them.

        ``timestamps``, ``values``, ``forecast`` (the one-step prediction each reading was
        scored with), ``smoothed_errors`` and ``threshold`` (the dynamic threshold that
        judged it) are aligned; null where absent. ``events`` are the anomalous sequences
        overlapping them (inclusive absolute indices; ``final`` false while still open).
        """
        validate_sensor_id(sensor_id)
        return JSONResponse(jsonable(await need_fleet().series(sensor_id, n)))

    @app.get("/v1/sensors", responses=_ERRORS, tags=["fleet"])
    async def sensors() -> JSONResponse:
        """Every sensor the Fleet actor supervises."""
        return JSONResponse({"sensors": jsonable(await need_fleet().list_sensors())})

    app.add_middleware(_Guard, token=settings.auth_token, max_body_bytes=settings.max_body_bytes, metrics=metrics)
    return app
