"""Process-wide settings of other libraries, changed for one block and restored after it.

Libraries such as MLflow and Ray Tune read some settings from the environment at the moment
they act; pdm-ray sets those for the call that needs them and leaves the process as it was.
Likewise some calls log a message that pdm-ray knows to be noise; it is muted for that call.
"""

from __future__ import annotations

import logging
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


class _Muted(logging.Filter):
    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.getMessage()


@contextmanager
def muted_log_messages(logger_name: str, fragment: str) -> Iterator[None]:
    """Drop the records that ``logger_name`` itself logs with ``fragment`` in their message, inside the block only."""
    muted, target = _Muted(fragment), logging.getLogger(logger_name)
    target.addFilter(muted)
    try:
        yield
    finally:
        target.removeFilter(muted)
