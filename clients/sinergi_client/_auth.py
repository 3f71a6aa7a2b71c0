"""OAuth2 client credentials (RFC 6749 §4.4) as one ``httpx.Auth`` flow.

The flow is a single generator (:meth:`ClientCredentials.auth_flow`), so httpx drives it the
same way from ``httpx.Client`` and ``httpx.AsyncClient``: the token request is yielded to the
client that sends the call itself (one connection pool, the same transport). The token is
cached and renewed ``leeway`` seconds before it expires; a ``401`` on a call (a revoked token,
a rotated key) drops it, fetches a new one and sends the call once more.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator

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
        self._lock = threading.Lock()
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
