"""The service's clock. Workflows take the time from here, so tests can control it
(``with clock.frozen(t): ...``) instead of sleeping."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from models.base import utcnow

_frozen: datetime | None = None


def now() -> datetime:
    return _frozen if _frozen is not None else utcnow()


@contextmanager
def frozen(at: datetime) -> Iterator[None]:
    global _frozen
    previous, _frozen = _frozen, at
    try:
        yield
    finally:
        _frozen = previous
