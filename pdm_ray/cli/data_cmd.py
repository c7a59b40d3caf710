"""``pdm-ray data ...``: look at a Telemanom-layout directory."""

from __future__ import annotations

import argparse
from collections import Counter

from pdm_ray.cli.common import format_table
from pdm_ray.data import load_channels


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("data", help="inspect data in the Telemanom layout")
    data_sub = parser.add_subparsers(dest="data_command", required=True, parser_class=type(parser))
    inspect = data_sub.add_parser("inspect", help="table of channels: lengths, features, labels")
    inspect.add_argument("dir", help="directory with train/, test/ and labeled_anomalies.csv")
    inspect.set_defaults(handler=inspect_data)


def inspect_data(args: argparse.Namespace) -> int:
    channels = load_channels(args.dir)
    rows = []
    for ch in channels:
        classes = ", ".join(f"{k}:{v}" for k, v in sorted(Counter(ch.classes).items())) or "-"
        rows.append(
            [
                ch.id,
                ch.spacecraft or "-",
                len(ch.train),
                len(ch.test),
                ch.n_features,
                len(ch.anomalies),
                classes,
            ]
        )
    print(format_table(["channel", "spacecraft", "train", "test", "features", "labels", "classes"], rows))
    n_labels = sum(len(ch.anomalies) for ch in channels)
    print(f"\n{len(channels)} channels, {n_labels} labelled anomaly sequences")
    return 0
