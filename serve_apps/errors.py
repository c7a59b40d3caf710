"""Map errors to HTTP: the only place in pdm-ray where exceptions become status codes.

Every error body is ``{"error": <code>, "detail": <message>, "field": <path or null>}``.
Client input never yields a 5xx: validation problems are 4xx, a sensor without a
production model is 503 with the reason, and only a genuine server fault is 500.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray.exceptions import RayTaskError
from starlette.exceptions import HTTPException as StarletteHTTPException

from pdm_ray.errors import (
    DataError,
    FleetUnavailableError,
    InvalidChannelError,
    PdmError,
    RegistryError,
    TrackingError,
    UnknownSensorError,
    WalWriteError,
)

logger = logging.getLogger(__name__)


class ApiError(PdmError):
    """An error the API reports as is: status, stable code and offending field.

    Picklable, so it survives the trip from the model deployment to the ingress.
    """

    def __init__(self, status: int, code: str, detail: str, field: str | None = None) -> None:
        super().__init__(status, code, detail, field)
        self.status = status
        self.code = code
        self.detail = detail
        self.field = field

    def __str__(self) -> str:
        return self.detail


@dataclass(frozen=True)
class HttpError:
    """An error as the API answers it."""

    status: int
    code: str
    detail: str
    field: str | None = None

    def response(self) -> JSONResponse:
        body = {"error": self.code, "detail": self.detail, "field": self.field}
        return JSONResponse(body, status_code=self.status)


def classify(exc: BaseException) -> HttpError:
    """The HTTP status, code and field for an exception raised while serving a request.

    Ray re-raises a replica's exception as a ``RayTaskError`` that also subclasses the
    original class but whose ``str`` is a traceback; the original is its ``cause``.
    """
    if isinstance(exc, RayTaskError) and isinstance(exc.cause, BaseException):
        exc = exc.cause
    if isinstance(exc, ApiError):
        return HttpError(exc.status, exc.code, exc.detail, exc.field)
    if isinstance(exc, InvalidChannelError):
        return HttpError(404, "unknown_sensor", str(exc), "sensor_id")
    if isinstance(exc, UnknownSensorError):
        return HttpError(404, "unknown_sensor", str(exc), "sensor_id")
    if isinstance(exc, DataError):
        return HttpError(422, "invalid_input", str(exc), getattr(exc, "field", None))
    if isinstance(exc, FleetUnavailableError):
        return HttpError(503, "fleet_unavailable", str(exc), None)
    if isinstance(exc, RegistryError):
        return HttpError(503, "no_production_model", str(exc), None)
    if isinstance(exc, WalWriteError):
        return HttpError(503, "storage_unavailable", str(exc), None)
    if isinstance(exc, TrackingError):
        return HttpError(503, "registry_unavailable", str(exc), None)
    logger.error("unhandled error while serving a request", exc_info=exc)
    return HttpError(500, "internal", f"internal error: {type(exc).__name__}", None)


def _request_path(loc: Sequence[str | int], body: Any, missing: bool) -> list[str]:
    """A body error's ``loc`` as a path into the request body.

    For a union, pydantic adds the member that failed (``timestamps.0.constrained-float``);
    such a part names nothing in the body, so it is left out. A ``missing`` error's last part
    is the absent key, so it stays.
    """
    path, node = [], body
    for i, part in enumerate(loc):
        in_body = (isinstance(node, dict) and isinstance(part, str) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        )
        if in_body:
            node = node[part]  # type: ignore[index]
        elif not (missing and i == len(loc) - 1 and isinstance(node, dict)):
            continue
        path.append(str(part))
    return path


def _validation_error(exc: RequestValidationError) -> HttpError:
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request", "type": ""}
    loc = list(first.get("loc", ()))
    if loc[:1] == ["body"]:
        loc = _request_path(loc[1:], exc.body, first.get("type") == "missing")
    elif loc and loc[0] in ("path", "query", "header"):
        loc = loc[1:]
    field = ".".join(str(p) for p in loc) or None
    if first.get("type") == "json_invalid":
        return HttpError(400, "invalid_json", f"request body is not valid JSON: {first.get('msg', '')}", None)
    if first.get("type") == "missing" and not loc:
        return HttpError(422, "invalid_input", "request body is required", None)
    more = len(exc.errors()) - 1
    suffix = f" [+{more} more error(s)]" if more > 0 else ""
    return HttpError(422, "invalid_input", f"{field or 'body'}: {first.get('msg', 'invalid')}{suffix}", field)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def install(app: FastAPI) -> None:
    """Register the exception handlers that produce the API's error bodies."""

    @app.exception_handler(RequestValidationError)
    async def _on_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_error(exc).response()

    @app.exception_handler(StarletteHTTPException)
    async def _on_http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and isinstance(exc.__cause__, (ValueError, RecursionError)):
            # FastAPI's answer to a body ``json.loads`` cannot read: not UTF-8, or nested too deeply.
            return HttpError(400, "invalid_json", f"request body is not valid JSON: {exc.__cause__}", None).response()
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return HttpError(exc.status_code, code, str(exc.detail), None).response()

    @app.exception_handler(PdmError)
    async def _on_error(_: Request, exc: PdmError) -> JSONResponse:
        return classify(exc).response()

    @app.exception_handler(Exception)
    async def _on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        """Any other fault: the documented body (500 ``internal``), not Starlette's plain text."""
        return classify(exc).response()
