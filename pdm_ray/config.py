"""Typed settings: YAML file + ``PDM_*`` environment overrides -> ``Settings``.

Every component takes its own section (e.g. ``settings.threshold``); nothing reads
global state. Unknown keys are errors, so a typo in a config file never passes silently.

Environment overrides: ``PDM_HOME`` sets ``home``; ``PDM_<SECTION>__<FIELD>`` sets a
nested field (e.g. ``PDM_TRAIN__EPOCHS=5``, ``PDM_TRACKING__URI=http://...``). Values are
parsed as YAML scalars, so ``5`` is an int and ``true`` a bool.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pdm_ray.errors import ConfigError

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSettings(_Section):
    """Where the Telemanom-layout data lives and which channels to use."""

    dir: Path = Path("data/sample")
    channels: list[str] | None = None


class WindowSettings(_Section):
    """Telemanom windows: ``l_s`` inputs -> the next ``n_predictions`` values of channel 0."""

    l_s: int = Field(250, gt=0)
    n_predictions: int = Field(10, gt=0)


class LSTMSettings(_Section):
    """The paper's LSTM: 2 stacked layers of 80 units, dropout 0.3."""

    layers: list[int] = Field(default_factory=lambda: [80, 80], min_length=1)
    dropout: float = Field(0.3, ge=0.0, lt=1.0)


class TransformerSettings(_Section):
    """Encoder-only transformer with sinusoidal positional encoding."""

    d_model: int = Field(64, gt=0)
    num_heads: int = Field(4, gt=0)
    num_layers: int = Field(2, gt=0)
    ff_dim: int = Field(128, gt=0)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _heads_divide_d_model(self) -> TransformerSettings:
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})")
        return self


class TrainSettings(_Section):
    """Training loop; defaults are Hundman et al. (2018)'s."""

    model: Literal["lstm", "transformer"] = "lstm"
    learning_rate: float = Field(1e-3, gt=0)
    batch_size: int = Field(64, gt=0)
    epochs: int = Field(35, gt=0)
    patience: int = Field(10, ge=0)
    min_delta: float = Field(3e-4, ge=0)
    validation_split: float = Field(0.2, gt=0, lt=1)
    seed: int = 0


class ThresholdSettings(_Section):
    """Nonparametric dynamic threshold (Hundman et al. 2018, arXiv:1802.04431)."""

    batch_size: int = Field(70, gt=0)
    window_size: int = Field(30, gt=0)
    smoothing_perc: float = Field(0.05, gt=0, le=1)
    error_buffer: int = Field(100, ge=0)
    p: float = Field(0.13, ge=0, lt=1)
    z_min: float = 2.5
    z_max: float = 12.0
    z_step: float = Field(0.5, gt=0)
    min_error_scale: float = Field(0.05, ge=0)


class TrackingSettings(_Section):
    """MLflow tracking and registry. ``uri`` None means SQLite under ``home``."""

    uri: str | None = None
    experiment: str = "pdm-ray"
    promotion_margin: float = Field(0.0, ge=0)


class RaySettings(_Section):
    """Ray connection. ``address`` None starts a local cluster."""

    address: str | None = None
    namespace: str = "pdm"
    num_cpus: int | None = Field(None, gt=0)


class ServeSettings(_Section):
    """Ray Serve HTTP API."""

    host: str = "127.0.0.1"
    port: int = Field(8000, gt=0, lt=65536)
    auth_token: str | None = None
    max_body_bytes: int = Field(8 * 1024 * 1024, gt=0)
    max_models_per_replica: int = Field(8, gt=0)
    model_replicas: int = Field(1, gt=0)


class Settings(_Section):
    """The whole resolved configuration."""

    home: Path = Path(".pdm_ray")
    data: DataSettings = DataSettings()
    windows: WindowSettings = WindowSettings()
    lstm: LSTMSettings = LSTMSettings()
    transformer: TransformerSettings = TransformerSettings()
    train: TrainSettings = TrainSettings()
    threshold: ThresholdSettings = ThresholdSettings()
    tracking: TrackingSettings = TrackingSettings()
    ray: RaySettings = RaySettings()
    serve: ServeSettings = ServeSettings()

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking URI: the configured one, else SQLite under ``home``."""
        if self.tracking.uri:
            return self.tracking.uri
        return f"sqlite:///{(self.home / 'mlflow.db').resolve()}"


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, raw in env.items():
        if not key.startswith("PDM_"):
            continue
        path = key[4:].lower().split("__")
        if path[0] not in Settings.model_fields:
            continue
        value = yaml.safe_load(raw) if raw else raw
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _describe(error: ValidationError, source: str) -> str:
    first = error.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "<root>"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    got = first.get("input")
    detail = "" if first["type"] == "extra_forbidden" or isinstance(got, dict) else f" (got {got!r})"
    more = len(error.errors()) - 1
    suffix = f" [+{more} more error(s)]" if more else ""
    return f"{source}: {field}: {msg}{detail}{suffix}"


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Load settings from a YAML file (default ``configs/default.yaml``) plus env overrides.

    Args:
        path: YAML file; None uses the packaged default file when it exists.
        env: environment mapping (default ``os.environ``).

    Raises:
        ConfigError: the file is missing or unreadable, or a field is invalid. The message
            names the file, the field path and what was expected.
    """
    env = os.environ if env is None else env
    source = Path(path) if path is not None else DEFAULT_CONFIG
    raw: dict[str, Any] = {}
    if path is not None or source.exists():
        if not source.is_file():
            raise ConfigError(f"{source}: config file not found")
        try:
            loaded = yaml.safe_load(source.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML: {str(exc).splitlines()[0]}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{source}: expected a mapping at the top level, got {type(loaded).__name__}")
        raw = loaded
    merged = _merge(raw, _env_overrides(env))
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, str(source))) from None
