"""``pdm-ray models list|promote|rollback``: the registry lifecycle of ``pdm-<channel>-<model>``."""

from __future__ import annotations

import argparse

from pdm_ray.cli.common import add_config_option, format_table, settings_from
from pdm_ray.ids import validate_sensor_id


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("models", help="list, promote and roll back registered models")
    models_sub = parser.add_subparsers(dest="models_command", required=True, parser_class=type(parser))

    listing = models_sub.add_parser("list", help="registered versions with aliases and lifecycle status")
    listing.add_argument("--channel", default=None, help="only this channel")
    listing.add_argument("--model", choices=["lstm", "transformer"], default=None, help="only this kind")
    add_config_option(listing)
    listing.set_defaults(handler=list_models)

    gate = models_sub.add_parser("promote", help="run the promotion gate on the staging version")
    gate.add_argument("channel")
    gate.add_argument("--model", choices=["lstm", "transformer"], default="lstm")
    gate.add_argument("--version", default=None, help="candidate version (default: the staging alias)")
    gate.add_argument("--data", default=None, metavar="DIR", help="Telemanom-layout directory (default: data.dir)")
    gate.add_argument("--force", action="store_true", help="promote even if the gate says no (recorded)")
    add_config_option(gate)
    gate.set_defaults(handler=promote_model)

    back = models_sub.add_parser("rollback", help="move production back to the previous production version")
    back.add_argument("channel")
    back.add_argument("--model", choices=["lstm", "transformer"], default="lstm")
    back.add_argument("--reason", required=True, help="why (recorded on the versions)")
    add_config_option(back)
    back.set_defaults(handler=rollback_model)


def list_models(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    channel = None if args.channel is None else validate_sensor_id(args.channel)  # before the store is touched
    from pdm_ray.tracking import connect_settings, list_versions

    versions = list_versions(connect_settings(settings), channel, args.model)
    rows = [
        [v.name, v.version, ",".join(v.aliases) or "-", v.status or "-", "-" if v.val_loss is None else v.val_loss]
        for v in versions
    ]
    print(format_table(["model", "version", "aliases", "status", "val_loss"], rows))
    return 0


def promote_model(args: argparse.Namespace) -> int:
    from pdm_ray.data import load_channel
    from pdm_ray.tracking import connect_settings, promote

    settings = settings_from(args)
    tracking = connect_settings(settings)
    channel = load_channel(args.data or settings.data.dir, args.channel, allow_missing=True)
    d = promote(tracking, channel, args.model, settings, version=args.version, force=args.force)
    verdict = "promoted to production" if d.promoted else "kept in staging"
    print(f"{d.name} version {d.candidate}: {verdict}: {d.reason}")
    return 0


def rollback_model(args: argparse.Namespace) -> int:
    from pdm_ray.tracking import connect_settings, rollback

    tracking = connect_settings(settings_from(args))
    r = rollback(tracking, args.channel, args.model, args.reason)
    print(f"{r.name}: production moved back from version {r.from_version} to {r.to_version} ({r.reason})")
    return 0
