"""``pdm-ray stream``: replay test series through the sensor actors and score what they detect.

Each channel's test series is cut into batches (timestamps = reading index, in seconds)
and sent to its ``SensorActor`` through the Fleet, all channels at once, optionally paced
(``--speed`` readings per second per channel). A sensor with stored state continues where
it stopped (next seq, later timestamps); ``--fresh`` deletes that state first. At the end
the events each sensor reported are scored against the labels, event by event (Telemanom,
``pdm_ray.evaluation``).
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass
from typing import Any

import numpy as np

from pdm_ray.cli.common import add_config_option, channel_ids, connect_ray, format_table, progress, settings_from
from pdm_ray.config import Settings
from pdm_ray.data.channels import Channel, load_channels
from pdm_ray.errors import DataError
from pdm_ray.evaluation import EventCounts, score_events, total_counts
from pdm_ray.streaming import Batch, SensorStatus

FORECASTERS = ("model", "persistence", "none")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("stream", help="replay test series through the sensor actors and score the events")
    parser.add_argument("--data", default=None, metavar="DIR", help="Telemanom-layout directory (default: data.dir)")
    parser.add_argument("--channels", default=None, help="comma-separated channel ids (default: all)")
    parser.add_argument("--speed", type=float, default=0.0, help="readings per second per channel (0: unpaced)")
    parser.add_argument("--batch-size", type=int, default=250, help="readings per batch (default 250)")
    parser.add_argument(
        "--forecaster",
        choices=FORECASTERS,
        default="model",
        help="model: production models from the registry, through actors.forecaster (model_host: the ModelHost "
        "actor; serve: the running Serve app's model deployment); persistence: naive baseline; none: no scoring",
    )
    parser.add_argument("--fresh", action="store_true", help="delete the channels' stored sensor state first")
    add_config_option(parser)
    parser.set_defaults(handler=stream)


@dataclass(frozen=True)
class Replay:
    """One channel's part of the replay: its batches and where they start in the sensor's life."""

    channel: Channel
    batches: list[Batch]
    first_reading: int  # the sensor's reading index of test index 0


def plan_replay(channel: Channel, status: SensorStatus, batch_size: int) -> Replay:
    """Cut ``channel.test`` ``[T, F]`` into batches continuing the sensor's stored stream."""
    test = channel.test
    t0 = 0.0 if status.last_timestamp is None else float(np.floor(status.last_timestamp)) + 1.0
    starts = range(0, len(test), batch_size)
    batches = [
        Batch(
            status.last_seq + 1 + i,
            t0 + np.arange(s, min(s + batch_size, len(test)), dtype=np.float64),
            test[s : s + batch_size],
        )
        for i, s in enumerate(starts)
    ]
    return Replay(channel, batches, status.readings)


def _forecaster(kind: str, settings: Settings) -> Any:
    from actors.forecaster import PersistenceForecaster, production_forecaster

    if kind == "model":
        return production_forecaster(settings)
    if kind == "persistence":
        return PersistenceForecaster()
    return None


async def _replay_all(handles: dict[str, Any], replays: list[Replay], speed: float, bar: Any) -> dict[str, list[Any]]:
    from actors.producer import paced, send_batches

    def advance(ack: Any) -> None:
        bar.update(ack.accepted)

    results = await asyncio.gather(
        *(send_batches(handles[r.channel.id], paced(r.batches, speed), on_ack=advance) for r in replays)
    )
    return {r.channel.id: acks for r, acks in zip(replays, results, strict=True)}


def _statuses(fleet: Any, ids: list[str]) -> list[SensorStatus]:
    """The sensors' statuses, or one line naming each sensor whose actor does not answer.

    Raises:
        DataError: a sensor's actor is broken (e.g. its stored state is damaged).
    """
    import ray

    answers = ray.get(fleet.status_all.remote(ids))
    broken = [f"sensor {a[0]}: its actor does not answer: {a[1]}" for a in answers if isinstance(a, tuple)]
    if broken:
        raise DataError("; ".join(broken) + " (--fresh starts it over without its stored state)")
    return answers


def stream(args: argparse.Namespace) -> int:
    import ray

    from actors.fleet import fleet_handle

    settings = settings_from(args)
    if args.batch_size <= 0:
        raise DataError(f"--batch-size must be positive, got {args.batch_size}")
    if args.speed < 0:
        raise DataError(f"--speed must be >= 0, got {args.speed}")
    data_dir = args.data or settings.data.dir
    ids = channel_ids(args.channels) if args.channels else None
    channels = load_channels(data_dir, ids or settings.data.channels)
    if not channels:
        raise DataError(f"{data_dir}: no channels to replay")
    ids = [c.id for c in channels]
    connect_ray(settings)
    fleet = fleet_handle(settings, _forecaster(args.forecaster, settings))
    if args.fresh:
        ray.get([fleet.remove.remote(cid, True) for cid in ids])
    handles = ray.get(fleet.sensors.remote(ids))
    before = _statuses(fleet, ids)
    replays = [plan_replay(c, s, args.batch_size) for c, s in zip(channels, before, strict=True)]
    total = sum(len(c.test) for c in channels)
    print(f"streaming {len(channels)} channel(s), {total} readings in batches of {args.batch_size} from {data_dir}")
    with progress(total, "stream") as bar:
        bar.unit = "pt"
        acks = asyncio.run(_replay_all(handles, replays, args.speed, bar))
    ray.get([handle.checkpoint.remote() for handle in handles.values()])  # a restart need not replay this run
    after = {s.sensor_id: s for s in _statuses(fleet, ids)}
    rows, counts = [], []
    for replay in replays:
        cid = replay.channel.id
        events = [e for ack in acks[cid] for e in ack.events]
        predicted = [(e.start - replay.first_reading, e.end - replay.first_reading) for e in events]
        status = after[cid]
        row: list[object] = [cid, sum(a.accepted for a in acks[cid]), status.scored, status.scoring.value, len(events)]
        if replay.channel.has_labels:
            c: EventCounts = score_events(
                np.asarray(predicted, dtype=np.int64).reshape(-1, 2), replay.channel.anomalies
            )
            counts.append(c)
            row += [c.tp, c.fp, c.fn]
        else:
            row += ["-", "-", "-"]
        rows.append(row)
    print(format_table(["channel", "readings", "scored", "scoring", "events", "tp", "fp", "fn"], rows))
    if counts:
        t = total_counts(counts)
        print(
            f"\nevents: tp={t.tp} fp={t.fp} fn={t.fn}  precision={t.precision:.3f} recall={t.recall:.3f} f1={t.f1:.3f}"
        )
    unscored = sorted({(s.scoring.value, s.scoring_detail) for s in after.values() if s.scored == 0})
    for state, detail in unscored:
        print(f"note: not scored ({state}): {detail}")
    return 0
