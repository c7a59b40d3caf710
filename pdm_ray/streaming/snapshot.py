"""Atomic snapshots of a sensor's state as one ``.npz`` file (no pickle).

A state is a tree of dicts and lists whose leaves are numpy arrays or JSON scalars. Arrays
go into the archive under their path (``"ring/values"``); the rest of the tree is JSON
(stored as a ``uint8`` array under ``"__meta__"``) with each array replaced by
``{"__array__": path}``. The file is written to a temporary name, fsync'd and renamed over
the previous snapshot (``os.replace``), so a crash leaves either the old or the new one.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pdm_ray.errors import DataError
from pdm_ray.streaming.wal import fsync_dir

SNAPSHOT_VERSION = 1
_META_KEY = "__meta__"
_ARRAY_TAG = "__array__"


def pack_state(tree: Any) -> tuple[dict[str, np.ndarray], Any]:
    """Split a state tree into ``{path: array}`` and a JSON-serializable skeleton."""
    arrays: dict[str, np.ndarray] = {}

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, np.ndarray):
            arrays[path] = node
            return {_ARRAY_TAG: path}
        if isinstance(node, np.generic):
            return node.item()
        if isinstance(node, Mapping):
            return {str(k): walk(v, f"{path}/{k}" if path else str(k)) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return [walk(v, f"{path}/{i}") for i, v in enumerate(node)]
        return node

    return arrays, walk(tree, "")


def unpack_state(arrays: Mapping[str, np.ndarray], skeleton: Any) -> Any:
    """Inverse of ``pack_state``."""
    if isinstance(skeleton, dict):
        if set(skeleton) == {_ARRAY_TAG}:
            return arrays[skeleton[_ARRAY_TAG]]
        return {k: unpack_state(arrays, v) for k, v in skeleton.items()}
    if isinstance(skeleton, list):
        return [unpack_state(arrays, v) for v in skeleton]
    return skeleton


def write_snapshot(path: str | Path, state: Any) -> int:
    """Write ``state`` atomically to ``path`` (an ``.npz``). Returns the file size in bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays, skeleton = pack_state(state)
    meta = json.dumps({"version": SNAPSHOT_VERSION, "state": skeleton}, allow_nan=True).encode()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("wb") as fh:
        np.savez(fh, **{_META_KEY: np.frombuffer(meta, dtype=np.uint8)}, **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return path.stat().st_size


def read_snapshot(path: str | Path) -> Any | None:
    """Read a snapshot written by ``write_snapshot``; None when there is none.

    Raises:
        DataError: the file exists but is not a readable snapshot of a known version.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable snapshot: {exc}") from exc
    if _META_KEY not in arrays:
        raise DataError(f"{path}: not a pdm-ray snapshot (no {_META_KEY} entry)")
    meta = json.loads(arrays.pop(_META_KEY).tobytes())
    if meta.get("version") != SNAPSHOT_VERSION:
        raise DataError(f"{path}: snapshot version {meta.get('version')!r}, expected {SNAPSHOT_VERSION}")
    return unpack_state(arrays, meta["state"])
