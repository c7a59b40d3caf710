"""Forecasters (Flax Linen LSTM and Transformer), their training, inference and persistence."""

from pdm_ray.models.networks import LSTMForecaster, SeedEnsemble, TransformerForecaster, build_network
from pdm_ray.models.persistence import load_model, save_model
from pdm_ray.models.prediction import predict, predict_series
from pdm_ray.models.spec import ModelSpec
from pdm_ray.models.training import EpochMetrics, TrainedModel, train, train_step

__all__ = [
    "EpochMetrics",
    "LSTMForecaster",
    "ModelSpec",
    "SeedEnsemble",
    "TrainedModel",
    "TransformerForecaster",
    "build_network",
    "load_model",
    "predict",
    "predict_series",
    "save_model",
    "train",
    "train_step",
]
