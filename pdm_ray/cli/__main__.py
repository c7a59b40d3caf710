"""``python -m pdm_ray.cli`` runs the ``pdm-ray`` command."""

from pdm_ray.cli import main

raise SystemExit(main())
