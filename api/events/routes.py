from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.core.unit import unit_of
from api.events import service
from api.events.schemas import EVENTS, EventPage, EventPublic
from api.http import auth
from api.http.params import DEFAULT_LIMIT, Limit
from api.http.session import SessionDep

router = APIRouter(prefix="/v1/events", tags=["events"])


@router.get("", response_model=EventPage, name="event.list")
async def read_feed(
    caller: auth.EventsRead,
    session: SessionDep,
    after: Annotated[str | None, Query(description="next_cursor of the previous reply; omit to start")] = None,
    limit: Limit = DEFAULT_LIMIT,
) -> EventPage:
    """The change feed the caller may see, oldest first. ``next_cursor`` is always set: poll
    again with it to get what happened since; the feed never skips an event."""
    settings = unit_of(session).settings
    opened = EVENTS.open(settings, after)
    pos = 0 if opened is None else opened[0]
    items = await service.read_feed(session, caller, after=pos, limit=limit)
    if items:
        next_cursor = EVENTS.seal(settings, (items[-1].pos,))
    else:  # nothing new: the same cursor again (it opened, so it is one of ours)
        next_cursor = after or EVENTS.seal(settings, (pos,))
    return EventPage(
        items=[EventPublic(id=i.id, type=i.type, occurred_at=i.occurred_at, data=i.data) for i in items],
        next_cursor=next_cursor,
    )
