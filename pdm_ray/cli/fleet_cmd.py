"""``pdm-ray fleet status``: the sensors' counters, scoring, drift and quality; ``fleet retrain``.

With ``ray.address`` set it asks the running Fleet actor (one fan-out over all sensors).
Without a cluster there are no live actors, so it rebuilds each sensor's state from its
snapshot and write-ahead log under ``<home>/sensors/`` instead, reading only.

``fleet retrain`` asks the running Fleet to evaluate the retraining policy now (optionally
after a manual request for one sensor), prints the decisions, and with ``--wait`` waits for
the retrains it started and prints their outcomes.
"""

from __future__ import annotations

import argparse

from pdm_ray.cli.common import add_config_option, connect_ray, format_table, settings_from
from pdm_ray.config import Settings
from pdm_ray.errors import DataError, FleetUnavailableError
from pdm_ray.ids import validate_sensor_id
from pdm_ray.streaming import (
    SensorStatus,
    SensorStore,
    SensorStream,
    StreamSettings,
    list_sensor_dirs,
    sensor_dir,
)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("fleet", help="inspect the sensor actors")
    fleet_sub = parser.add_subparsers(dest="fleet_command", required=True, parser_class=type(parser))
    status = fleet_sub.add_parser("status", help="a table of every sensor's counters, scoring, drift and quality")
    status.add_argument("--name", default="fleet", help="the Fleet actor's name (default: fleet)")
    add_config_option(status)
    status.set_defaults(handler=fleet_status)
    retrain = fleet_sub.add_parser("retrain", help="evaluate the retraining policy now (needs a running cluster)")
    retrain.add_argument("--sensor", default=None, help="request a retrain of this sensor (manual trigger)")
    retrain.add_argument("--reason", default="requested from the command line", help="why (kept in the history)")
    retrain.add_argument("--wait", action="store_true", help="wait for the retrains started and print their outcomes")
    retrain.add_argument("--name", default="fleet", help="the Fleet actor's name (default: fleet)")
    add_config_option(retrain)
    retrain.set_defaults(handler=fleet_retrain)


def snapshot_statuses(settings: Settings) -> list[SensorStatus | tuple[str, str]]:
    """Each stored sensor's status rebuilt from its snapshot and WAL (nothing written), or ``(id, why not)``."""
    out: list[SensorStatus | tuple[str, str]] = []
    for sid in list_sensor_dirs(settings.home):
        try:
            stream = SensorStream(sid, StreamSettings.from_settings(settings))
            SensorStore(sensor_dir(settings.home, sid)).recover(stream, repair=False)
            out.append(stream.status())
        except DataError as exc:
            out.append((sid, str(exc)))
    return out


def fleet_status(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if settings.ray.address:
        import ray

        from actors.fleet import find_fleet

        connect_ray(settings)
        statuses: list[SensorStatus | tuple[str, str]] = list(
            ray.get(find_fleet(settings, args.name).status_all.remote())
        )
        source = f"Fleet actor {args.name!r} at {settings.ray.address}"
    else:
        statuses = snapshot_statuses(settings)
        source = f"stored state under {settings.home / 'sensors'} (no cluster configured: ray.address is null)"
    rows = []
    for s in statuses:
        if isinstance(s, tuple):
            rows.append([s[0], "-", "-", "-", "-", "-", "-", "-", f"unreadable: {s[1]}"])
            continue
        drift = "-" if s.drift_severity is None else s.drift_severity
        rows.append(
            [
                s.sensor_id,
                s.last_seq,
                s.readings,
                s.scored,
                s.events,
                s.rejected,
                drift,
                s.quality or "-",
                s.scoring.value,
            ]
        )
    print(f"{len(rows)} sensor(s), from {source}")
    if rows:
        print(
            format_table(
                ["sensor", "last seq", "readings", "scored", "events", "rejected", "drift", "quality", "scoring"], rows
            )
        )
    return 0


def fleet_retrain(args: argparse.Namespace) -> int:
    import json

    import ray

    from actors.fleet import find_fleet

    settings = settings_from(args)
    if not settings.ray.address:
        raise FleetUnavailableError("fleet retrain needs a running cluster: set ray.address (e.g. auto)")
    connect_ray(settings)
    fleet = find_fleet(settings, args.name)
    if args.sensor:
        ray.get(fleet.request_retrain.remote(validate_sensor_id(args.sensor), args.reason))
    decisions = ray.get(fleet.check_retraining.remote())
    rows = [
        [d.sensor, d.trigger.value, d.decision.value, json.dumps(dict(d.evidence), sort_keys=True)] for d in decisions
    ]
    print(f"{len(rows)} decision(s)")
    if rows:
        print(format_table(["sensor", "trigger", "decision", "evidence"], rows))
    if args.wait and any(d.fired for d in decisions):
        entries = ray.get(fleet.settle_retrains.remote(wait=True))
        outcome_rows = [
            [e.sensor, e.trigger.value, e.outcome.value if e.outcome else "-", e.model_version or "-"] for e in entries
        ]
        print(format_table(["sensor", "trigger", "outcome", "version"], outcome_rows))
    return 0
