"""The core both clients share, and the sync and async loops that send a call with retries.

Everything that decides (what to send, whether to retry, how long to wait, which error a reply
is) lives in :class:`BaseClient`; :class:`SyncAPIClient` and :class:`AsyncAPIClient` only do the
I/O, one with ``httpx.Client`` and ``time.sleep``, the other with ``httpx.AsyncClient`` and
``asyncio.sleep``.

Retries: connection errors, timeouts, ``408``, ``429`` and ``5xx`` are retried up to
``max_retries`` times, waiting what ``Retry-After`` / ``retry-after-ms`` says (seconds,
milliseconds or an HTTP-date; at most ``max_retry_after``), else an exponential backoff with
jitter. A ``POST`` is retried only when it carries an ``Idempotency-Key`` (every call but a
``GET`` gets one, generated once and kept across its retries, unless the caller passes its
own or ``None``), so a retry never does a thing twice; a ``503`` whose problem says the outcome
is unknown is retried only under a key, whatever the method.

Tokens: every call carries the client's (``auth``), except those to the paths the API serves to
anyone (``/v1/public/``), for which none is fetched or sent.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Generic, TypedDict, TypeVar

import httpx
from pydantic import BaseModel

from sinergi_client._auth import ClientCredentials
from sinergi_client._exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    TokenError,
    is_outcome_unknown,
    parse_problem,
    status_error,
)
from sinergi_client._version import __version__
from sinergi_client.models import Reply

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
DEFAULT_MAX_RETRIES = 2
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
USER_AGENT = f"sinergi-client/{__version__}"
# The API serves these paths to anyone (the public warning list): no token is fetched or sent.
PUBLIC_PREFIX = "/v1/public/"
_NO_AUTH = httpx.Auth()


class _NotGiven:
    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN = _NotGiven()


class RequestOptions(TypedDict, total=False):
    """Per-call options, accepted by every resource method as keyword arguments."""

    timeout: float | httpx.Timeout | None
    max_retries: int
    idempotency_key: str | None  # None: send no key (a POST is then never retried)
    extra_headers: Mapping[str, str]
    extra_query: Mapping[str, Any]


QueryValue = str | int | float | bool | date | datetime | uuid.UUID | list[str] | None


def clean_params(params: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """Query parameters as the API reads them: ``None`` dropped, booleans ``true``/``false``,
    days and times ISO 8601, lists repeated."""
    out: list[tuple[str, str]] = []
    for name, value in (params or {}).items():
        if value is None:
            continue
        values = value if isinstance(value, list | tuple) else [value]
        for v in values:
            if isinstance(v, bool):
                out.append((name, "true" if v else "false"))
            elif isinstance(v, date | datetime):
                out.append((name, v.isoformat()))
            else:
                out.append((name, str(v)))
    return out


def parse_retry_after(headers: httpx.Headers, now: float | None = None) -> float | None:
    """Seconds to wait: ``retry-after-ms``, else ``Retry-After`` as seconds or an HTTP-date."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    return float(email.utils.mktime_tz(parsed)) - (time.time() if now is None else now)


class APIResponse(Generic[T]):
    """A reply with its headers, from ``.with_raw_response``: ``.parse()`` gives the value."""

    def __init__(self, http_response: httpx.Response, parsed: T, retries_taken: int) -> None:
        self.http_response = http_response
        self._parsed = parsed
        self.retries_taken = retries_taken

    def parse(self) -> T:
        return self._parsed

    @property
    def headers(self) -> httpx.Headers:
        return self.http_response.headers

    @property
    def status_code(self) -> int:
        return self.http_response.status_code

    @property
    def request_id(self) -> str | None:
        value: str | None = self.http_response.headers.get("x-request-id")
        return value

    @property
    def etag(self) -> str | None:
        value: str | None = self.http_response.headers.get("etag")
        return value

    @property
    def idempotent_replayed(self) -> bool:
        return str(self.http_response.headers.get("idempotent-replayed", "")).lower() == "true"

    @property
    def request(self) -> httpx.Request:
        return self.http_response.request


@dataclass
class _Sent:
    response: httpx.Response
    retries_taken: int


# The replies of the calls made while a raw-response wrapper runs (see _resource.py).
_captured: ContextVar[list[_Sent] | None] = ContextVar("sinergi_captured", default=None)


@contextmanager
def capture() -> Iterator[list[_Sent]]:
    seen: list[_Sent] = []
    token = _captured.set(seen)
    try:
        yield seen
    finally:
        _captured.reset(token)


class Page(Generic[M]):
    """One page of a list: ``items`` and ``next_cursor``."""

    def __init__(self, items: list[M], next_cursor: str | None) -> None:
        self.items = items
        self.next_cursor = next_cursor

    def has_next_page(self) -> bool:
        return bool(self.next_cursor) and bool(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(items=<{len(self.items)}>, next_cursor={self.next_cursor!r})"


class BaseClient:
    def __init__(
        self,
        *,
        base_url: str,
        client_id: str | None,
        client_secret: str | None,
        scope: str | None,
        timeout: float | httpx.Timeout | None,
        max_retries: int,
        max_retry_after: float,
        default_headers: Mapping[str, str] | None,
        auth: httpx.Auth | None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.max_retry_after = max_retry_after
        self.timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT if timeout is None else timeout
        self.user_agent = USER_AGENT
        self.default_headers = {"User-Agent": self.user_agent, "Accept": "application/json", **(default_headers or {})}
        if auth is None and client_id is not None:
            if client_secret is None:
                raise ValueError("client_secret is needed with client_id")
            auth = ClientCredentials(client_id, client_secret, self.base_url + "/oauth/token", scope=scope,
                                     user_agent=self.user_agent)
        self.auth = auth

    # --- deciding ---------------------------------------------------------------------------

    def _build_request(
        self, http: httpx.Client | httpx.AsyncClient, method: str, path: str, *,
        params: Mapping[str, Any] | None, json: Any, headers: Mapping[str, str] | None,
        options: RequestOptions,
    ) -> httpx.Request:
        merged: dict[str, str] = dict(self.default_headers)
        merged.update(headers or {})
        merged.update(options.get("extra_headers") or {})
        if method != "GET" and "idempotency-key" not in {k.lower() for k in merged}:
            key = options.get("idempotency_key", NOT_GIVEN)
            if isinstance(key, _NotGiven):
                key = str(uuid.uuid4())
            if key is not None:
                merged["Idempotency-Key"] = key
        query: list[tuple[str, str | int | float | bool | None]] = [
            *clean_params(params), *clean_params(options.get("extra_query"))]
        timeout = options["timeout"] if "timeout" in options else self.timeout
        return http.build_request(method, self.base_url + path, params=query or None, json=json,
                                  headers=merged, timeout=timeout)

    def _auth_for(self, path: str) -> httpx.Auth | None:
        return _NO_AUTH if path.startswith(PUBLIC_PREFIX) else self.auth

    @staticmethod
    def _keyed(request: httpx.Request) -> bool:
        return "idempotency-key" in request.headers

    def _may_repeat(self, request: httpx.Request) -> bool:
        return request.method != "POST" or self._keyed(request)

    def _should_retry(self, request: httpx.Request, response: httpx.Response) -> bool:
        status = response.status_code
        if status not in (408, 429) and status < 500:
            return False
        if not self._may_repeat(request):
            return False
        if status == 503 and not self._keyed(request) and is_outcome_unknown(parse_problem(response)):
            return False
        return True

    def _retry_delay(self, retries_taken: int, headers: httpx.Headers | None) -> float:
        if headers is not None:
            after = parse_retry_after(headers)
            if after is not None and after <= self.max_retry_after:
                return max(after, 0.0)
        backoff = min(INITIAL_RETRY_DELAY * 2.0 ** min(retries_taken, 30), MAX_RETRY_DELAY)
        return backoff * (1 - 0.25 * random.random())

    def _max_retries(self, options: RequestOptions) -> int:
        return options.get("max_retries", self.max_retries)

    @staticmethod
    def _record(response: httpx.Response, retries_taken: int) -> None:
        seen = _captured.get()
        if seen is not None:
            seen.append(_Sent(response, retries_taken))

    @staticmethod
    def _parse(response: httpx.Response, cast_to: type[M]) -> M:
        value = cast_to.model_validate_json(response.content)
        etag = response.headers.get("etag")
        if etag and isinstance(value, Reply):
            value._etag = etag
        return value


def _final_error(exc: Exception, request: httpx.Request) -> Exception:
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(request)
    if isinstance(exc, httpx.TransportError):
        return APIConnectionError(request, f"Connection error: {exc}")
    return exc


def _retryable_exception(exc: Exception) -> httpx.Response | None | bool:
    """False: not retryable; True: retryable, no reply; a reply: retryable, read its headers."""
    if isinstance(exc, httpx.TransportError):
        return True
    if isinstance(exc, TokenError) and (exc.status_code in (408, 429) or exc.status_code >= 500):
        return exc.response
    return False


class SyncAPIClient(BaseClient):
    _http: httpx.Client

    def __init__(self, *, http_client: httpx.Client | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=self.timeout, follow_redirects=False)
        self._sleep: Callable[[float], None] = time.sleep

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def send(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
             headers: Mapping[str, str] | None = None, options: RequestOptions | None = None) -> httpx.Response:
        options = options or {}
        request = self._build_request(self._http, method, path, params=params, json=json, headers=headers,
                                      options=options)
        max_retries, auth = self._max_retries(options), self._auth_for(path)
        retries = 0
        while True:
            try:
                response = self._http.send(request, auth=auth)
            except (httpx.TransportError, TokenError) as exc:
                retry = _retryable_exception(exc)
                if retry is False or retries >= max_retries or not self._may_repeat(request):
                    raise _final_error(exc, request) from exc
                self._sleep(self._retry_delay(retries, retry.headers if isinstance(retry, httpx.Response) else None))
                retries += 1
                continue
            if response.is_success:
                self._record(response, retries)
                return response
            if retries < max_retries and self._should_retry(request, response):
                response.close()
                self._sleep(self._retry_delay(retries, response.headers))
                retries += 1
                continue
            response.read()
            raise status_error(response)

    def get(self, path: str, cast_to: type[M], *, params: Mapping[str, Any] | None = None,
            headers: Mapping[str, str] | None = None, options: RequestOptions | None = None) -> M:
        return self._parse(self.send("GET", path, params=params, headers=headers, options=options), cast_to)

    def post(self, path: str, cast_to: type[M], *, body: Any = None, params: Mapping[str, Any] | None = None,
             headers: Mapping[str, str] | None = None, options: RequestOptions | None = None) -> M:
        return self._parse(self.send("POST", path, json=body, params=params, headers=headers, options=options),
                           cast_to)

    def page(self, path: str, item: type[M], *, params: Mapping[str, Any], options: RequestOptions | None,
             ) -> SyncPage[M]:
        reply = self.send("GET", path, params=params, options=options)
        body = _PageBody[item].model_validate_json(reply.content)  # type: ignore[valid-type]
        return SyncPage(body.items, body.next_cursor, self, path, item, dict(params), options)


class AsyncAPIClient(BaseClient):
    _http: httpx.AsyncClient

    def __init__(self, *, http_client: httpx.AsyncClient | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def send(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
                   headers: Mapping[str, str] | None = None, options: RequestOptions | None = None,
                   ) -> httpx.Response:
        options = options or {}
        request = self._build_request(self._http, method, path, params=params, json=json, headers=headers,
                                      options=options)
        max_retries, auth = self._max_retries(options), self._auth_for(path)
        retries = 0
        while True:
            try:
                response = await self._http.send(request, auth=auth)
            except (httpx.TransportError, TokenError) as exc:
                retry = _retryable_exception(exc)
                if retry is False or retries >= max_retries or not self._may_repeat(request):
                    raise _final_error(exc, request) from exc
                await self._sleep(self._retry_delay(retries, retry.headers if isinstance(retry, httpx.Response)
                                                    else None))
                retries += 1
                continue
            if response.is_success:
                self._record(response, retries)
                return response
            if retries < max_retries and self._should_retry(request, response):
                await response.aclose()
                await self._sleep(self._retry_delay(retries, response.headers))
                retries += 1
                continue
            await response.aread()
            raise status_error(response)

    async def get(self, path: str, cast_to: type[M], *, params: Mapping[str, Any] | None = None,
                  headers: Mapping[str, str] | None = None, options: RequestOptions | None = None) -> M:
        return self._parse(await self.send("GET", path, params=params, headers=headers, options=options), cast_to)

    async def post(self, path: str, cast_to: type[M], *, body: Any = None, params: Mapping[str, Any] | None = None,
                   headers: Mapping[str, str] | None = None, options: RequestOptions | None = None) -> M:
        reply = await self.send("POST", path, json=body, params=params, headers=headers, options=options)
        return self._parse(reply, cast_to)

    def page(self, path: str, item: type[M], *, params: Mapping[str, Any], options: RequestOptions | None,
             ) -> AsyncPager[M]:
        return AsyncPager(self, path, item, dict(params), options)

    async def first_page(self, path: str, item: type[M], params: dict[str, Any], options: RequestOptions | None,
                         ) -> AsyncPage[M]:
        reply = await self.send("GET", path, params=params, options=options)
        body = _PageBody[item].model_validate_json(reply.content)  # type: ignore[valid-type]
        return AsyncPage(body.items, body.next_cursor, self, path, item, params, options)


class _PageBody(BaseModel, Generic[M]):
    items: list[M]
    next_cursor: str | None = None


class SyncPage(Page[M]):
    """A page; iterating it walks every item of every following page (auto-pagination)."""

    def __init__(self, items: list[M], next_cursor: str | None, client: SyncAPIClient, path: str, item: type[M],
                 params: dict[str, Any], options: RequestOptions | None) -> None:
        super().__init__(items, next_cursor)
        self._client, self._path, self._item, self._params, self._options = client, path, item, params, options

    def get_next_page(self) -> SyncPage[M]:
        if not self.next_cursor:
            raise RuntimeError("no next page")
        return self._client.page(self._path, self._item, params={**self._params, "cursor": self.next_cursor},
                                 options=self._options)

    def iter_pages(self) -> Iterator[SyncPage[M]]:
        page = self
        while True:
            yield page
            if not page.has_next_page():
                return
            page = page.get_next_page()

    def __iter__(self) -> Iterator[M]:
        for page in self.iter_pages():
            yield from page.items


class AsyncPage(Page[M]):
    def __init__(self, items: list[M], next_cursor: str | None, client: AsyncAPIClient, path: str, item: type[M],
                 params: dict[str, Any], options: RequestOptions | None) -> None:
        super().__init__(items, next_cursor)
        self._client, self._path, self._item, self._params, self._options = client, path, item, params, options

    async def get_next_page(self) -> AsyncPage[M]:
        if not self.next_cursor:
            raise RuntimeError("no next page")
        return await self._client.first_page(self._path, self._item, {**self._params, "cursor": self.next_cursor},
                                             self._options)

    async def iter_pages(self) -> AsyncIterator[AsyncPage[M]]:
        page = self
        while True:
            yield page
            if not page.has_next_page():
                return
            page = await page.get_next_page()


class AsyncPager(Generic[M]):
    """What an async ``list()`` returns: ``await`` it for the first page, or ``async for`` over it
    for every item of every page."""

    def __init__(self, client: AsyncAPIClient, path: str, item: type[M], params: dict[str, Any],
                 options: RequestOptions | None) -> None:
        self._client, self._path, self._item, self._params, self._options = client, path, item, params, options

    def __await__(self) -> Generator[Any, None, AsyncPage[M]]:
        return self._client.first_page(self._path, self._item, self._params, self._options).__await__()

    async def __aiter__(self) -> AsyncIterator[M]:
        page = await self._client.first_page(self._path, self._item, self._params, self._options)
        while True:
            for item in page.items:
                yield item
            if not page.has_next_page():
                return
            page = await page.get_next_page()


__all__ = [
    "NOT_GIVEN", "APIResponse", "APIStatusError", "AsyncAPIClient", "AsyncPage", "AsyncPager", "Page",
    "RequestOptions", "SyncAPIClient", "SyncPage", "capture",
]
