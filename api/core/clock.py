"""The service's clock. Workflows take the time from here, so tests can control it
(``with clock.frozen(t): ...``) instead of sleeping.

There is one clock: :func:`now` is :func:`models.base.utcnow`, which the tables' column
defaults use as well, and :func:`frozen` freezes both.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from models import base
from models.base import utcnow as now

__all__ = ["frozen", "now"]


@contextmanager
def frozen(at: datetime) -> Iterator[None]:
    previous, base._frozen = base._frozen, at
    try:
        yield
    finally:
        base._frozen = previous
