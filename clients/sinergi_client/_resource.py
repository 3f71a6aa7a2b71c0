"""Resource namespaces, and the wrappers behind their ``.with_raw_response`` views.

``client.referrals.with_raw_response.get(id)`` makes the same call as
``client.referrals.get(id)`` and returns an :class:`APIResponse` of its value: the reply's
headers (``etag``, ``request_id``, ``idempotent_replayed``), its status and ``parse()``.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from sinergi_client._base_client import APIResponse, AsyncAPIClient, SyncAPIClient, _Sent, capture

P = ParamSpec("P")
R = TypeVar("R")


class SyncResource:
    def __init__(self, client: SyncAPIClient) -> None:
        self._client = client


class AsyncResource:
    def __init__(self, client: AsyncAPIClient) -> None:
        self._client = client


def _last(seen: list[_Sent], name: str) -> _Sent:
    if not seen:
        raise TypeError(f"{name}() made no call to read a response from")
    return seen[-1]


def to_raw_response_wrapper(func: Callable[P, R]) -> Callable[P, APIResponse[R]]:
    @functools.wraps(func)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> APIResponse[R]:
        with capture() as seen:
            value = func(*args, **kwargs)
        sent = _last(seen, func.__name__)
        return APIResponse(sent.response, value, sent.retries_taken)

    return wrapped


def async_to_raw_response_wrapper(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[APIResponse[R]]]:
    """For a list, the value is its first page (an ``AsyncPage``)."""

    @functools.wraps(func)
    async def wrapped(*args: P.args, **kwargs: P.kwargs) -> APIResponse[R]:
        with capture() as seen:
            value = await func(*args, **kwargs)
        sent = _last(seen, func.__name__)
        return APIResponse(sent.response, value, sent.retries_taken)

    return wrapped
