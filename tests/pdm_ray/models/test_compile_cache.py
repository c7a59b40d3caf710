"""The compile cache only saves time: a folder it cannot create leaves it off, never fails a training."""

from __future__ import annotations

import logging
from pathlib import Path

import jax
import pytest

from pdm_ray.models.compile_cache import use_compile_cache


def test_a_folder_that_cannot_be_created_leaves_the_cache_off(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    before = jax.config.jax_compilation_cache_dir
    with caplog.at_level(logging.WARNING, logger="pdm_ray.models.compile_cache"):
        use_compile_cache(blocker / "jax_cache")
    assert jax.config.jax_compilation_cache_dir == before
    assert "compile cache off" in caplog.text and str(blocker / "jax_cache") in caplog.text


def test_none_leaves_the_cache_off() -> None:
    before = jax.config.jax_compilation_cache_dir
    use_compile_cache(None)
    assert jax.config.jax_compilation_cache_dir == before
