"""Query parameters that every list shares, declared once.

``limit: Limit = DEFAULT_LIMIT`` and ``cursor: Cursor = None`` in a list route's signature;
the cursor is opened with the list's :class:`api.core.pagination.Keyset` in the route (a bad
one is a 400), and the service gets the position.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from api.core.pagination import DEFAULT_LIMIT, MAX_LIMIT

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"items per page, 1 to {MAX_LIMIT} "
                                                             f"(default {DEFAULT_LIMIT})")]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous reply; omit for the first page")]

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "Cursor", "Limit"]
