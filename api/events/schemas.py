from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class EventPublic(BaseModel):
    id: str
    type: str
    occurred_at: datetime
    data: dict[str, Any]


class EventPage(BaseModel):
    items: list[EventPublic]
    next_cursor: str  # always set: keep polling with it
