"""Saving and loading trained models without pickle: Flax msgpack params + a JSON document.

A model directory holds ``params.msgpack`` (``flax.serialization``) and ``model.json`` (the
spec, training settings, history, metrics and normalizer). Both are written to a temporary
name and renamed, so a reader never sees half a model.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization
from pydantic import ValidationError

from pdm_ray.config import TrainSettings
from pdm_ray.errors import DataError, ModelNotTrainedError
from pdm_ray.models.networks import build_network
from pdm_ray.models.spec import ModelSpec
from pdm_ray.models.training import EpochMetrics, TrainedModel

PARAMS_FILE = "params.msgpack"
MODEL_FILE = "model.json"
FORMAT_VERSION = 1


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_model(model: TrainedModel, directory: str | Path) -> Path:
    """Write ``model`` to ``directory`` (created if needed); returns the directory.

    Raises:
        ModelNotTrainedError: the model has no parameters.
    """
    if model.params is None:
        raise ModelNotTrainedError("cannot save a model without parameters")
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    doc = {
        "format_version": FORMAT_VERSION,
        "spec": model.spec.to_dict(),
        "train_settings": model.train_settings.model_dump(mode="json"),
        "history": [asdict(m) for m in model.history],
        "best_epoch": model.best_epoch,
        "val_loss": model.val_loss,
        "naive_val_loss": model.naive_val_loss,
        "train_seconds": model.train_seconds,
        "seed": model.seed,
        "normalizer": model.normalizer,
    }
    try:
        text = json.dumps(doc, indent=2, allow_nan=True)
    except TypeError as exc:
        raise DataError(f"model normalizer is not JSON-serializable: {exc}") from None
    _write_atomic(root / PARAMS_FILE, serialization.to_bytes(jax.device_get(model.params)))
    _write_atomic(root / MODEL_FILE, text.encode())
    return root


def _field(doc: dict[str, Any], key: str, path: Path) -> Any:
    if key not in doc:
        raise DataError(f"{path}: missing key {key!r}")
    return doc[key]


def load_model(directory: str | Path) -> TrainedModel:
    """Read a model written by ``save_model``; its predictions equal the saved model's.

    Raises:
        ModelNotTrainedError: the directory holds no saved model (``model.json`` or
            ``params.msgpack`` is missing).
        DataError: a file is corrupt, or the params do not match the spec's network.
    """
    root = Path(directory)
    for name in (MODEL_FILE, PARAMS_FILE):
        if not (root / name).is_file():
            raise ModelNotTrainedError(f"{root}: no saved model: {name} not found")
    json_path = root / MODEL_FILE
    try:
        doc = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{json_path}: not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise DataError(f"{json_path}: expected a JSON object, got {type(doc).__name__}")
    version = _field(doc, "format_version", json_path)
    if version != FORMAT_VERSION:
        raise DataError(f"{json_path}: unsupported format_version {version!r} (expected {FORMAT_VERSION})")
    spec = ModelSpec.from_dict(_field(doc, "spec", json_path))
    try:
        train_settings = TrainSettings.model_validate(_field(doc, "train_settings", json_path))
        history = tuple(EpochMetrics(**m) for m in _field(doc, "history", json_path))
    except (ValidationError, TypeError) as exc:
        raise DataError(f"{json_path}: malformed training record: {exc}") from None

    net = build_network(spec)
    dummy = jax.ShapeDtypeStruct((1, spec.l_s, spec.n_features), jnp.float32)
    template = jax.eval_shape(lambda x: net.init(jax.random.PRNGKey(0), x, train=False)["params"], dummy)
    params_path = root / PARAMS_FILE
    try:
        raw = serialization.msgpack_restore(params_path.read_bytes())
        params = serialization.from_state_dict(template, raw)
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{params_path}: params do not match the {spec.kind} network of {json_path}: {exc}") from None
    shapes = jax.tree.map(lambda t, p: tuple(t.shape) == np.shape(p), template, params)
    if not all(jax.tree.leaves(shapes)):
        raise DataError(f"{params_path}: parameter shapes do not match the {spec.kind} network of {json_path}")
    return TrainedModel(
        spec=spec,
        params=jax.tree.map(jnp.asarray, params),
        history=history,
        best_epoch=int(_field(doc, "best_epoch", json_path)),
        val_loss=float(_field(doc, "val_loss", json_path)),
        naive_val_loss=float(_field(doc, "naive_val_loss", json_path)),
        train_seconds=float(_field(doc, "train_seconds", json_path)),
        seed=int(_field(doc, "seed", json_path)),
        train_settings=train_settings,
        normalizer=doc.get("normalizer"),
    )
