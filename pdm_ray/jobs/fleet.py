"""Ray job entry point: the main job against a running cluster.

    ray job submit --address http://<head>:8265 --working-dir . -- \\
        /home/ubuntu/pdm-ray/.venv/bin/python -m pdm_ray.jobs.fleet --config configs/default.yaml

(the nodes' venv python, as ``cluster.yaml`` builds it: the uploaded working dir has no ``.venv``).

Inside a submitted job Ray sets ``RAY_ADDRESS``, so ``ray.init()`` attaches to that cluster;
``--address`` (or ``ray.address`` in the config) names another one. Errors are one line and
exit status 2, as on the CLI.
"""

from __future__ import annotations

import sys

from pdm_ray.cli import OneLineParser
from pdm_ray.config import load_settings
from pdm_ray.errors import PdmError
from pdm_ray.jobs.main import JobOptions, run_main_job


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m pdm_ray.jobs.fleet", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="YAML config (default: configs/default.yaml)")
    parser.add_argument("--address", default=None, help="Ray address (default: RAY_ADDRESS, else ray.address)")
    parser.add_argument("--retrain", action="store_true", help="train again even if production models exist")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
        address = args.address or settings.ray.address or "auto"
        settings = settings.model_copy(update={"ray": settings.ray.model_copy(update={"address": address})})
        result = run_main_job(settings, JobOptions(retrain=args.retrain))
    except PdmError as exc:
        sys.stderr.write(f"pdm_ray.jobs.fleet: error: {exc}\n")
        return 2
    print(f"report: {result.report}  F1={result.f1:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
