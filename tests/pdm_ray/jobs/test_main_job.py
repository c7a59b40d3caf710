"""The main job's own logic on real parts: the stream's open sequence, point-level scores, this
run's retraining history, the version that scores a sensor, and what it leaves of Serve."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pdm_ray.config import Settings, load_settings
from pdm_ray.data.channels import Channel
from pdm_ray.errors import ConfigError, JobStepError
from pdm_ray.jobs.main import (
    JobOptions,
    SensorOutcome,
    _adopt_stream,
    _models,
    _point_confusion,
    _run_retraining,
    _score,
    run_main_job,
)
from pdm_ray.retraining import Decision, DecisionKind, RetrainingHistory, Trigger, history_path
from pdm_ray.streaming.batch import Batch
from pdm_ray.streaming.sensor import SensorStream, StreamSettings

ROOT = Path(__file__).resolve().parents[3]


def _channel(cid: str, test: np.ndarray, anomalies: tuple[tuple[int, int], ...], labelled: bool = True) -> Channel:
    return Channel(cid, "SMAP" if labelled else "", test[:100], test, anomalies if labelled else ())


def test_an_anomaly_running_to_the_end_of_the_replay_is_scored_as_open() -> None:
    """The detector never closes a sequence at the end of the input; the job counts it, marked open."""
    n, label = 4000, (3880, 3999)
    rng = np.random.default_rng(0)
    values = (np.sin(np.arange(n) / 20) + 0.05 * rng.standard_normal(n)).astype(np.float32)
    values[label[0] :] += 3.0
    stream = SensorStream("X-1", StreamSettings.from_settings(Settings()))
    acked = []
    for seq, start in enumerate(range(0, n, 500)):
        chunk = values[start : start + 500, None]
        request = stream.apply(stream.admit(Batch(seq, np.arange(start, start + 500, dtype=np.float64), chunk)))
        if request is not None:  # persistence forecasts
            acked += stream.apply_predictions(request, stream.check_predictions(request, request.window[:-1, 0]))
    assert acked == []  # nothing in the acks: the sequence is still open
    o = SensorOutcome(_channel("X-1", values[:, None], (label,)), status={"scored": n - 250})
    _adopt_stream(o, stream.series(n))
    printed: list[str] = []
    totals = _score(Settings(), {"X-1": o}, printed.append)
    assert o.open_event is not None and o.open_event[0] <= label[0] <= o.open_event[1]
    assert (totals["tp"], totals["fn"]) == (1, 0)
    assert any(f"sequence {o.open_event[0]}-{o.open_event[1]} was still open" in line for line in printed)
    assert o.judged < n and any(f"readings {o.judged}-{n - 1} were not judged" in line for line in printed)


def test_point_confusion_leaves_out_unlabelled_channels() -> None:
    test = np.zeros((200, 1), np.float32)
    labelled = SensorOutcome(_channel("L-1", test, ((100, 119),)), events=[(110, 129, 1.0)])
    unlabelled = SensorOutcome(_channel("U-1", test, (), labelled=False), events=[(50, 59, 1.0)])
    # From l_s = 10: 190 points of L-1; tp 110-119, fp 120-129, fn 100-109.
    confusion = _point_confusion({"L-1": labelled, "U-1": unlabelled}, 10)
    assert confusion == {"tp": 10, "fp": 10, "fn": 10, "tn": 160}


def test_only_this_runs_retraining_of_its_sensors_is_reported(tmp_path: Path) -> None:
    started = 1_764_000_000.0
    with RetrainingHistory(history_path(tmp_path)) as history:
        for when, sensor in ((started - 60, "A-5"), (started + 5, "B-1"), (started + 10, "A-5"), (started + 20, "A-6")):
            history.record(Decision(when, sensor, Trigger.DRIFT, DecisionKind.FIRE, {"severity": "high"}))
        rows = _run_retraining(history, ["A-5", "A-6"], started)
    assert [r["sensor"] for r in rows] == ["A-6", "A-5"]  # newest first, no B-1, nothing from before
    assert rows[1]["time"].startswith("2025-11-2")  # with its date


@pytest.mark.slow
def test_the_report_names_the_version_that_scores_the_replay(tmp_path: Path, mlflow_uri: str) -> None:
    """Production lstm and transformer: ``serve.model_kinds`` (lstm first) decides, not ``train.model``."""
    from pdm_ray.tracking.runs import connect_settings
    from tests.serve_apps.support import register, serve_settings, train_tiny

    base = serve_settings(tmp_path).model_dump(mode="json")
    base["tracking"] = {**base["tracking"], "uri": mlflow_uri}
    base["train"]["model"] = "transformer"
    base["transformer"] = {
        **base["transformer"],
        "d_model": 8,
        "num_heads": 1,
        "num_layers": 1,
        "ff_dim": 16,
        "members": 1,
    }
    settings = Settings.model_validate(base)
    tracking = connect_settings(settings)
    register(tracking, "A-5", train_tiny(settings, 1), production=False)
    tracking.client.set_registered_model_alias("pdm-A-5-transformer", "production", "1")
    lstm = train_tiny(settings.model_copy(update={"train": settings.train.model_copy(update={"model": "lstm"})}), 1)
    register(tracking, "A-5", lstm, production=True)
    channel = _channel("A-5", np.zeros((200, 1), np.float32), ())
    outcomes = {"A-5": SensorOutcome(channel)}
    printed: list[str] = []
    _models([channel], settings, JobOptions(), outcomes, printed.append)
    assert (outcomes["A-5"].model_name, outcomes["A-5"].model_version) == ("pdm-A-5-lstm", "1")
    assert any("A-5 is scored by pdm-A-5-lstm v1, not transformer" in line for line in printed)

    transformer_first = settings.model_copy(
        update={"serve": settings.serve.model_copy(update={"model_kinds": ["transformer", "lstm"]})}
    )
    _models([channel], transformer_first, JobOptions(), outcomes, printed.append)
    assert outcomes["A-5"].model_name == "pdm-A-5-transformer"


@pytest.mark.ray
@pytest.mark.slow
def test_a_failed_job_leaves_serve_apps_it_did_not_deploy(serve_port: int, tmp_path: Path) -> None:
    from ray import serve

    @serve.deployment
    class Other:
        def __call__(self, request: object) -> str:
            return "other"

    serve.run(Other.bind(), name="not-the-jobs", route_prefix="/not-the-jobs")
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    base = load_settings(env={}).model_dump(mode="json")
    base.update(home=str(tmp_path / "home"), ray={**base["ray"], "namespace": "pdm-test"})
    base["data"] = {**base["data"], "dir": str(ROOT / "data" / "sample"), "channels": ["A-5"]}
    base["tracking"] = {**base["tracking"], "uri": f"sqlite:///{blocker}/mlflow.db"}  # step 3 fails at once
    try:
        with pytest.raises(JobStepError, match=r"step 3 \(tune"):
            run_main_job(Settings.model_validate(base), JobOptions(), out=lambda line: None)
        assert "not-the-jobs" in serve.status().applications
    finally:
        serve.delete("not-the-jobs")


def test_a_model_kind_the_api_never_serves_is_refused_before_any_step(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {"home": str(tmp_path), "train": {"model": "transformer"}, "serve": {"model_kinds": ["lstm"]}}
    )
    lines: list[str] = []
    with pytest.raises(ConfigError, match=r"train.model 'transformer' is not in serve.model_kinds \['lstm'\]"):
        run_main_job(settings, JobOptions(), lines.append)
    assert lines == []  # no step started: nothing trained, no Ray
