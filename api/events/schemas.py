from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from api.core.pagination import Keyset, Page


class EventPublic(BaseModel):
    id: str
    type: str
    occurred_at: datetime
    data: dict[str, Any]


class EventPage(Page[EventPublic]):
    next_cursor: str  # always set: keep polling with it


EVENTS = Keyset("events", (int,))  # by feed position
