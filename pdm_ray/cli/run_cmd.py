"""``pdm-ray run``: the main job on the embedded defaults.

It grows step by step as the platform lands; each step prints what it did and a failing
step says which step failed and why.
"""

from __future__ import annotations

import argparse

import numpy as np

from pdm_ray.cli.common import add_config_option, format_table, settings_from
from pdm_ray.data import load_channels


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("run", help="run the main job end to end on the configured data")
    add_config_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    print(f"[1] loading data from {settings.data.dir}")
    channels = load_channels(settings.data.dir, settings.data.channels)
    rows = []
    for ch in channels:
        value = ch.test[:, 0]
        rows.append(
            [
                ch.id,
                ch.spacecraft or "-",
                len(ch.train),
                len(ch.test),
                len(ch.anomalies),
                float(value.min()),
                float(value.max()),
                float(np.mean(ch.train[:, 1:].sum(axis=0) > 0)),
            ]
        )
    print(
        format_table(
            ["channel", "spacecraft", "train", "test", "labels", "test min", "test max", "cmd cols used"],
            rows,
        )
    )
    return 0
