"""``pdm-ray data ...``: inspect a Telemanom-layout directory and compute window features."""

from __future__ import annotations

import argparse
from collections import Counter

from pdm_ray.cli.common import add_config_option, format_table, settings_from
from pdm_ray.data import load_channel, load_channels
from pdm_ray.data.features import compute_features


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("data", help="inspect data in the Telemanom layout")
    data_sub = parser.add_subparsers(dest="data_command", required=True, parser_class=type(parser))
    inspect = data_sub.add_parser("inspect", help="table of channels: lengths, features, labels")
    inspect.add_argument("dir", help="directory with train/, test/ and labeled_anomalies.csv")
    inspect.set_defaults(handler=inspect_data)

    features = data_sub.add_parser("features", help="per-window features of one channel (summary or CSV)")
    features.add_argument("dir", help="directory in the Telemanom layout")
    features.add_argument("--channel", required=True, help="channel id")
    features.add_argument("--split", choices=["train", "test"], default="train", help="which series (default train)")
    features.add_argument(
        "--window", type=int, default=None, metavar="W", help="window length (default features.window)"
    )
    features.add_argument("--out", default=None, metavar="FILE.csv", help="write every window's features as CSV")
    add_config_option(features)
    features.set_defaults(handler=features_data)


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


def features_data(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    channel = load_channel(args.dir, args.channel)
    frame = compute_features(getattr(channel, args.split), settings.features, window=args.window)
    window = args.window or settings.features.window
    summary = f"{channel.id} {args.split}: {len(frame)} windows x {frame.shape[1]} features (window {window})"
    if args.out:
        frame.to_csv(args.out)
        print(f"{summary} -> {args.out}")
        return 0
    print(summary)
    print(frame.head().T.to_string(float_format=lambda v: f"{v:.4g}"))
    return 0
