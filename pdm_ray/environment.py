"""Environment variables set for one block and restored after it.

Libraries such as MLflow and Ray Tune read some settings from the environment at the moment
they act; pdm-ray sets those for the call that needs them and leaves the process as it was.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager


@contextmanager
def scoped_environ(values: Mapping[str, str], defaults: Mapping[str, str] | None = None) -> Iterator[None]:
    """Set ``values`` (and each of ``defaults`` the caller has not set) inside the block only.

    On exit every variable named in either mapping is back to its previous value, or unset.
    """
    defaults = defaults or {}
    before = {key: os.environ.get(key) for key in {**values, **defaults}}
    os.environ.update(values)
    os.environ.update({key: value for key, value in defaults.items() if before[key] is None})
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
