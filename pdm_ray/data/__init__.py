"""Data layer: loading the Telemanom layout and everything done to data before a model sees it."""

from pdm_ray.data.channels import (
    Channel,
    largest_first,
    list_channels,
    load_channel,
    load_channels,
    load_labels,
    train_sizes,
)

__all__ = [
    "Channel",
    "largest_first",
    "list_channels",
    "load_channel",
    "load_channels",
    "load_labels",
    "train_sizes",
]
