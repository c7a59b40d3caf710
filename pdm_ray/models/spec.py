"""``ModelSpec``: everything needed to rebuild a forecaster network, as plain JSON data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from pydantic import ValidationError

from pdm_ray.config import LSTMSettings, Settings, TransformerSettings
from pdm_ray.errors import ConfigError, DataError

ModelKind = Literal["lstm", "transformer"]
MODEL_KINDS: tuple[str, ...] = get_args(ModelKind)
_SPEC_KEYS = ("kind", "n_features", "l_s", "n_predictions", "lstm", "transformer")
# Network fields added after models were first saved: a saved spec without one describes the
# network of that time (one token per step, one member), not today's default.
_ABSENT_MEANS = {"lstm": {"members": 1}, "transformer": {"patch_len": 1, "members": 1}}


@dataclass(frozen=True)
class ModelSpec:
    """The architecture and the window shape of one forecaster.

    Attributes:
        kind: which network, ``"lstm"`` or ``"transformer"``.
        n_features: ``F``, features per time step of the input windows ``[N, l_s, F]``.
        l_s: input window length.
        n_predictions: how many future steps of channel 0 the network predicts.
        lstm: LSTM hyper-parameters (used when ``kind == "lstm"``).
        transformer: Transformer hyper-parameters (used when ``kind == "transformer"``).
    """

    kind: ModelKind
    n_features: int
    l_s: int
    n_predictions: int
    lstm: LSTMSettings = field(default_factory=LSTMSettings)
    transformer: TransformerSettings = field(default_factory=TransformerSettings)

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ConfigError(f"model kind must be one of {MODEL_KINDS}, got {self.kind!r}")
        for name in ("n_features", "l_s", "n_predictions"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"ModelSpec.{name} must be a positive integer, got {value!r}")

    @classmethod
    def from_settings(cls, settings: Settings, n_features: int) -> ModelSpec:
        """The spec the settings describe (``train.model``, ``windows``, ``lstm``, ``transformer``)."""
        return cls(
            kind=settings.train.model,
            n_features=n_features,
            l_s=settings.windows.l_s,
            n_predictions=settings.windows.n_predictions,
            lstm=settings.lstm,
            transformer=settings.transformer,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; ``ModelSpec.from_dict(spec.to_dict()) == spec``."""
        return {
            "kind": self.kind,
            "n_features": self.n_features,
            "l_s": self.l_s,
            "n_predictions": self.n_predictions,
            "lstm": self.lstm.model_dump(mode="json"),
            "transformer": self.transformer.model_dump(mode="json"),
        }

    @classmethod
    def from_dict(cls, data: Any) -> ModelSpec:
        """Rebuild a spec from ``to_dict`` output.

        Raises:
            DataError: ``data`` is not a dict with exactly the spec's keys, or a value is invalid.
        """
        if not isinstance(data, dict):
            raise DataError(f"model spec must be a JSON object, got {type(data).__name__}")
        missing = [k for k in _SPEC_KEYS if k not in data]
        extra = sorted(set(data) - set(_SPEC_KEYS))
        if missing or extra:
            raise DataError(f"model spec: missing keys {missing}, unknown keys {extra}")
        sections: dict[str, Any] = {}
        for name, section in (("lstm", LSTMSettings), ("transformer", TransformerSettings)):
            try:
                saved = data[name]
                if isinstance(saved, dict):
                    saved = {**_ABSENT_MEANS[name], **saved}
                sections[name] = section.model_validate(saved)
            except ValidationError as exc:
                first = exc.errors()[0]
                field = ".".join(str(p) for p in (name, *first["loc"]))
                raise DataError(f"model spec: {field}: {first['msg']}") from None
        try:
            return cls(
                kind=data["kind"],
                n_features=data["n_features"],
                l_s=data["l_s"],
                n_predictions=data["n_predictions"],
                **sections,
            )
        except ConfigError as exc:
            raise DataError(f"model spec: {exc}") from None
