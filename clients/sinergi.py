"""Typed httpx clients for partner systems: :class:`Client` (sync) and :class:`AsyncClient`.

Both share one base: OAuth2 client-credentials tokens fetched and renewed before they expire,
one reused ``httpx`` connection pool per client object, retries with exponential backoff and
jitter on connection errors, 429 and 5xx (honouring ``Retry-After``), and one
``Idempotency-Key`` kept across the retries of a creating ``POST`` so a retry never creates a
record twice.

Exceptions::

    SinergiError
    ├── APIConnectionError          the service could not be reached
    ├── TokenError                  the token endpoint refused the client (RFC 6749 error)
    └── APIStatusError              a problem+json reply; .status_code, .problem, .request_id
        ├── BadRequestError         400
        ├── AuthenticationError     401
        ├── PermissionDeniedError   403
        ├── NotFoundError           404
        ├── ConflictError           409
        ├── PreconditionFailedError 412 / 428
        ├── UnprocessableEntityError 422
        ├── RateLimitError          429
        └── InternalServerError     5xx

Example::

    with Client("https://sinergi.example", client_id, client_secret) as sinergi:
        reply = sinergi.push_returnees([{...}], notify=True)
        for returnee in sinergi.iter_returnees(district="61.07"):
            ...
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import httpx

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ConflictError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "PreconditionFailedError",
    "RateLimitError",
    "SinergiError",
    "TokenError",
    "UnprocessableEntityError",
]


class SinergiError(Exception):
    pass


class APIConnectionError(SinergiError):
    pass


class TokenError(SinergiError):
    def __init__(self, error: str, description: str | None = None) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error


class APIStatusError(SinergiError):
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.status_code = response.status_code
        self.request_id = response.headers.get("x-request-id")
        try:
            self.problem: dict[str, Any] = response.json()
        except ValueError:
            self.problem = {"status": response.status_code, "detail": response.text[:500]}
        detail = self.problem.get("detail") or self.problem.get("title") or response.reason_phrase
        super().__init__(f"{response.status_code} {detail} (request {self.request_id})")


class BadRequestError(APIStatusError): ...
class AuthenticationError(APIStatusError): ...
class PermissionDeniedError(APIStatusError): ...
class NotFoundError(APIStatusError): ...
class ConflictError(APIStatusError): ...
class PreconditionFailedError(APIStatusError): ...
class UnprocessableEntityError(APIStatusError): ...
class RateLimitError(APIStatusError): ...
class InternalServerError(APIStatusError): ...


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    412: PreconditionFailedError,
    428: PreconditionFailedError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}

_RETRY_STATUSES = frozenset({429, 502, 503, 504})


def _error_for(response: httpx.Response) -> APIStatusError:
    cls = _BY_STATUS.get(response.status_code)
    if cls is None:
        cls = InternalServerError if response.status_code >= 500 else APIStatusError
    return cls(response)


class _Base:
    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str | None = None,
        max_retries: int = 3,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.scope = scope
        self.max_retries = max_retries
        self.timeout = timeout
        self._token: str | None = None
        self._token_expires = 0.0

    def _token_request(self) -> tuple[dict[str, str], tuple[str, str]]:
        data = {"grant_type": "client_credentials"}
        if self.scope:
            data["scope"] = self.scope
        return data, (self.client_id, self.client_secret)

    def _store_token(self, response: httpx.Response) -> str:
        if response.status_code != 200:
            try:
                body = response.json()
            except ValueError:
                body = {}
            raise TokenError(body.get("error", f"http_{response.status_code}"), body.get("error_description"))
        body = response.json()
        self._token = body["access_token"]
        # renew a little before it expires
        self._token_expires = time.monotonic() + max(0, int(body.get("expires_in", 300)) - 30)
        return self._token

    def _token_valid(self) -> bool:
        return self._token is not None and time.monotonic() < self._token_expires

    @staticmethod
    def _headers(token: str, idempotency_key: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        if extra:
            headers.update(extra)
        return headers

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            retry_after = response.headers.get("retry-after")
            if retry_after and retry_after.isdigit():
                return min(float(retry_after), 60.0)
        return min(0.5 * 2**attempt, 8.0) * (0.5 + random.random() / 2)

    @staticmethod
    def _should_retry(response: httpx.Response) -> bool:
        return response.status_code in _RETRY_STATUSES or response.status_code >= 500


class Client(_Base):
    """Synchronous client; reuse one per process (it keeps a connection pool)."""

    def __init__(self, base_url: str, client_id: str, client_secret: str, *,
                 http: httpx.Client | None = None, **kw: Any) -> None:
        super().__init__(base_url, client_id, client_secret, **kw)
        self._http = http or httpx.Client(base_url=self.base_url, timeout=self.timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def token(self) -> str:
        if not self._token_valid():
            data, auth = self._token_request()
            try:
                response = self._http.post("/oauth/token", data=data, auth=auth)
            except httpx.TransportError as exc:
                raise APIConnectionError(str(exc)) from exc
            self._store_token(response)
        assert self._token is not None
        return self._token

    def request(self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None, idempotent_create: bool = False) -> httpx.Response:
        key = str(uuid.uuid4()) if idempotent_create else None
        response: httpx.Response | None = None
        for attempt in range(self.max_retries + 1):
            try:
                response = self._http.request(method, path, json=json, params=params,
                                              headers=self._headers(self.token(), key, headers))
            except httpx.TransportError as exc:
                if attempt == self.max_retries:
                    raise APIConnectionError(str(exc)) from exc
                time.sleep(self._delay(attempt, None))
                continue
            if response.status_code == 401 and attempt == 0:
                self._token = None  # revoked or expired early: one fresh token
                continue
            if self._should_retry(response) and attempt < self.max_retries:
                time.sleep(self._delay(attempt, response))
                continue
            break
        assert response is not None
        if response.status_code >= 400:
            raise _error_for(response)
        return response

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None}).json()

    def iter_pages(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a keyset-paginated list."""
        cursor = None
        while True:
            page = self.get(path, cursor=cursor, **params)
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    # --- resources ---------------------------------------------------------------------
    def push_returnees(self, records: list[dict[str, Any]], *, notify: bool = False) -> dict[str, Any]:
        return self.request("POST", "/v1/returnees/batch", json={"records": records},
                            params={"notify": "true"} if notify else None, idempotent_create=True).json()

    def iter_returnees(self, **filters: Any) -> Iterator[dict[str, Any]]:
        return self.iter_pages("/v1/returnees", **filters)

    def events(self, after: str | None = None, limit: int = 100) -> dict[str, Any]:
        return self.get("/v1/events", after=after, limit=limit)

    def verify_audit(self) -> dict[str, Any]:
        return self.get("/v1/audit/verify")


class AsyncClient(_Base):
    """Asynchronous twin of :class:`Client`."""

    def __init__(self, base_url: str, client_id: str, client_secret: str, *,
                 http: httpx.AsyncClient | None = None, **kw: Any) -> None:
        super().__init__(base_url, client_id, client_secret, **kw)
        self._http = http or httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout)
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def token(self) -> str:
        async with self._lock:
            if not self._token_valid():
                data, auth = self._token_request()
                try:
                    response = await self._http.post("/oauth/token", data=data, auth=auth)
                except httpx.TransportError as exc:
                    raise APIConnectionError(str(exc)) from exc
                self._store_token(response)
        assert self._token is not None
        return self._token

    async def request(self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None,
                      headers: Mapping[str, str] | None = None, idempotent_create: bool = False) -> httpx.Response:
        key = str(uuid.uuid4()) if idempotent_create else None
        response: httpx.Response | None = None
        for attempt in range(self.max_retries + 1):
            try:
                response = await self._http.request(method, path, json=json, params=params,
                                                    headers=self._headers(await self.token(), key, headers))
            except httpx.TransportError as exc:
                if attempt == self.max_retries:
                    raise APIConnectionError(str(exc)) from exc
                await asyncio.sleep(self._delay(attempt, None))
                continue
            if response.status_code == 401 and attempt == 0:
                self._token = None
                continue
            if self._should_retry(response) and attempt < self.max_retries:
                await asyncio.sleep(self._delay(attempt, response))
                continue
            break
        assert response is not None
        if response.status_code >= 400:
            raise _error_for(response)
        return response

    async def get(self, path: str, **params: Any) -> Any:
        return (await self.request("GET", path, params={k: v for k, v in params.items() if v is not None})).json()

    async def iter_pages(self, path: str, **params: Any) -> AsyncIterator[dict[str, Any]]:
        cursor = None
        while True:
            page = await self.get(path, cursor=cursor, **params)
            for item in page["items"]:
                yield item
            cursor = page.get("next_cursor")
            if not cursor:
                return

    async def push_returnees(self, records: list[dict[str, Any]], *, notify: bool = False) -> dict[str, Any]:
        response = await self.request("POST", "/v1/returnees/batch", json={"records": records},
                                      params={"notify": "true"} if notify else None, idempotent_create=True)
        return response.json()

    def iter_returnees(self, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        return self.iter_pages("/v1/returnees", **filters)

    async def events(self, after: str | None = None, limit: int = 100) -> dict[str, Any]:
        return await self.get("/v1/events", after=after, limit=limit)

    async def verify_audit(self) -> dict[str, Any]:
        return await self.get("/v1/audit/verify")
