"""``/v1/events``: the change feed. :meth:`Events.feed` keeps polling, from a cursor it keeps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from functools import cached_property
from typing import Unpack

from sinergi_client._base_client import RequestOptions
from sinergi_client._resource import (
    AsyncResource,
    SyncResource,
    async_to_raw_response_wrapper,
    to_raw_response_wrapper,
)
from sinergi_client.models import Event, EventPage


class Events(SyncResource):
    @cached_property
    def with_raw_response(self) -> EventsWithRawResponse:
        """The same calls, each returning an :class:`APIResponse` (headers, status, ``parse()``)."""
        return EventsWithRawResponse(self)

    def list(self, *, after: str | None = None, limit: int | None = None,
             **options: Unpack[RequestOptions]) -> EventPage:
        return self._client.get("/v1/events", EventPage, params={"after": after, "limit": limit}, options=options)

    def feed(self, *, after: str | None = None, limit: int | None = None, poll_interval: float = 2.0,
             stop_when_idle: bool = False) -> EventFeed:
        """Every event after ``after``, polling again ``poll_interval`` seconds after an empty
        page (never ending unless ``stop_when_idle``). ``feed.cursor`` is where to resume."""
        return EventFeed(self, after, limit, poll_interval, stop_when_idle)


class EventFeed:
    def __init__(self, events: Events, after: str | None, limit: int | None, poll_interval: float,
                 stop_when_idle: bool) -> None:
        self._events, self.cursor, self._limit = events, after, limit
        self._poll, self._stop = poll_interval, stop_when_idle

    def __iter__(self) -> Iterator[Event]:
        while True:
            page = self._events.list(after=self.cursor, limit=self._limit)
            yield from page.items
            self.cursor = page.next_cursor
            if not page.items:
                if self._stop:
                    return
                time.sleep(self._poll)


class AsyncEvents(AsyncResource):
    @cached_property
    def with_raw_response(self) -> AsyncEventsWithRawResponse:
        """The same calls, each returning an :class:`APIResponse` (headers, status, ``parse()``)."""
        return AsyncEventsWithRawResponse(self)

    async def list(self, *, after: str | None = None, limit: int | None = None,
                   **options: Unpack[RequestOptions]) -> EventPage:
        return await self._client.get("/v1/events", EventPage, params={"after": after, "limit": limit},
                                      options=options)

    def feed(self, *, after: str | None = None, limit: int | None = None, poll_interval: float = 2.0,
             stop_when_idle: bool = False) -> AsyncEventFeed:
        return AsyncEventFeed(self, after, limit, poll_interval, stop_when_idle)


class AsyncEventFeed:
    def __init__(self, events: AsyncEvents, after: str | None, limit: int | None, poll_interval: float,
                 stop_when_idle: bool) -> None:
        self._events, self.cursor, self._limit = events, after, limit
        self._poll, self._stop = poll_interval, stop_when_idle

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            page = await self._events.list(after=self.cursor, limit=self._limit)
            for event in page.items:
                yield event
            self.cursor = page.next_cursor
            if not page.items:
                if self._stop:
                    return
                await asyncio.sleep(self._poll)


class EventsWithRawResponse:
    def __init__(self, resource: Events) -> None:
        self.list = to_raw_response_wrapper(resource.list)


class AsyncEventsWithRawResponse:
    def __init__(self, resource: AsyncEvents) -> None:
        self.list = async_to_raw_response_wrapper(resource.list)
