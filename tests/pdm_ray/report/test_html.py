"""The HTML report: self-contained, and it renders in a real headless Chromium."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pdm_ray.report.html import RunReport, SensorReport, render_report, sensor_figure

ARTIFACTS = Path(__file__).resolve().parents[3] / "out" / "test-artifacts"


def sensor(sensor_id: str, seed: int, labelled: bool) -> SensorReport:
    rng = np.random.default_rng(seed)
    values = np.sin(np.arange(600) / 20).astype(np.float32)
    forecast = values[50:] + rng.normal(0, 0.05, 550).astype(np.float32)
    errors = np.abs(forecast - values[50:])
    return SensorReport(
        sensor_id=sensor_id,
        values=values,
        offset=50,
        forecast=forecast,
        smoothed_errors=errors,
        threshold=np.full(550, 0.12, np.float32),
        predicted=((300, 340),),
        labelled=((310, 330),) if labelled else (),
        kpis={"mae": 0.04, "rmse": 0.05, "mape": 12.0, "r2": 0.9},
        counts={"tp": 1, "fp": 0, "fn": 0} if labelled else None,
        model_name=f"pdm-{sensor_id}-lstm",
        model_version="3",
        run_url="http://127.0.0.1:5000/#/experiments/1/runs/abc",
        quality={"status": "good", "reasons": ""},
        drift={"severity": "low"},
        roc=(np.array([0.0, 0.1, 1.0]), np.array([0.0, 0.8, 1.0])) if labelled else None,
        roc_auc=0.95 if labelled else None,
    )


@pytest.fixture(scope="module")
def report_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    report = RunReport(
        title="pdm-ray test report",
        sensors=(sensor("A-5", 0, True), sensor("NEW-1", 1, False)),
        confusion={"tp": 21, "fp": 20, "fn": 0, "tn": 1000},
        totals={"precision": 1.0, "recall": 1.0, "f1": 1.0},
        retraining=({"sensor": "A-5", "trigger": "drift", "decision": "fire", "outcome": "promoted"},),
    )
    return render_report(report, tmp_path_factory.mktemp("report") / "report.html")


def test_report_is_self_contained(report_path: Path) -> None:
    text = report_path.read_text()
    assert re.search(r"<script[^>]*\ssrc=", text) is None  # plotly.js is inlined, nothing is fetched
    assert "id='sensor-A-5'" in text and "id='sensor-NEW-1'" in text
    assert "pdm-A-5-lstm" in text and 'href="http://127.0.0.1:5000/#/experiments/1/runs/abc"' in text
    assert "<h2>Retraining</h2>" in text


def test_a_sequence_still_open_at_the_end_is_its_own_band() -> None:
    shapes = sensor_figure(replace(sensor("A-5", 0, True), still_open=(560, 599))).layout.shapes
    # labelled (green), predicted (red) and still open (orange), each on both rows
    assert [(s.x0, s.x1, s.fillcolor) for s in shapes[::2]] == [
        (310, 330, "#2ca02c"),
        (300, 340, "#d62728"),
        (560, 599, "#ff7f0e"),
    ]
    assert len(shapes) == 6


def _browser_or_skip():
    from tests.chromium import Chromium, chromium_path

    if chromium_path() is None:
        if os.environ.get("CI"):
            pytest.fail("chromium must be installed in CI (.ci/run installs it)")
        pytest.skip("chromium is not installed")
    return Chromium()


def test_report_renders_in_headless_chromium(report_path: Path) -> None:
    with _browser_or_skip() as browser:
        browser.open(report_path.as_uri())
        browser.wait_for("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 4")
        assert browser.evaluate("[...document.querySelectorAll('section.sensor')].map(s => s.id)") == [
            "sensor-A-5",
            "sensor-NEW-1",
        ]
        # telemetry, forecast, smoothed error, threshold
        assert browser.evaluate("document.getElementById('fig-A-5').data.length") == 4
        assert browser.evaluate("document.getElementById('fig-NEW-1').data.length") == 4
        # one labelled sensor + the chance line
        assert browser.evaluate("document.getElementById('roc').data.length") == 2
        # one labelled and one predicted band, each drawn on both rows
        assert browser.evaluate("document.getElementById('fig-A-5').layout.shapes.length") == 4
        shot = browser.screenshot(ARTIFACTS / "report.png")
    assert shot.stat().st_size > 10_000
