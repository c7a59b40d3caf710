"""Small pieces shared by CLI subcommands: the --config and --channels options and table printing."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from pdm_ray.config import Settings, load_settings
from pdm_ray.ids import validate_sensor_id


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, metavar="FILE", help="YAML config (default: configs/default.yaml)")


def settings_from(args: argparse.Namespace) -> Settings:
    return load_settings(getattr(args, "config", None))


def channel_ids(text: str) -> list[str]:
    """The ids of a comma-separated ``--channels`` value (``"A-5, T-1"`` too), each validated.

    Raises:
        InvalidChannelError: an id is not a valid sensor id.
    """
    return [validate_sensor_id(c.strip()) for c in text.split(",") if c.strip()]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Render rows as a plain fixed-width text table."""
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def connect_ray(settings: Settings, **init_kwargs: object) -> None:
    """Start a local Ray (``ray.address`` None) or attach to the configured cluster, once.

    A local Ray starts with the Serve switches of ``serve_apps.serve_env.cluster_env`` (the
    proxy's gRPC transport, direct ingress) that the ``serve`` settings ask for; a cluster
    keeps the environment it was started with.
    """
    import os

    import ray

    from serve_apps.serve_env import cluster_env

    if ray.is_initialized():
        return
    kwargs: dict[str, object] = {
        "namespace": settings.ray.namespace,
        "include_dashboard": False,
        "log_to_driver": False,
        "configure_logging": False,
    }
    if settings.ray.address:
        kwargs["address"] = settings.ray.address
    else:
        # "local" always starts a new cluster: never attach by accident to another Ray on the machine.
        kwargs["address"] = "local"
        os.environ.update(cluster_env(settings.serve))  # the raylet and its workers inherit it
        if settings.ray.num_cpus:
            kwargs["num_cpus"] = settings.ray.num_cpus
    kwargs.update(init_kwargs)
    ray.init(**kwargs)


def progress(total: int, desc: str):
    """A tqdm progress bar that stays quiet when stderr is not a terminal."""
    import sys

    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not sys.stderr.isatty(), unit="ch")
