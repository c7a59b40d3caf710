"""MLflow tracking and registry: runs, the pyfunc forecaster, the alias lifecycle, a local server."""

from pdm_ray.tracking.pyfunc import ForecasterModel, forecast, load_forecaster, log_pyfunc, save_pyfunc
from pdm_ray.tracking.registry import (
    GateDecision,
    RollbackResult,
    VersionInfo,
    list_versions,
    load_version,
    model_name,
    promote,
    register_version,
    rollback,
)
from pdm_ray.tracking.runs import Tracking, connect, connect_settings, end_run, start_parent_run
from pdm_ray.tracking.server import local_mlflow_server, tracking_uri_for_writers

__all__ = [
    "ForecasterModel",
    "GateDecision",
    "RollbackResult",
    "Tracking",
    "VersionInfo",
    "connect",
    "connect_settings",
    "end_run",
    "forecast",
    "list_versions",
    "load_forecaster",
    "load_version",
    "local_mlflow_server",
    "log_pyfunc",
    "model_name",
    "promote",
    "register_version",
    "rollback",
    "save_pyfunc",
    "start_parent_run",
    "tracking_uri_for_writers",
]
