"""The region reference as the API serves it: codes with their names (:mod:`models.regions`).

Not personal data and the same for every caller, so not audited. Lists page in code order
(the reference is in memory: :func:`api.core.pagination.cut` over the matching regions).
"""

from __future__ import annotations

import unicodedata

from api.core import pagination
from api.core.errors import NotFound
from api.core.pagination import Position, Slice
from models import regions
from models.regions import Region, covers


class _Code:
    key = "code"


_KEYS = [_Code()]


def _folded(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().casefold()


def list_regions(
    *, parent: str | None, level: str | None, q: str | None, after: Position | None, limit: int
) -> Slice[Region]:
    """Regions in code order. ``parent`` alone: its regions one level down; with ``level``:
    every region of that level under it; ``level`` alone: every region of that level; ``q``: of
    those (or of all, when neither is given), the names containing it. Nothing: the provinces.
    An unknown ``parent`` is a 404."""
    if parent is not None and regions.get(parent) is None:
        raise NotFound(f"No region {parent}")
    if parent is not None and level is None:
        found: tuple[Region, ...] | list[Region] = regions.children().get(parent, ())
    elif parent is None and level is None and q is None:
        found = regions.children().get(None, ())
    else:
        found = [r for r in regions.regions().values()
                 if (level is None or r.level == level) and (parent is None or (r.code != parent
                                                                                and covers(parent, r.code)))]
    if q is not None:
        needle = _folded(q.strip())
        found = [r for r in found if needle in _folded(r.name)]
    ordered = sorted(found, key=lambda r: r.code)
    if after is not None:
        ordered = [r for r in ordered if r.code > after[0]]
    return pagination.cut(ordered[: limit + 1], _KEYS, limit)


def get_region(code: str) -> tuple[Region, list[Region], int]:
    """The region, the regions above it (province first) and how many lie one level down."""
    region = regions.get(code)
    if region is None:
        raise NotFound(f"No region {code}")
    path: list[Region] = []
    up = region.parent
    while up is not None:
        above = regions.get(up)
        if above is None:  # pragma: no cover - the reference is checked (tests/test_regions.py)
            break
        path.insert(0, above)
        up = above.parent
    return region, path, len(regions.children().get(code, ()))
