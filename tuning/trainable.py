"""The Tune trainable: one channel, one sampled config, one forecaster trained with per-epoch reports.

It is a thin shell around the core: ``prepare_channel`` (quality gate, impute, normalize
on train, windows from TRAIN only) and ``pdm_ray.models.train``, whose ``on_epoch``
hook reports to Tune. Validation is the last ``validation_split`` of the training
windows, never test data.

Reported every epoch (``training_iteration`` = epochs done):
``val_ratio`` (validation MSE / persistence MSE on the same windows, comparable across
channels, hence the scheduler metric), ``val_loss``, ``naive_val_loss``, ``train_loss``,
``epoch``, and ``best_val_loss`` / ``best_val_ratio`` of the best epoch so far. A
checkpoint (a ``save_model`` directory with the normalizer) comes with every epoch that
improved, so a trial's latest checkpoint is its best model.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import replace
from typing import Any

from ray import tune

from pdm_ray.config import Settings
from pdm_ray.cores import claim_core
from pdm_ray.data import load_channel
from pdm_ray.data.pipeline import prepare_channel
from pdm_ray.models import EpochMetrics, ModelSpec, TrainedModel, save_model, train
from pdm_ray.models.compile_cache import use_compile_cache
from tuning.space import trial_settings

logger = logging.getLogger(__name__)


EPOCH_METRICS = ("epoch", "train_loss", "val_loss", "naive_val_loss", "val_ratio", "best_val_loss", "best_val_ratio")


def epoch_metrics(m: EpochMetrics, best: TrainedModel) -> dict[str, float]:
    """The metrics one epoch reports to Tune (and, through the callback, to MLflow)."""
    best_ratio = best.val_loss / best.naive_val_loss if best.naive_val_loss > 0 else float("inf")
    return {
        "epoch": m.epoch,
        "train_loss": m.train_loss,
        "val_loss": m.val_loss,
        "naive_val_loss": m.naive_val_loss,
        "val_ratio": m.val_ratio,
        "best_val_loss": best.val_loss,
        "best_val_ratio": best_ratio,
    }


def train_channel(config: dict[str, Any], *, settings_doc: dict[str, Any], data_dir: str, model: str) -> None:
    """Train ``config["channel"]`` with the sampled values in ``config``; report every epoch to Tune.

    Args:
        config: ``channel`` plus the sampled search-space values (see ``tuning.space``).
        settings_doc: the sweep's ``Settings`` as JSON data (rebuilt and validated here).
        data_dir: absolute path of the Telemanom-layout directory (trials run in their own
            working directory).
        model: ``lstm`` or ``transformer``.
    """
    claim_core()  # one core per trial: concurrent trials otherwise slow each other down
    settings = trial_settings(Settings.model_validate(settings_doc), model, config)
    use_compile_cache(settings.compile_cache_dir)  # home is absolute here (run_sweep resolves it)
    channel = load_channel(data_dir, config["channel"], allow_missing=True)
    prepared = prepare_channel(channel, settings)
    spec = ModelSpec.from_settings(settings, channel.n_features)
    normalizer = prepared.normalizer.to_dict()

    def on_epoch(m: EpochMetrics, best: TrainedModel) -> None:
        metrics = epoch_metrics(m, best)
        if not m.improved:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as tmp:
            save_model(replace(best, normalizer=normalizer), tmp)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))

    logger.info("%s: training %s with %s", channel.id, model, {k: v for k, v in config.items() if k != "channel"})
    # A trial's checkpoints are its validated params, so a refit would be work nobody keeps.
    train(spec, settings.train.model_copy(update={"refit": False}), prepared.X, prepared.y, on_epoch=on_epoch)
