from __future__ import annotations

import logging
import os

import pytest

from pdm_ray.environment import muted_log_messages, scoped_environ


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


def test_muted_log_messages_drops_only_the_fragment_inside_the_block(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("pdm_ray.test_muted")
    with caplog.at_level(logging.INFO, logger="pdm_ray.test_muted"):
        with muted_log_messages("pdm_ray.test_muted", "noise"):
            log.info("some noise here")
            log.info("a real message")
        log.info("noise after the block")
    assert [r.getMessage() for r in caplog.records] == ["a real message", "noise after the block"]
