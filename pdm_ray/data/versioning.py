"""Which data a model was trained on: its DVC md5, or a content hash when DVC does not track it.

``data_version(path)`` looks for the nearest DVC repository above ``path`` and, in it, a
``<path>.dvc`` file or a ``dvc.lock`` stage that lists ``path`` as an output or
dependency. The recorded md5 is used only if it still matches the files on disk (DVC 3's
own hashing: md5 of each file; for a directory, md5 of the sorted ``[{md5, relpath}]``
JSON list, suffixed ``.dir``), so a version never names data that has since changed.
Otherwise the version is a sha256 over the sorted relative file paths and their bytes,
the same for any copy of the same files. The version becomes MLflow run tags
(``DataVersion.as_tags``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from pdm_ray.errors import DataError

logger = logging.getLogger(__name__)

CHUNK = 1 << 20
VersionSource = Literal["dvc", "content-hash"]


@dataclass(frozen=True)
class DataVersion:
    """A data version.

    Attributes:
        path: the data path as given, resolved.
        source: ``dvc`` (a DVC-recorded md5 that matches the files) or ``content-hash``.
        digest: DVC md5 (``...dir`` for a directory) or sha256 hex.
        n_files: files hashed.
        size: bytes hashed.
        tracked_by: the ``.dvc`` file or ``dvc.lock:<stage>`` that recorded the md5, else None.
    """

    path: str
    source: VersionSource
    digest: str
    n_files: int
    size: int
    tracked_by: str | None = None

    def as_tags(self) -> dict[str, str]:
        """MLflow run tags naming this version."""
        tags = {"data.path": self.path, "data.version": self.digest, "data.version_source": self.source}
        if self.tracked_by:
            tags["data.tracked_by"] = self.tracked_by
        return tags


def _files(root: Path) -> list[tuple[str, Path]]:
    """``(relative posix path, file)`` under ``root`` sorted by path; a file is its own name."""
    if root.is_file():
        return [(root.name, root)]
    found = [(p.relative_to(root).as_posix(), p) for p in root.rglob("*") if p.is_file()]
    return sorted(found)


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def dvc_md5(path: str | Path) -> str:
    """The md5 DVC 3 records for ``path`` (a file, or a directory as ``<md5>.dir``)."""
    root = Path(path)
    if root.is_file():
        return _md5(root)
    entries = [{"md5": _md5(file), "relpath": rel} for rel, file in _files(root)]
    listing = json.dumps(entries, sort_keys=True).encode()
    return hashlib.md5(listing, usedforsecurity=False).hexdigest() + ".dir"


def content_hash(path: str | Path) -> tuple[str, int, int]:
    """sha256 over the sorted relative paths and bytes of the files under ``path``.

    Returns:
        ``(hex digest, number of files, total bytes)``.
    """
    digest = hashlib.sha256()
    n_files = size = 0
    for rel, file in _files(Path(path)):
        digest.update(rel.encode() + b"\0")
        digest.update(file.stat().st_size.to_bytes(8, "little"))
        with file.open("rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
        n_files += 1
        size += file.stat().st_size
    return digest.hexdigest(), n_files, size


def _dvc_root(path: Path) -> Path | None:
    for parent in [path, *path.parents]:
        if (parent / ".dvc").is_dir():
            return parent
    return None


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(f"{path}: unreadable DVC file: {exc}") from exc


def _entries(doc: Any, kind: str, source: Path) -> list[dict[str, Any]]:
    """The ``outs``/``deps`` list of a parsed DVC file or lock stage, checked to be mappings."""
    entries = (doc or {}).get(kind, []) if isinstance(doc, dict) or doc is None else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise DataError(f"{source}: malformed DVC file: '{kind}' must be a list of mappings")
    return entries


def _recorded_md5(path: Path, root: Path) -> tuple[str, str] | None:
    """``(md5, tracked_by)`` recorded for ``path`` by a ``.dvc`` file or a ``dvc.lock``, else None."""
    dvc_file = path.with_name(path.name + ".dvc")
    if dvc_file.is_file():
        for out in _entries(_read_yaml(dvc_file), "outs", dvc_file):
            if os.path.normpath(dvc_file.parent / out.get("path", "")) == str(path) and "md5" in out:
                return str(out["md5"]), str(dvc_file.relative_to(root))
    for folder in [path.parent, *path.parent.parents]:
        lock = folder / "dvc.lock"
        if lock.is_file():
            doc = _read_yaml(lock) or {}
            stages = doc.get("stages", {}) if isinstance(doc, dict) else None
            if not isinstance(stages, dict):
                raise DataError(f"{lock}: not a DVC lock file (no 'stages' mapping)")
            for kind in ("outs", "deps"):
                for stage, body in stages.items():
                    for entry in _entries(body, kind, lock):
                        if os.path.normpath(folder / entry.get("path", "")) == str(path) and "md5" in entry:
                            return str(entry["md5"]), f"{lock.relative_to(root)}:{stage}"
        if folder == root:
            break
    return None


def data_version(path: str | Path) -> DataVersion:
    """The version of the data at ``path`` (a file or a directory).

    Raises:
        DataError: ``path`` does not exist, holds no file, or a DVC file is unreadable.
    """
    resolved = Path(path).resolve()
    if not resolved.exists():
        raise DataError(f"{path}: no such file or directory")
    digest, n_files, size = content_hash(resolved)
    if n_files == 0:
        raise DataError(f"{path}: no files to version")
    root = _dvc_root(resolved)
    recorded = _recorded_md5(resolved, root) if root is not None else None
    if recorded is not None:
        md5, tracked_by = recorded
        if dvc_md5(resolved) == md5:
            return DataVersion(str(resolved), "dvc", md5, n_files, size, tracked_by)
        logger.warning("%s: changed since %s recorded md5 %s; using its content hash", path, tracked_by, md5)
    return DataVersion(str(resolved), "content-hash", digest, n_files, size)
