from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pdm_ray.config import Settings
from pdm_ray.data.channels import Channel
from pdm_ray.data.normalize import Normalizer
from pdm_ray.data.pipeline import impute_channel
from pdm_ray.data.windows import make_windows
from pdm_ray.detection import detect
from pdm_ray.errors import ConfigError, InvalidChannelError, RegistryError, UnknownSensorError
from pdm_ray.models import TrainedModel
from pdm_ray.models.training import persistence_mse
from pdm_ray.tracking.pyfunc import forecast
from pdm_ray.tracking.registry import (
    HISTORY_TAG,
    decide,
    event_f1,
    list_versions,
    model_name,
    promote,
    register_version,
    rollback,
    validation_mse,
    validation_windows,
)
from pdm_ray.tracking.runs import Tracking, connect

from .conftest import L_S, N_PRED

NAME = "pdm-S-1-lstm"


def test_model_name_validates_channel_and_kind() -> None:
    assert model_name("A-2", "lstm") == "pdm-A-2-lstm"
    assert model_name("T-1", "transformer") == "pdm-T-1-transformer"
    with pytest.raises(InvalidChannelError):
        model_name("../etc", "lstm")
    with pytest.raises(ConfigError, match="model kind"):
        model_name("A-2", "arima")


@pytest.mark.parametrize(
    ("cand", "prod", "margin", "promoted", "fragment"),
    [
        (0.5, None, 0.0, True, "no production version"),
        (0.8, 1.0, 0.1, True, "0.8 < (1 - 0.1) x production 1 = 0.9"),
        (0.9, 1.0, 0.1, False, "is not below"),  # equal to the limit is not better
        (1.0, 1.0, 0.0, False, "is not below"),
        (1.2, 1.0, 0.0, False, "is not below"),
        (float("nan"), None, 0.0, False, "not finite"),
    ],
)
def test_decide_hand_cases(cand: float, prod: float | None, margin: float, promoted: bool, fragment: str) -> None:
    ok, reason = decide(cand, prod, margin)
    assert ok is promoted
    assert fragment in reason


def test_decide_needs_f1_not_worse_when_both_are_known() -> None:
    assert decide(0.5, 1.0, 0.0, candidate_f1=0.4, production_f1=0.6) == (
        False,
        "validation MSE improved but event F1 0.400 < production 0.600",
    )
    ok, reason = decide(0.5, 1.0, 0.0, candidate_f1=0.6, production_f1=0.6)
    assert ok and "event F1 0.600 >= 0.600" in reason


@given(
    cand=st.floats(0, 10, allow_nan=False),
    prod=st.floats(1e-6, 10),
    m1=st.floats(0, 0.99),
    m2=st.floats(0, 0.99),
)
def test_decide_a_larger_margin_never_promotes_more(cand: float, prod: float, m1: float, m2: float) -> None:
    low, high = sorted((m1, m2))
    if decide(cand, prod, high)[0]:
        assert decide(cand, prod, low)[0]
    assert decide(cand, prod, low)[0] == (cand < (1 - low) * prod)


def test_validation_windows_are_the_split_training_held_out(good_model: TrainedModel, channel: Channel) -> None:
    norm = Normalizer.from_dict(good_model.normalizer)
    x_all, _ = make_windows(channel.train, L_S, N_PRED)
    x_val, y_val = validation_windows(norm.transform(channel.train), L_S, N_PRED, 0.2)
    assert len(x_val) == round(len(x_all) * 0.2)
    # Training computed its persistence baseline on exactly these windows.
    assert persistence_mse(x_val, y_val) == pytest.approx(good_model.naive_val_loss, rel=1e-6)
    # The gate's MSE is in original units: training's val_loss times the scale squared.
    raw_x, raw_y = validation_windows(channel.train, L_S, N_PRED, 0.2)
    assert validation_mse(good_model, raw_x, raw_y) == pytest.approx(good_model.val_loss * norm.scale[0] ** 2, rel=1e-3)


def _register(tracking: Tracking, model: TrainedModel, label: str) -> str:
    run = tracking.client.create_run(tracking.experiment_id, run_name=label)
    return register_version(tracking, run.info.run_id, model, "S-1", {"pdm.label": label}).version


def _aliases(tracking: Tracking) -> dict[str, str]:
    return {alias: str(v) for alias, v in tracking.client.get_registered_model(NAME).aliases.items()}


def test_lifecycle_promote_reject_rollback(
    mlflow_uri: str, channel: Channel, good_model: TrainedModel, bad_model: TrainedModel
) -> None:
    tracking = connect(mlflow_uri, "pdm-ray")
    settings = Settings(tracking={"promotion_margin": 0.05})

    v1 = _register(tracking, bad_model, "bad")
    assert _aliases(tracking) == {"staging": v1}
    first = promote(tracking, channel, "lstm", settings)
    assert first.promoted and first.production is None and "no production version" in first.reason
    assert _aliases(tracking) == {"production": v1}

    v2 = _register(tracking, good_model, "good")
    better = promote(tracking, channel, "lstm", settings)
    assert better.promoted and better.candidate == v2 and better.production == v1
    assert better.candidate_mse < 0.95 * better.production_mse
    assert _aliases(tracking) == {"production": v2, "archived": v1}
    tags = tracking.client.get_model_version(NAME, v2).tags
    assert tags["pdm.gate.decision"] == "promoted"
    assert float(tags["pdm.gate.candidate_val_mse"]) == pytest.approx(better.candidate_mse)
    assert float(tags["pdm.gate.production_val_mse"]) == pytest.approx(better.production_mse)
    assert tags["pdm.gate.production_version"] == v1 and tags["pdm.previous_production"] == v1
    assert tracking.client.get_model_version(NAME, v1).tags["pdm.status"] == "archived"

    v3 = _register(tracking, bad_model, "bad again")
    worse = promote(tracking, channel, "lstm", settings)
    assert not worse.promoted and worse.production == v2
    assert _aliases(tracking) == {"production": v2, "archived": v1, "staging": v3}
    tags = tracking.client.get_model_version(NAME, v3).tags
    assert tags["pdm.gate.decision"] == "rejected" and tags["pdm.status"] == "staging"
    assert "is not below (1 - 0.05) x production" in tags["pdm.gate.reason"]
    assert float(tags["pdm.gate.candidate_val_mse"]) > float(tags["pdm.gate.production_val_mse"])

    done = rollback(tracking, "S-1", "lstm", "alarm storm after deploy")
    assert (done.from_version, done.to_version) == (v2, v1)
    assert _aliases(tracking) == {"production": v1, "archived": v2, "staging": v3}
    tags = tracking.client.get_model_version(NAME, v2).tags
    assert tags["pdm.status"] == "rolled_back" and tags["pdm.rollback.reason"] == "alarm storm after deploy"
    assert json.loads(tracking.client.get_registered_model(NAME).tags[HISTORY_TAG]) == [v1]
    with pytest.raises(RegistryError, match="no earlier production version"):
        rollback(tracking, "S-1", "lstm", "again")

    listed = list_versions(tracking, "S-1", "lstm")
    assert [v.version for v in listed] == [v3, v2, v1]
    assert [v.status for v in listed] == ["staging", "rolled_back", "production"]
    assert [v.aliases for v in listed] == [("staging",), ("archived",), ("production",)]


def test_promote_and_rollback_errors(mlflow_uri: str, channel: Channel, good_model: TrainedModel) -> None:
    tracking = connect(mlflow_uri, "pdm-ray")
    settings = Settings()
    with pytest.raises(UnknownSensorError, match=NAME):
        promote(tracking, channel, "lstm", settings)
    with pytest.raises(UnknownSensorError, match=NAME):
        rollback(tracking, "S-1", "lstm", "why")
    v1 = _register(tracking, good_model, "only")
    promote(tracking, channel, "lstm", settings)
    with pytest.raises(RegistryError, match="no staging version"):
        promote(tracking, channel, "lstm", settings)
    with pytest.raises(RegistryError, match="already is production"):
        promote(tracking, channel, "lstm", settings, version=v1)
    with pytest.raises(RegistryError, match="needs a reason"):
        rollback(tracking, "S-1", "lstm", "  ")
    other = replace(good_model, spec=replace(good_model.spec, l_s=L_S // 2))  # the LSTM reads any length
    _register(tracking, other, "other windows")
    with pytest.raises(RegistryError, match="different windows"):
        promote(tracking, channel, "lstm", settings)


def test_gate_refuses_a_model_refit_on_its_held_out_windows(
    mlflow_uri: str, channel: Channel, good_model: TrainedModel
) -> None:
    """A refit model trained on the validation windows, so the gate's MSE there would be in-sample."""
    tracking = connect(mlflow_uri, "pdm-ray")
    refit = replace(good_model, train_settings=good_model.train_settings.model_copy(update={"refit": True}))
    v1 = _register(tracking, refit, "refit")
    with pytest.raises(RegistryError, match=f"version {v1} trained on the held-out windows"):
        promote(tracking, channel, "lstm", Settings())
    assert _aliases(tracking) == {"staging": v1}
    forced = promote(tracking, channel, "lstm", Settings(), force=True)
    assert forced.promoted and forced.reason.startswith("forced: version")
    _register(tracking, good_model, "validated")
    with pytest.raises(RegistryError, match=f"production {v1} trained on the held-out windows"):
        promote(tracking, channel, "lstm", Settings())


def test_production_alias_loads_in_a_fresh_process(mlflow_uri: str, channel: Channel, good_model: TrainedModel) -> None:
    tracking = connect(mlflow_uri, "pdm-ray")
    _register(tracking, good_model, "serve me")
    promote(tracking, channel, "lstm", Settings())
    script = textwrap.dedent(
        f"""
        import json, sys
        import mlflow.pyfunc, numpy as np
        model = mlflow.pyfunc.load_model("models:/{NAME}@production")
        series = np.asarray(json.load(sys.stdin), dtype=np.float32)
        json.dump(model.predict(series).tolist(), sys.stdout)
        """
    )
    series = channel.test[:60]
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri, "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(series.tolist()),
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=300,
    )
    np.testing.assert_allclose(np.asarray(json.loads(out.stdout)), forecast(good_model, series), rtol=1e-5)


# Detector settings for the 200-point test series (180 forecast errors): fewer than one
# window of 70 x 30 points, so one window judges them all; the EWMA span is int(2100 x 0.001)
# = 2, so a burst stays sharp; and no warm-up (the default 250 would flatten all 180 smoothed
# errors into one constant, which flags nothing).
F1_SETTINGS = {"threshold": {"smoothing_perc": 0.001, "warmup": 0, "error_buffer": 2}}
BURST = (120, 129)  # inclusive test indices of the labelled burst
QUIET = (30, 39)  # inclusive test indices where nothing happens


def _with_burst(series: np.ndarray) -> np.ndarray:
    out = series.copy()
    out[BURST[0] : BURST[1] + 1, 0] += 25.0  # far outside anything seen in train (amplitude 3)
    return out


def _labelled(channel: Channel, test: np.ndarray, *labels: tuple[int, int]) -> Channel:
    return Channel("S-1", "SYN", channel.train, test, anomalies=labels, classes=("point",) * len(labels))


def test_the_detector_catches_the_burst_and_nothing_else(channel: Channel, good_model: TrainedModel) -> None:
    """The precondition of the F1 tests below: one detected sequence, on the burst."""
    settings = Settings(**F1_SETTINGS)
    for test, expected in ((channel.test, 0), (_with_burst(channel.test), 1)):
        values = test[L_S:, 0]
        result = detect(forecast(good_model, test) - values, values, settings.threshold)
        found = [(s.start + L_S, s.end + L_S) for s in result.sequences]
        assert len(found) == expected, found
        for start, end in found:
            assert start <= BURST[1] and end >= BURST[0] and start > QUIET[1], found


def test_gate_scores_event_f1_when_the_channel_has_labels(
    mlflow_uri: str, channel: Channel, good_model: TrainedModel
) -> None:
    settings = Settings(**F1_SETTINGS)
    test = _with_burst(channel.test)
    tracking = connect(mlflow_uri, "pdm-ray")
    _register(tracking, good_model, "labelled")
    decision = promote(tracking, _labelled(channel, test, BURST), "lstm", settings)
    # The one detection overlaps the one label: tp 1, fp 0, fn 0.
    assert decision.candidate_f1 == 1.0 and decision.production_f1 is None
    tags = tracking.client.get_model_version(NAME, decision.candidate).tags
    assert float(tags["pdm.gate.candidate_event_f1"]) == 1.0

    # A second label where nothing happened: tp 1, fp 0, fn 1, so precision 1, recall 1/2, F1 2/3.
    _register(tracking, good_model, "one label missed")
    decision = promote(tracking, _labelled(channel, test, QUIET, BURST), "lstm", settings)
    assert decision.candidate_f1 == pytest.approx(2 / 3) and decision.production_f1 == pytest.approx(2 / 3)
    tags = tracking.client.get_model_version(NAME, decision.candidate).tags
    assert float(tags["pdm.gate.candidate_event_f1"]) == pytest.approx(2 / 3)

    # Only the quiet stretch labelled: the burst is a false alarm and the label is missed.
    assert event_f1(good_model, _labelled(channel, test, QUIET), settings) == 0.0
    assert event_f1(good_model, channel, settings) is None  # no labels, no F1


def test_gate_scores_a_channel_with_gaps_as_training_imputed_it(
    mlflow_uri: str, channel: Channel, good_model: TrainedModel
) -> None:
    """A few NaNs in train (inside the held-out windows) and test: training imputes them, so must the gate."""
    train, test = channel.train.copy(), channel.test.copy()
    train[-15:-12, 0] = np.nan
    test = _with_burst(test)
    test[60:62, 0] = np.nan
    gappy = Channel("S-1", "SYN", train, test, anomalies=(BURST,), classes=("point",))
    tracking = connect(mlflow_uri, "pdm-ray")
    _register(tracking, good_model, "gappy")
    decision = promote(tracking, gappy, "lstm", Settings(**F1_SETTINGS))
    assert decision.promoted
    filled = impute_channel(gappy, Settings())
    assert np.isfinite(filled.train).all() and np.isfinite(filled.test).all()
    x_val, y_val = validation_windows(filled.train, L_S, N_PRED, 0.2)
    assert decision.candidate_mse == pytest.approx(validation_mse(good_model, x_val, y_val))
    # The filled gap raises no alarm and the burst is caught: tp 1, fp 0, fn 0.
    assert decision.candidate_f1 == 1.0


def test_gate_scores_only_windows_both_models_held_out(
    mlflow_uri: str, channel: Channel, good_model: TrainedModel
) -> None:
    """Production held out the last 10% of windows, the candidate 20%: the gate scores the last 10%."""
    tracking = connect(mlflow_uri, "pdm-ray")
    settings = Settings(tracking={"promotion_margin": 0.0})
    narrow = replace(good_model, train_settings=good_model.train_settings.model_copy(update={"validation_split": 0.1}))
    x_10, y_10 = validation_windows(channel.train, L_S, N_PRED, 0.1)
    x_20, y_20 = validation_windows(channel.train, L_S, N_PRED, 0.2)
    assert validation_mse(good_model, x_10, y_10) != pytest.approx(validation_mse(good_model, x_20, y_20))

    _register(tracking, narrow, "production, split 0.1")
    promote(tracking, channel, "lstm", settings)
    _register(tracking, good_model, "candidate, split 0.2")
    decision = promote(tracking, channel, "lstm", settings, force=True)
    assert decision.candidate_mse == pytest.approx(validation_mse(good_model, x_10, y_10))
    assert decision.production_mse == pytest.approx(validation_mse(narrow, x_10, y_10))

    _register(tracking, narrow, "candidate, split 0.1")  # now the smaller split is the candidate's
    decision = promote(tracking, channel, "lstm", settings)
    assert decision.candidate_mse == pytest.approx(validation_mse(narrow, x_10, y_10))
    assert decision.production_mse == pytest.approx(validation_mse(good_model, x_10, y_10))


def test_registering_and_promoting_print_no_download_bars(
    mlflow_uri: str, channel: Channel, good_model: TrainedModel, capfd: pytest.CaptureFixture[str]
) -> None:
    """MLflow draws a progress bar per artifact download, four per channel in a sweep from Python.

    The files are a few kB, so the bars are noise; a caller who wants them sets
    ``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=true``.
    """
    tracking = connect(mlflow_uri, "pdm-ray")
    _register(tracking, good_model, "first")
    promote(tracking, channel, "lstm", Settings())
    _register(tracking, good_model, "second")
    promote(tracking, channel, "lstm", Settings())
    assert "Downloading artifacts" not in capfd.readouterr().err
    assert "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR" not in os.environ


def test_gate_notes_when_the_models_trained_on_different_data_versions(
    mlflow_uri: str, channel: Channel, good_model: TrainedModel
) -> None:
    """The scored windows are held out by both only if both trained on this series: noted, not refused.

    A retrain on new data always has a new data version, so refusing would stop every automatic retrain.
    """
    tracking = connect(mlflow_uri, "pdm-ray")
    settings = Settings(tracking={"promotion_margin": 0.0})

    def register(data_version: str) -> str:
        run = tracking.client.create_run(tracking.experiment_id)
        return register_version(tracking, run.info.run_id, good_model, "S-1", {"data.version": data_version}).version

    register("a" * 64)
    promote(tracking, channel, "lstm", settings)
    register("b" * 64)
    decision = promote(tracking, channel, "lstm", settings)
    assert decision.reason.endswith(
        "; production 1 trained on data version aaaaaaaaaaaa, the candidate on bbbbbbbbbbbb:"
        " the scored windows may lie in production's training part"
    )
    assert tracking.client.get_model_version(NAME, decision.candidate).tags["pdm.gate.reason"] == decision.reason
    register("a" * 64)
    assert "data version" not in promote(tracking, channel, "lstm", settings).reason


def test_status_never_claims_staging_for_a_version_without_the_alias(
    mlflow_uri: str, channel: Channel, good_model: TrainedModel, bad_model: TrainedModel
) -> None:
    tracking = connect(mlflow_uri, "pdm-ray")
    settings = Settings(tracking={"promotion_margin": 0.05})

    def listed() -> list[tuple[str, tuple[str, ...], str]]:
        return [(v.version, v.aliases, v.status) for v in list_versions(tracking, "S-1", "lstm")]

    v1 = _register(tracking, bad_model, "first")
    promote(tracking, channel, "lstm", settings)
    v2 = _register(tracking, good_model, "better")
    v3 = _register(tracking, bad_model, "worse, registered after")  # takes staging from v2
    assert listed() == [(v3, ("staging",), "staging"), (v2, (), "superseded"), (v1, ("production",), "production")]
    assert promote(tracking, channel, "lstm", settings, version=v2).promoted
    assert not promote(tracking, channel, "lstm", settings, version=v1).promoted  # archived v1 tried again
    assert listed() == [
        (v3, ("staging",), "staging"),
        (v2, ("production",), "production"),
        (v1, ("archived",), "archived"),
    ]
    assert tracking.client.get_model_version(NAME, v1).tags["pdm.gate.decision"] == "rejected"
