"""Data layer: loading the Telemanom layout and everything done to data before a model sees it."""

from pdm_ray.data.channels import Channel, list_channels, load_channel, load_channels, load_labels

__all__ = ["Channel", "list_channels", "load_channel", "load_channels", "load_labels"]
