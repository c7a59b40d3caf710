from __future__ import annotations

import os

import pytest

from pdm_ray.environment import scoped_environ


def test_values_override_defaults_fill_gaps_and_everything_is_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PDM_T_SET", "caller")
    monkeypatch.setenv("PDM_T_DEFAULT_SET", "caller")
    monkeypatch.delenv("PDM_T_NEW", raising=False)
    monkeypatch.delenv("PDM_T_DEFAULT_NEW", raising=False)
    with scoped_environ(
        {"PDM_T_SET": "ours", "PDM_T_NEW": "ours"}, {"PDM_T_DEFAULT_SET": "d", "PDM_T_DEFAULT_NEW": "d"}
    ):
        assert os.environ["PDM_T_SET"] == "ours" and os.environ["PDM_T_NEW"] == "ours"
        assert os.environ["PDM_T_DEFAULT_SET"] == "caller" and os.environ["PDM_T_DEFAULT_NEW"] == "d"
    assert os.environ["PDM_T_SET"] == "caller" and os.environ["PDM_T_DEFAULT_SET"] == "caller"
    assert "PDM_T_NEW" not in os.environ and "PDM_T_DEFAULT_NEW" not in os.environ


def test_restored_when_the_block_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PDM_T_NEW", raising=False)
    with pytest.raises(RuntimeError), scoped_environ({"PDM_T_NEW": "x"}):
        raise RuntimeError("boom")
    assert "PDM_T_NEW" not in os.environ
