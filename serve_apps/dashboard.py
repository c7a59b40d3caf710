"""The live operator dashboard: ``GET /dashboard`` and the JSON it polls.

The page (``dashboard.html`` with ``dashboard.js`` and ``dashboard.css`` next to this
module) is static; every few seconds (``dashboard.refresh_s``) it fetches:

* ``GET /dashboard/api/fleet``: every sensor's status, last anomalies, drift severity,
  data quality, production model, KPIs and alerts (``pdm_ray.evaluation.alerts`` against
  the ``dashboard`` limits), plus all alerts worst first;
* ``GET /dashboard/api/models``: registered versions with links into the MLflow UI;
* ``GET /dashboard/api/retraining``: the retraining history (triggers and outcomes);
* ``GET /v1/sensors/{id}/series?n=`` (``serve_apps.api``): the drill-down's telemetry,
  forecasts, smoothed errors, thresholds and anomaly intervals.

``/dashboard#sensor=<id>`` opens a sensor's drill-down. Plotly.js is the copy the
``plotly`` package ships, served from ``/dashboard/static/plotly.min.js`` (gzipped when the
browser accepts it), so the page needs no internet. The page and its static files carry
no data and need no token; the JSON routes do when ``serve.auth_token`` is set (the page
asks for it and keeps it in the tab's session storage).
"""

from __future__ import annotations

import asyncio
import gzip
import html
import logging
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, TypeVar

import plotly
from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from pdm_ray.config import Settings
from pdm_ray.errors import PdmError
from pdm_ray.evaluation.alerts import AlertLevel, SensorKpis, events_in_last_hour, sensor_alerts
from pdm_ray.retraining.history import HistoryEntry, RetrainingHistory, history_path
from pdm_ray.tracking.registry import NAME_PREFIX, PRODUCTION, VersionInfo, list_versions
from pdm_ray.tracking.runs import Tracking
from pdm_ray.tracking.validation import validation_rmse
from serve_apps.api import jsonable
from serve_apps.errors import ApiError

logger = logging.getLogger(__name__)

T = TypeVar("T")
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
_OWN_STATIC = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
_STATE_ORDER = {"critical": 0, "warning": 1, "ok": 2, "idle": 3}


class DashboardFleet(Protocol):
    """What the dashboard asks the Fleet actor (``actors.fleet.Fleet``)."""

    async def status_all(self) -> Any: ...

    async def recent(self, sensor_id: str, n: int) -> Any: ...


def mlflow_ui(tracking_uri: str, override: str | None = None) -> dict[str, str | None]:
    """Base URL of the MLflow UI for ``tracking_uri`` and, when it must be started, how.

    An http(s) tracking server is its own UI; a database or file store is not served by
    anyone, so links go to ``mlflow ui``'s default address with the command that serves it.
    """
    if override:
        return {"url": override.rstrip("/"), "hint": None}
    if tracking_uri.startswith(("http://", "https://")):
        return {"url": tracking_uri.rstrip("/"), "hint": None}
    return {"url": "http://127.0.0.1:5000", "hint": f"mlflow ui --backend-store-uri {tracking_uri}"}


def model_url(base: str, name: str, version: str | None = None) -> str:
    """The MLflow UI page of a registered model, or of one of its versions."""
    return f"{base}/#/models/{name}" + (f"/versions/{version}" if version is not None else "")


class _TtlCache:
    """One value recomputed at most every ``ttl_s`` seconds; concurrent callers share a refresh."""

    def __init__(self, ttl_s: float) -> None:
        self._ttl_s = ttl_s
        self._value: Any = None
        self._expires = float("-inf")
        self._lock = asyncio.Lock()

    async def get(self, compute: Callable[[], Awaitable[T]]) -> T:
        async with self._lock:
            if time.monotonic() >= self._expires:
                self._value = await compute()
                self._expires = time.monotonic() + self._ttl_s
            return self._value


def _history_row(entry: HistoryEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "time": entry.time,
        "sensor": entry.sensor,
        "trigger": entry.trigger.value,
        "decision": entry.decision.value,
        "outcome": None if entry.outcome is None else entry.outcome.value,
        "outcome_time": entry.outcome_time,
        "model_version": entry.model_version,
        "evidence": entry.evidence,
    }


def _sensor_state(status: dict[str, Any], alerts: list[dict[str, Any]]) -> str:
    levels = {a["level"] for a in alerts}
    if AlertLevel.CRITICAL.value in levels:
        return "critical"
    if AlertLevel.WARNING.value in levels:
        return "warning"
    return "ok" if status.get("scoring") == "scoring" else "idle"


def _model_ref(version: VersionInfo | None) -> dict[str, str] | None:
    return None if version is None else {"name": version.name, "version": version.version}


def _unavailable_row(sensor_id: str, error: str, version: VersionInfo | None) -> dict[str, Any]:
    """The fleet row of a sensor whose actor does not answer: ``critical``, no status, one alert."""
    alert = {
        "sensor_id": sensor_id,
        "kind": "unavailable",
        "level": AlertLevel.CRITICAL.value,
        "message": f"{sensor_id}: its actor does not answer: {error}",
        "value": None,
        "limit": None,
    }
    kpis = dict.fromkeys(("rolling_rmse", "rolling_points", "validation_rmse", "rmse_ratio", "events_last_hour"))
    return {
        "sensor_id": sensor_id,
        "state": "critical",
        "status": None,
        "status_error": error,
        "recent_events": [],
        "model": _model_ref(version),
        "kpis": kpis,
        "alerts": [alert],
    }


class Dashboard:
    """The data behind the page: the Fleet actor, the registry and the retraining history.

    Args:
        settings: the whole configuration (``dashboard`` limits, ``serve.model_kinds``,
            ``actors.recent_events``, ``home`` for the history, the tracking URI).
        fleet: the Fleet actor proxy; None answers the fleet route with 503.
        tracking: the MLflow store (also the registry).
    """

    def __init__(self, settings: Settings, fleet: DashboardFleet | None, tracking: Tracking) -> None:
        self.settings = settings
        self.cfg = settings.dashboard
        self.fleet = fleet
        self.tracking = tracking
        self._versions = _TtlCache(self.cfg.registry_ttl_s)
        self._validation: dict[tuple[str, str], tuple[float | None, float]] = {}  # -> (rmse, expires)
        self._history: RetrainingHistory | None = None

    async def versions(self) -> list[VersionInfo]:
        """Every registered pdm-ray version, read at most every ``registry_ttl_s``."""
        return await self._versions.get(lambda: asyncio.to_thread(list_versions, self.tracking))

    async def _validation_rmse(self, version: VersionInfo) -> float | None:
        """A version's validation RMSE in sensor units (None when it has none or it cannot be read).

        An answer is kept for good, as a version never changes; a failed read only for
        ``registry_ttl_s``, as it may be transient (a locked database, an unreachable store).
        """
        key = (version.name, version.version)
        hit = self._validation.get(key)
        if hit is not None and time.monotonic() < hit[1]:
            return hit[0]
        try:
            rmse = await asyncio.to_thread(validation_rmse, self.tracking, version.name, version.version)
            expires = float("inf")
        except PdmError as exc:
            logger.warning("%s version %s: no validation RMSE: %s", version.name, version.version, exc)
            rmse, expires = None, time.monotonic() + self.cfg.registry_ttl_s
        self._validation[key] = (rmse, expires)
        return rmse

    def _production(self, versions: list[VersionInfo]) -> dict[str, VersionInfo]:
        """Sensor id -> production version, the first of ``serve.model_kinds`` that has one."""
        live = [v for v in versions if PRODUCTION in v.aliases]
        out: dict[str, VersionInfo] = {}
        for kind in self.settings.serve.model_kinds:
            suffix = f"-{kind}"
            for v in live:
                if v.name.startswith(NAME_PREFIX) and v.name.endswith(suffix):
                    out.setdefault(v.name[len(NAME_PREFIX) : -len(suffix)], v)
        return out

    async def fleet_view(self) -> dict[str, Any]:
        """Per sensor (worst state first): status, last anomalies, production model, KPIs, alerts, state.

        ``state`` is ``critical`` or ``warning`` after the worst alert, else ``ok`` while
        scoring and ``idle`` otherwise (warming up, no model, forecaster failing). A sensor
        whose actor does not answer has ``status`` null, the reason in ``status_error`` and
        a critical ``unavailable`` alert.
        """
        if self.fleet is None:
            raise ApiError(503, "fleet_unavailable", "the Fleet actor is not configured for this API")
        answers, versions = await asyncio.gather(self.fleet.status_all(), self.versions())
        # The Fleet answers (sensor_id, error) for a sensor whose actor does not answer.
        unavailable = dict(a for a in answers if isinstance(a, tuple))
        statuses = jsonable([a for a in answers if not isinstance(a, tuple)])
        ids = [s["sensor_id"] for s in statuses]
        keep = self.settings.actors.recent_events
        events = jsonable(await asyncio.gather(*(self.fleet.recent(sid, keep) for sid in ids)))
        production = {sid: v for sid, v in self._production(versions).items() if sid in ids or sid in unavailable}
        rmses = await asyncio.gather(*(self._validation_rmse(v) for v in production.values()))
        validation = dict(zip(production, rmses, strict=True))
        sensors, everything = [], []
        for status, recent in zip(statuses, events, strict=True):
            sid = status["sensor_id"]
            version = production.get(sid)
            val_rmse = validation.get(sid)
            mse = status.get("rolling_mse")
            kpis = SensorKpis(
                sensor_id=sid,
                rolling_rmse=None if mse is None else mse**0.5,
                rolling_points=int(status.get("rolling_points") or 0),
                validation_rmse=val_rmse,
                events_last_hour=events_in_last_hour([e["end_time"] for e in recent], status["last_timestamp"]),
                drift_severity=status.get("drift_severity"),
                quality=status.get("quality"),
                quality_reasons=tuple(status.get("quality_reasons") or ()),
            )
            alerts = [a.to_dict() for a in sensor_alerts(kpis, self.cfg)]
            everything.extend(alerts)
            sensors.append(
                {
                    "sensor_id": sid,
                    "state": _sensor_state(status, alerts),
                    "status": status,
                    "status_error": None,
                    "recent_events": recent[-self.cfg.recent_events :] if self.cfg.recent_events else [],
                    "model": _model_ref(version),
                    "kpis": {
                        "rolling_rmse": kpis.rolling_rmse,
                        "rolling_points": kpis.rolling_points,
                        "validation_rmse": kpis.validation_rmse,
                        "rmse_ratio": kpis.rmse_ratio,
                        "events_last_hour": kpis.events_last_hour,
                    },
                    "alerts": alerts,
                }
            )
        for sid, error in unavailable.items():
            row = _unavailable_row(sid, error, production.get(sid))
            everything.extend(row["alerts"])
            sensors.append(row)
        sensors.sort(key=lambda s: (_STATE_ORDER[s["state"]], s["sensor_id"]))
        everything.sort(key=lambda a: (a["level"] != AlertLevel.CRITICAL.value, a["sensor_id"], a["kind"]))
        return {
            "generated_at": time.time(),
            "refresh_s": self.cfg.refresh_s,
            "limits": self.cfg.model_dump(mode="json"),
            "sensors": sensors,
            "alerts": everything,
        }

    async def models_view(self) -> dict[str, Any]:
        """Registered versions, newest first per model, with MLflow UI links."""
        ui = mlflow_ui(self.tracking.uri, self.cfg.mlflow_ui_url)
        base = str(ui["url"])
        rows = [
            {
                "name": v.name,
                "version": v.version,
                "aliases": list(v.aliases),
                "status": v.status,
                "val_loss": v.val_loss,
                "run_id": v.run_id,
                "url": model_url(base, v.name, v.version),
                "model_url": model_url(base, v.name),
            }
            for v in await self.versions()
        ]
        return {"tracking_uri": self.tracking.uri, "mlflow_ui": ui, "versions": rows}

    def _history_entries(self, limit: int) -> list[dict[str, Any]]:
        path = history_path(self.settings.home)
        if not path.exists():
            return []  # nothing retrained yet; do not create the file from a read
        if self._history is None:
            self._history = RetrainingHistory(path)
        return [_history_row(e) for e in self._history.list(limit=limit)]

    async def history_view(self, limit: int) -> dict[str, Any]:
        """The newest ``limit`` retraining decisions and outcomes, newest first."""
        return {"entries": await asyncio.to_thread(self._history_entries, limit)}


def _page(request: Request, dashboard: Dashboard) -> str:
    template = resources.files("serve_apps").joinpath("dashboard.html").read_text()
    values = {
        "root": request.scope.get("root_path", "").rstrip("/"),
        "refresh": f"{dashboard.cfg.refresh_s:g}",
        "points": str(dashboard.cfg.series_points),
    }
    for key, value in values.items():
        template = template.replace(f"{{{{{key}}}}}", html.escape(value, quote=True))
    return template


class _PlotlyJs:
    """``plotly.min.js`` from the plotly package, gzipped once on first request."""

    def __init__(self) -> None:
        self._gzipped: bytes | None = None

    async def response(self, request: Request) -> Response:
        headers = {"Cache-Control": "public, max-age=86400", "Vary": "Accept-Encoding"}
        if "gzip" not in request.headers.get("accept-encoding", ""):
            return FileResponse(PLOTLY_JS, media_type="text/javascript", headers=headers)
        if self._gzipped is None:
            self._gzipped = await asyncio.to_thread(lambda: gzip.compress(PLOTLY_JS.read_bytes(), 6))
        headers["Content-Encoding"] = "gzip"
        return Response(self._gzipped, media_type="text/javascript", headers=headers)


def install_dashboard(app: FastAPI, dashboard: Dashboard) -> None:
    """Add ``/dashboard``, its static files and its JSON routes to the API's app."""
    plotly_js = _PlotlyJs()

    @app.get("/dashboard", include_in_schema=False)
    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(_page(request, dashboard), headers={"Cache-Control": "no-cache"})

    @app.get("/dashboard/static/{name}", include_in_schema=False)
    async def static(name: str, request: Request) -> Response:
        if name == "plotly.min.js":
            return await plotly_js.response(request)
        if name not in _OWN_STATIC:
            raise ApiError(404, "not_found", f"no static file {name!r}", "name")
        text = resources.files("serve_apps").joinpath(name).read_text()
        return Response(text, media_type=_OWN_STATIC[name], headers={"Cache-Control": "no-cache"})

    @app.get("/dashboard/api/fleet", tags=["dashboard"])
    async def fleet() -> JSONResponse:
        """Every sensor's status, last anomalies, model, KPIs and alerts (worst state first)."""
        return JSONResponse(jsonable(await dashboard.fleet_view()))

    @app.get("/dashboard/api/models", tags=["dashboard"])
    async def models() -> JSONResponse:
        """Registered model versions with links into the MLflow UI."""
        return JSONResponse(jsonable(await dashboard.models_view()))

    @app.get("/dashboard/api/retraining", tags=["dashboard"])
    async def retraining(limit: int | None = Query(None, ge=1, le=1000)) -> JSONResponse:
        """The retraining history, newest first (default ``dashboard.history_limit`` entries)."""
        return JSONResponse(jsonable(await dashboard.history_view(limit or dashboard.cfg.history_limit)))
