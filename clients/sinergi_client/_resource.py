"""Resource namespaces and their ``.with_raw_response`` views."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from sinergi_client._base_client import APIResponse, AsyncAPIClient, AsyncPager, SyncAPIClient, capture


class SyncResource:
    def __init__(self, client: SyncAPIClient) -> None:
        self._client = client

    @property
    def with_raw_response(self) -> RawResponses:
        """The same methods, returning an :class:`APIResponse` (headers, status, ``parse()``)."""
        return RawResponses(self)


class AsyncResource:
    def __init__(self, client: AsyncAPIClient) -> None:
        self._client = client

    @property
    def with_raw_response(self) -> AsyncRawResponses:
        return AsyncRawResponses(self)


class RawResponses:
    def __init__(self, resource: SyncResource) -> None:
        self._resource = resource

    def __getattr__(self, name: str) -> Callable[..., APIResponse[Any]]:
        method = getattr(self._resource, name)

        def call(*args: Any, **kwargs: Any) -> APIResponse[Any]:
            with capture() as seen:
                value = method(*args, **kwargs)
            if not seen:
                raise TypeError(f"{name}() made no call to read a response from")
            return APIResponse(seen[-1].response, value, seen[-1].retries_taken)

        return call


class AsyncRawResponses:
    def __init__(self, resource: AsyncResource) -> None:
        self._resource = resource

    def __getattr__(self, name: str) -> Callable[..., Awaitable[APIResponse[Any]]]:
        method = getattr(self._resource, name)

        async def call(*args: Any, **kwargs: Any) -> APIResponse[Any]:
            with capture() as seen:
                value = method(*args, **kwargs)
                if isinstance(value, AsyncPager) or inspect.isawaitable(value):
                    value = await value
            if not seen:
                raise TypeError(f"{name}() made no call to read a response from")
            return APIResponse(seen[-1].response, value, seen[-1].retries_taken)

        return call
