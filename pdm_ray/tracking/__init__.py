"""MLflow tracking and registry: runs, the pyfunc forecaster, the alias lifecycle, a local server.

The names below load their module on first use: the pyfunc forecaster brings in JAX, Flax
and MLflow's pyfunc, which processes that only read the registry (the Serve ingress, the
CLI) should not pay for.
"""

import importlib
from typing import Any

_MODULE_OF = {
    "ForecasterModel": "pyfunc",
    "forecast": "pyfunc",
    "load_forecaster": "pyfunc",
    "log_pyfunc": "pyfunc",
    "save_pyfunc": "pyfunc",
    "GateDecision": "registry",
    "RollbackResult": "registry",
    "VersionInfo": "registry",
    "list_versions": "registry",
    "load_version": "registry",
    "model_name": "registry",
    "promote": "registry",
    "register_version": "registry",
    "rollback": "registry",
    "Tracking": "runs",
    "connect": "runs",
    "connect_settings": "runs",
    "end_run": "runs",
    "start_parent_run": "runs",
    "local_mlflow_server": "server",
    "tracking_uri_for_writers": "server",
}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
