"""``pdm-ray fleet status``: the sensors, their counters, scoring state, drift and quality.

With ``ray.address`` set it asks the running Fleet actor (one fan-out over all sensors).
Without a cluster there are no live actors, so it rebuilds each sensor's state from its
snapshot and write-ahead log under ``<home>/sensors/`` instead, reading only.
"""

from __future__ import annotations

import argparse

from pdm_ray.cli.common import add_config_option, connect_ray, format_table, settings_from
from pdm_ray.config import Settings
from pdm_ray.errors import DataError
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
