"""OAuth2 client credentials (RFC 6749 §4.4) as one ``httpx.Auth`` flow.

The flow is a single generator (:meth:`ClientCredentials.auth_flow`), so httpx drives it the
same way from ``httpx.Client`` and ``httpx.AsyncClient``: the token request is yielded to the
client that sends the call itself (one connection pool, the same transport). The token is
cached and renewed ``leeway`` seconds before it expires; a ``401`` on a call (a revoked token,
a rotated key) drops it, fetches a new one and sends the call once more.

Calls that start together while no token is cached wait for one fetch instead of each making
their own (a lock around the fetch: a thread lock for the sync flow, an asyncio lock for the
async one); the flow they then run is the same generator.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, Generator

import httpx

from sinergi_client._exceptions import TokenError
from sinergi_client.models import AccessToken


class ClientCredentials(httpx.Auth):
    requires_response_body = True  # the token reply is read inside the flow

    def __init__(self, client_id: str, client_secret: str, token_url: str, *, scope: str | None = None,
                 leeway: float = 60.0, user_agent: str | None = None) -> None:
        self.client_id = client_id
        self._secret = client_secret
        self.token_url = token_url
        self.scope = scope
        self.leeway = leeway
        self.user_agent = user_agent
        self._lock = threading.Lock()  # the cached token
        self._fetching = threading.Lock()  # one fetch at a time (sync calls)
        self._async_lock: asyncio.Lock | None = None  # the same for async calls, per event loop
        self._async_lock_loop: asyncio.AbstractEventLoop | None = None
        self._token: str | None = None
        self._expires_at = 0.0
        self.tokens_fetched = 0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._cached()
        if token is None:
            token = self._store((yield self._token_request()))
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            self._forget(token)
            token = self._store((yield self._token_request()))
            request.headers["Authorization"] = f"Bearer {token}"
            yield request

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._cached() is None:
            with self._fetching:
                if self._cached() is None:
                    response = yield self._token_request()
                    response.read()
                    self._store(response)
        yield from super().sync_auth_flow(request)

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if self._cached() is None:
            async with self._async_fetching():
                if self._cached() is None:
                    response = yield self._token_request()
                    await response.aread()
                    self._store(response)
        flow = super().async_auth_flow(request)
        outgoing = await flow.__anext__()
        while True:
            incoming = yield outgoing
            try:
                outgoing = await flow.asend(incoming)
            except StopAsyncIteration:
                return

    def _async_fetching(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._async_lock is None or self._async_lock_loop is not loop:
            self._async_lock, self._async_lock_loop = asyncio.Lock(), loop
        return self._async_lock

    def invalidate(self) -> None:
        with self._lock:
            self._token, self._expires_at = None, 0.0

    def _cached(self) -> str | None:
        with self._lock:
            if self._token is not None and time.monotonic() < self._expires_at - self.leeway:
                return self._token
            return None

    def _forget(self, token: str) -> None:
        with self._lock:
            if self._token == token:
                self._token, self._expires_at = None, 0.0

    def _token_request(self) -> httpx.Request:
        data = {"grant_type": "client_credentials"}
        if self.scope:
            data["scope"] = self.scope
        headers = {"Accept": "application/json"}
        if self.user_agent:
            headers["User-Agent"] = self.user_agent
        request = httpx.Request("POST", self.token_url, data=data, headers=headers)
        # client_secret_basic; httpx.BasicAuth builds the header, so nothing is hand-encoded.
        return next(httpx.BasicAuth(self.client_id, self._secret).auth_flow(request))

    def _store(self, response: httpx.Response) -> str:
        if response.status_code != 200:
            raise TokenError(response)
        token = AccessToken.model_validate_json(response.content)
        with self._lock:
            self._token = token.access_token
            self._expires_at = time.monotonic() + token.expires_in
            self.tokens_fetched += 1
        return token.access_token
