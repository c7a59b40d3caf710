"""A real sweep on real Ray and MLflow (SQLite under tmp): 2 sample channels x 2 trials, 2 epochs.

The sweep is the example in ``run_sweep``'s docstring, executed with doctest once per
module; the tests then read what it left in MLflow and the registry.
"""

from __future__ import annotations

import doctest
import importlib.metadata
import os
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pdm_ray.config import DEFAULT_CONFIG, LSTMSettings, Settings, SweepSettings, TrainSettings
from pdm_ray.data import load_channel
from pdm_ray.data.windows import make_windows
from pdm_ray.errors import SweepError, TrackingError, UnknownSensorError
from pdm_ray.models import ModelSpec, train
from pdm_ray.tracking import promote, register_version
from pdm_ray.tracking.runs import PARENT_RUN_TAG, connect_settings
from tuning import sweep as sweep_module
from tuning.sweep import SweepResult, TrialRunsCallback, _settings_params, _tune_environment, run_sweep

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = DEFAULT_CONFIG.parent.parent


@dataclass(frozen=True)
class Swept:
    result: SweepResult
    client: MlflowClient
    home: Path


@pytest.fixture(scope="module")
def swept(ray_cluster: None, tmp_path_factory: pytest.TempPathFactory, tiny_data: Callable[..., Path]) -> Swept:
    home = tmp_path_factory.mktemp("home")
    data_dir = tiny_data(tmp_path_factory.mktemp("data") / "d")
    (test,) = doctest.DocTestFinder().find(run_sweep, "run_sweep", globs={"home": str(home), "data_dir": str(data_dir)})
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)  # the example names configs/sweeps/lstm.yaml relative to the repository
        outcome = runner.run(test, clear_globs=False)
    assert outcome.failed == 0, "the docstring example of run_sweep failed (see the doctest output above)"
    result = test.globs["result"]
    return Swept(result, MlflowClient(result.tracking_uri), home)


def _children(s: Swept) -> list:
    exp = s.client.get_experiment_by_name("pdm-ray")
    return s.client.search_runs([exp.experiment_id], f"tags.`{PARENT_RUN_TAG}` = '{s.result.parent_run_id}'")


def test_every_trial_is_a_child_run_with_params_tags_and_epoch_metrics(swept: Swept) -> None:
    runs = _children(swept)
    assert len(runs) == swept.result.n_trials == 4
    assert sorted(r.data.tags["pdm.channel"] for r in runs) == ["A-2", "A-2", "T-1", "T-1"]
    for run in runs:
        tags, params = run.data.tags, run.data.params
        assert tags["pdm.model"] == "lstm" and tags["pdm.sweep_id"] == swept.result.sweep_id
        assert tags["data.version_source"] == "content-hash" and len(tags["data.version"]) == 64
        assert {"learning_rate", "units", "layers", "channel"} <= set(params)
        assert run.info.status == "FINISHED"
        history = swept.client.get_metric_history(run.info.run_id, "val_loss")
        assert [m.step for m in history] == [1, 2]  # one point per epoch (training_iteration)
        ratio = swept.client.get_metric_history(run.info.run_id, "val_ratio")
        naive = swept.client.get_metric_history(run.info.run_id, "naive_val_loss")
        for r, v, n in zip(ratio, history, naive, strict=True):
            assert r.value == pytest.approx(v.value / n.value, rel=1e-6)
    parent = swept.client.get_run(swept.result.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.metrics["channels_registered"] == 2


def test_best_trial_per_channel_is_registered_as_staging(swept: Swept) -> None:
    runs = _children(swept)
    for best in swept.result.channels:
        mine = [r for r in runs if r.data.tags["pdm.channel"] == best.channel]
        lowest = min(mine, key=lambda r: r.data.metrics["best_val_ratio"])
        assert best.run_id == lowest.info.run_id
        assert best.val_ratio == pytest.approx(lowest.data.metrics["best_val_ratio"])
        name = f"pdm-{best.channel}-lstm"
        version = swept.client.get_model_version_by_alias(name, "staging")
        assert str(version.version) == best.version and version.run_id == best.run_id
        assert version.tags["pdm.sweep_id"] == swept.result.sweep_id
        assert float(version.tags["pdm.val_loss"]) == pytest.approx(best.val_loss, rel=1e-5)
        assert set(best.config) == {"learning_rate", "units", "layers"}


def test_tune_writes_checkpoints_and_json_results_but_no_csv_or_tensorboard(swept: Swept) -> None:
    # MLflow holds every result; Tune's CSV and TensorBoard files per trial would repeat it.
    tune_dir = Path(swept.result.tune_path)
    assert list(tune_dir.rglob("checkpoint_*")), "trials should still checkpoint"
    assert len(list(tune_dir.rglob("result.json"))) == swept.result.n_trials  # Tune's result loading reads it
    for pattern in ("progress.csv", "events.out.tfevents*"):
        assert not list(tune_dir.rglob(pattern)), pattern
    for key in ("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S"):
        assert key not in os.environ, key  # set for the fit only


def test_tune_environment_keeps_a_callers_warning_threshold_and_restores_everything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "7")
    monkeypatch.setenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "0")
    with _tune_environment():
        assert os.environ["TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S"] == "7"
        assert os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] == "1"
    assert os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] == "0"
    monkeypatch.delenv("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S")
    with _tune_environment():
        assert os.environ["TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S"] == "0"
    assert "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S" not in os.environ


def test_tune_environment_removes_the_signal_handlers_tune_leaves_behind() -> None:
    """Tune's handler would otherwise swallow a Ctrl-C while the best trials are registered."""
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGUSR1)
    with _tune_environment():
        signal.signal(signal.SIGINT, lambda *_: None)  # as Tuner.fit does
        signal.signal(signal.SIGUSR1, lambda *_: None)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGUSR1)) == before


def test_parent_trials_and_versions_record_the_fixed_settings_and_the_code_version(swept: Swept) -> None:
    parent = swept.client.get_run(swept.result.parent_run_id)
    params = parent.data.params
    assert (params["windows.l_s"], params["windows.n_predictions"], params["train.epochs"]) == ("30", "2", "2")
    assert params["train.refit"] == "False"  # trials never refit
    assert {"train.patience", "train.seed", "train.validation_split", "normalize.method", "impute.method"} <= set(
        params
    )
    assert "train.learning_rate" not in params  # sampled: each trial's own param
    # The model's own section, except what the sweep samples (layers x units become lstm.layers).
    assert (params["lstm.members"], params["lstm.dropout"]) == ("1", "0.3")
    assert "lstm.layers" not in params
    code = parent.data.tags["pdm.code_version"]
    assert code.startswith(importlib.metadata.version("pdm-ray"))
    assert {r.data.tags["pdm.code_version"] for r in _children(swept)} == {code}
    for best in swept.result.channels:
        assert swept.client.get_model_version(f"pdm-{best.channel}-lstm", best.version).tags["pdm.code_version"] == code


def test_trials_share_compiled_programs_under_home(swept: Swept) -> None:
    # Trial actors write XLA programs to home/jax_cache, so later actors load rather than compile.
    entries = {p.name.split("-")[0] for p in (swept.home / "jax_cache").glob("*-cache")}
    assert {"jit__train_step", "jit__forecast_step"} <= entries


def test_unreachable_tracking_uri_fails_before_any_trial(tmp_path: Path, tiny_data: Callable[..., Path]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    settings = Settings(home=tmp_path, windows={"l_s": 30, "n_predictions": 2}, tracking={"uri": uri})
    data_dir = tiny_data(tmp_path / "data", ("T-1",))
    with pytest.raises(TrackingError, match=uri):
        run_sweep(["T-1"], settings=settings, data_dir=data_dir, num_samples=1)
    assert not (tmp_path / "tune").exists()


def test_unknown_channel_fails_before_tracking(tmp_path: Path, tiny_data: Callable[..., Path]) -> None:
    settings = Settings(home=tmp_path, windows={"l_s": 30, "n_predictions": 2})
    with pytest.raises(UnknownSensorError, match=r"no train data for channel\(s\) \['Z-9'\]"):
        run_sweep(["T-1", "Z-9"], settings=settings, data_dir=tiny_data(tmp_path / "d", ("T-1",)))
    assert not (tmp_path / "mlflow.db").exists()


def test_asha_max_t_follows_the_swept_epochs() -> None:
    settings = Settings(sweep={"search_space": {"epochs": {"choice": [2, 5]}}, "grace_period": 9})
    scheduler = sweep_module._scheduler(settings.sweep, settings)
    assert scheduler._max_t == 5 and scheduler._brackets[0]._rungs[-1][0] == 5  # grace period clipped to max_t


def test_a_sweep_whose_every_trial_fails_raises_and_marks_the_parent_failed(
    swept: Swept, tmp_path: Path, tiny_data: Callable[..., Path]
) -> None:
    settings = Settings(home=swept.home, windows={"l_s": 30, "n_predictions": 2}, train={"epochs": 1})
    space = {"d_model": {"value": 30}, "num_heads": {"value": 4}}  # 4 heads do not divide 30
    with pytest.raises(SweepError, match=r"T-1: .*must be divisible by num_heads"):
        run_sweep(
            ["T-1"],
            "transformer",
            settings=settings,
            data_dir=tiny_data(tmp_path, ("T-1",)),
            search_space=space,
            num_samples=2,  # both trials at once: a failed trial's actor is not reused
        )
    exp = swept.client.get_experiment_by_name("pdm-ray")
    (parent,) = swept.client.search_runs(
        [exp.experiment_id], "tags.`pdm.model` = 'transformer' and tags.`mlflow.runName` LIKE 'sweep-%'"
    )
    assert parent.info.status == "FAILED"


_SMALL_SPACE = {"units": {"value": 8}, "layers": {"value": 1}}


def test_ctrl_c_during_a_sweep_registers_nothing_and_ends_its_runs_killed(
    ray_cluster: None, tmp_path: Path, tiny_data: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tune catches Ctrl-C, stops the trial and returns as if it had finished: the sweep must not register it."""
    log_result = TrialRunsCallback.log_trial_result

    def ctrl_c_after_the_first_epoch(self: TrialRunsCallback, iteration: int, trial: object, result: dict) -> None:
        log_result(self, iteration, trial, result)
        if result["training_iteration"] == 1:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(TrialRunsCallback, "log_trial_result", ctrl_c_after_the_first_epoch)
    settings = Settings(
        home=tmp_path / "home",
        windows={"l_s": 30, "n_predictions": 2},
        train={"epochs": 500, "patience": 500, "min_delta": 0.0},  # runs until stopped
    )
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt, match=r"1 trial\(s\) unfinished"):
        run_sweep(
            ["T-1"],
            settings=settings,
            data_dir=tiny_data(tmp_path / "data", ("T-1",)),
            num_samples=1,
            scheduler="fifo",
            search_space=_SMALL_SPACE,
            promote_best=True,
        )
    assert signal.getsignal(signal.SIGINT) is handler
    tracking = connect_settings(settings)
    runs = tracking.client.search_runs([tracking.experiment_id])
    statuses = sorted((PARENT_RUN_TAG in r.data.tags, r.info.status) for r in runs)
    assert statuses == [(False, "KILLED"), (True, "KILLED")]  # the parent and the trial's run
    assert tracking.client.search_registered_models() == []


def test_a_failed_gate_is_the_channels_failure_and_its_version_stays_staging(
    ray_cluster: None, tmp_path: Path, tiny_data: Callable[..., Path]
) -> None:
    """Production reads 20 steps, the swept candidate 30: the gate refuses to compare them (RegistryError)."""
    data = tiny_data(tmp_path / "data", ("T-1",))
    settings = Settings(home=tmp_path / "home", windows={"l_s": 30, "n_predictions": 2}, train={"epochs": 1})
    tracking = connect_settings(settings)
    channel = load_channel(data, "T-1")
    spec = ModelSpec("lstm", channel.n_features, 20, 2, lstm=LSTMSettings(layers=[8], dropout=0.0))
    production = train(spec, TrainSettings(epochs=1), *make_windows(channel.train, 20, 2))
    register_version(tracking, tracking.client.create_run(tracking.experiment_id).info.run_id, production, "T-1")
    assert promote(tracking, channel, "lstm", settings).promoted

    result = run_sweep(
        ["T-1"], settings=settings, data_dir=data, num_samples=1, search_space=_SMALL_SPACE, promote_best=True
    )
    (best,) = result.channels
    assert (best.version, best.decision) == ("2", None)
    assert result.failed["T-1"].startswith("RegistryError: pdm-T-1-lstm: production 1 reads different windows")
    assert tracking.client.get_run(result.parent_run_id).info.status == "FINISHED"
    aliases = tracking.client.get_registered_model("pdm-T-1-lstm").aliases
    assert {k: str(v) for k, v in aliases.items()} == {"production": "1", "staging": "2"}


@pytest.mark.parametrize(
    ("space", "fixed"),
    [
        ({}, {"lstm.layers": [80, 80]}),
        ({"units": {"choice": [8]}}, {"lstm.layer_count": 2}),  # the depth is the settings'
        ({"layers": {"choice": [1]}}, {"lstm.units": 80}),  # the width is the settings'
        ({"units": {"choice": [8]}, "layers": {"value": 1}}, {}),
    ],
)
def test_settings_params_log_the_half_of_lstm_layers_a_sweep_does_not_sample(space: dict, fixed: dict) -> None:
    params = _settings_params(Settings(), SweepSettings(model="lstm", search_space=space))
    layer_keys = {"lstm.layers", "lstm.layer_count", "lstm.units"}
    assert {k: v for k, v in params.items() if k in layer_keys} == fixed
    assert params["lstm.dropout"] == 0.3 and params["windows.l_s"] == 250
