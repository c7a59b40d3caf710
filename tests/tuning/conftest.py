"""Tiny Telemanom-layout directories cut from the sample channels."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pdm_ray.config import DEFAULT_CONFIG

REPO = DEFAULT_CONFIG.parent.parent
SAMPLE = REPO / "data" / "sample"


def _tiny_data(root: Path, channels: tuple[str, ...] = ("A-2", "T-1")) -> Path:
    for split, n in (("train", 300), ("test", 200)):
        (root / split).mkdir(parents=True)
        for cid in channels:
            np.save(root / split / f"{cid}.npy", np.load(SAMPLE / split / f"{cid}.npy")[:n])
    return root


@pytest.fixture(scope="session")
def tiny_data() -> Callable[..., Path]:
    """Factory ``(root, channels=("A-2", "T-1")) -> root``: 300 train / 200 test steps per channel.

    No label file: the sample labels lie beyond the slices.
    """
    return _tiny_data
