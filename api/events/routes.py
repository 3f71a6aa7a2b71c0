from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.http import auth
from api.http.session import SessionDep
from api.core.errors import BadRequest
from api.events import service
from api.events.schemas import EventPage, EventPublic
from api.core.pagination import decode_cursor, encode_cursor

router = APIRouter(prefix="/v1/events", tags=["events"])


def _position(cursor: str | None) -> int:
    if not cursor:
        return 0
    pos = decode_cursor(cursor).get("pos")
    if not isinstance(pos, int) or pos < 0:
        raise BadRequest("The cursor is not valid; use next_cursor from a previous reply")
    return pos


@router.get("", response_model=EventPage, name="event.list")
async def read_feed(
    caller: auth.EventsRead,
    session: SessionDep,
    after: Annotated[str | None, Query(description="next_cursor of the previous reply; omit to start")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> EventPage:
    """The change feed the caller may see, oldest first. ``next_cursor`` is always set: poll
    again with it to get what happened since; the feed never skips an event."""
    pos = _position(after)
    items = await service.read_feed(session, caller, after=pos, limit=limit)
    if items:
        next_cursor = encode_cursor({"pos": items[-1].pos})
    else:
        next_cursor = after or encode_cursor({"pos": 0})
    return EventPage(
        items=[EventPublic(id=i.id, type=i.type, occurred_at=i.occurred_at, data=i.data) for i in items],
        next_cursor=next_cursor,
    )
