"""The ``pdm-ray`` command line: the composition root.

Each subcommand lives in its own module here and exposes ``register(subparsers)``; the
module's handler takes the parsed args and returns an exit status. This package (with
``pdm_ray.jobs``) is the only part of ``pdm_ray`` allowed to import Ray and the Ray
layers (``actors``, ``tuning``, ``serve_apps``).

Errors: any ``PdmError`` becomes one line on stderr and exit status 2; so do usage errors.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from pdm_ray.cli import (
    benchmark_cmd,
    config_cmd,
    data_cmd,
    fleet_cmd,
    models_cmd,
    run_cmd,
    serve_cmd,
    stream_cmd,
    tune_cmd,
)
from pdm_ray.errors import PdmError

COMMANDS = (run_cmd, config_cmd, data_cmd, benchmark_cmd, stream_cmd, fleet_cmd, tune_cmd, models_cmd, serve_cmd)


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line and exit status 2 (also used by ``pdm_ray.jobs``)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="pdm-ray", description="Predictive maintenance for sensor fleets on Ray.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args) or 0)
    except PdmError as exc:
        sys.stderr.write(f"pdm-ray {args.command}: error: {exc}\n")
        return 2
    except BrokenPipeError:  # e.g. `pdm-ray config show | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        sys.stderr.write("pdm-ray: interrupted\n")
        return 130
