"""``pdm-ray run``: the main job end to end on the configured data (``make run``).

Data check -> Tune sweep logged to MLflow -> registry promotion -> Serve -> HTTP replay
through the sensor actors -> event-level scores, forecast KPIs -> HTML report. See
``pdm_ray.jobs.main``.
"""

from __future__ import annotations

import argparse

from pdm_ray.cli.common import add_config_option, settings_from


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("run", help="run the main job end to end on the configured data")
    add_config_option(parser)
    parser.add_argument("--retrain", action="store_true", help="train again even if production models exist")
    parser.add_argument("--serve", action="store_true", help="keep the API and dashboard up after the run")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pdm_ray.jobs.main import JobOptions, run_main_job

    run_main_job(settings_from(args), JobOptions(retrain=args.retrain, serve_forever=args.serve))
    return 0
