"""``pdm-ray tune``: a Ray Tune sweep across channels, every trial tracked in MLflow.

Progress comes from Tune's own reporter on a terminal and is silent otherwise; the
command ends with one table row per channel (best config, metric, run, version). Ray is
started by the sweep after the data and the tracking URI have been checked, so those
errors come before any cluster start-up.
"""

from __future__ import annotations

import argparse
import sys

from pdm_ray.cli.common import add_config_option, channel_ids, format_table, settings_from
from pdm_ray.data import list_channels


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("tune", help="hyper-parameter sweep across channels with Ray Tune + MLflow")
    add_config_option(parser)
    parser.add_argument("--channels", default=None, help="comma-separated channel ids (default: data.channels or all)")
    parser.add_argument("--data", default=None, metavar="DIR", help="Telemanom-layout directory (default: data.dir)")
    parser.add_argument("--model", choices=["lstm", "transformer"], default=None, help="default: sweep.model")
    parser.add_argument(
        "--num-samples", type=int, default=None, help="configs per channel (default: sweep.num_samples)"
    )
    parser.add_argument("--promote", action="store_true", help="run the promotion gate on each new version")
    parser.set_defaults(handler=tune)


def tune(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    data_dir = args.data or str(settings.data.dir)
    channels = channel_ids(args.channels) if args.channels else settings.data.channels or list_channels(data_dir)
    from tuning.sweep import run_sweep  # Ray Tune, MLflow and JAX: after the cheap checks

    interactive = sys.stdout.isatty()
    result = run_sweep(
        channels,
        args.model,
        settings=settings,
        data_dir=data_dir,
        num_samples=args.num_samples,
        promote_best=args.promote,
        verbose=1 if interactive else 0,
    )
    rows = []
    for best in result.channels:
        decision = "-" if best.decision is None else ("promoted" if best.decision.promoted else "kept staging")
        if best.channel in result.failed:  # registered, then its gate (or registering) failed
            decision = f"failed: {result.failed[best.channel]}"
        config = " ".join(f"{k}={_short(v)}" for k, v in sorted(best.config.items()))
        rows.append(
            [best.channel, best.trials, best.val_ratio, best.val_loss, best.epochs, best.version, decision, config]
        )
    registered = {best.channel for best in result.channels}
    rows.extend(
        [cid, 0, "-", "-", "-", "-", f"failed: {err}", ""]
        for cid, err in result.failed.items()
        if cid not in registered
    )
    print(
        f"sweep {result.sweep_id}: {result.n_trials} trials of {result.model} in {result.wall_seconds:.0f}s; "
        f"parent run {result.parent_run_id} at {result.tracking_uri}"
    )
    headers = ["channel", "trials", "val_ratio", "val_loss", "epochs", "version", "gate", "best config"]
    print(format_table(headers, rows))
    return 1 if result.failed else 0


def _short(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
