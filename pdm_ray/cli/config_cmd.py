"""``pdm-ray config show``: print the resolved configuration (``serve.auth_token`` masked)."""

from __future__ import annotations

import argparse

import yaml

from pdm_ray.cli.common import add_config_option, settings_from


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("config", help="inspect the configuration")
    config_sub = parser.add_subparsers(dest="config_command", required=True, parser_class=type(parser))
    show = config_sub.add_parser("show", help="print the resolved config (file + PDM_* overrides)")
    add_config_option(show)
    show.set_defaults(handler=show_config)


def show_config(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    print(yaml.safe_dump(settings.public_dump(), sort_keys=False).rstrip())  # serve.auth_token masked
    print(f"# tracking_uri: {settings.tracking_uri}")
    return 0
