"""The clients: :class:`Sinergi` (sync) and :class:`AsyncSinergi`, twins over one core."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Self

import httpx

from sinergi_client._base_client import DEFAULT_MAX_RETRIES, AsyncAPIClient, SyncAPIClient
from sinergi_client.resources import (
    Agencies,
    Alerts,
    AsyncAgencies,
    AsyncAlerts,
    AsyncAudit,
    AsyncEvents,
    AsyncManifests,
    AsyncNotices,
    AsyncReferrals,
    AsyncRegions,
    AsyncRegister,
    AsyncReturnees,
    AsyncStatistics,
    AsyncWebhooks,
    Audit,
    Events,
    Manifests,
    Notices,
    Referrals,
    Regions,
    Register,
    Returnees,
    Statistics,
    Webhooks,
)


def _settings(base_url: str | None, client_id: str | None, client_secret: str | None,
              ) -> tuple[str, str | None, str | None]:
    url = base_url or os.environ.get("SINERGI_BASE_URL")
    if not url:
        raise ValueError("base_url is needed (or SINERGI_BASE_URL)")
    return (url, client_id or os.environ.get("SINERGI_CLIENT_ID"),
            client_secret or os.environ.get("SINERGI_CLIENT_SECRET"))


class _WithOptions:
    """``with_options``, the same for both twins: a copy of the client with other defaults and
    its namespaces wired to it."""

    timeout: float | httpx.Timeout | None
    max_retries: int
    default_headers: dict[str, str]
    _owns_http: bool

    def _wire(self) -> None:
        raise NotImplementedError

    def with_options(self, *, timeout: float | httpx.Timeout | None = None, max_retries: int | None = None,
                     default_headers: Mapping[str, str] | None = None) -> Self:
        """A copy with other defaults, sharing this client's connection pool and token."""
        other = self.__class__.__new__(self.__class__)
        other.__dict__.update(self.__dict__)
        other._owns_http = False  # closing the copy leaves the pool to this client
        if timeout is not None:
            other.timeout = timeout
        if max_retries is not None:
            other.max_retries = max_retries
        if default_headers:
            other.default_headers = {**self.default_headers, **default_headers}
        other._wire()
        return other


class Sinergi(_WithOptions, SyncAPIClient):
    """``Sinergi(base_url, client_id, client_secret)``; a context manager that closes its pool.

    Options: ``scope`` (a subset of the client's scopes), ``timeout`` (seconds or an
    ``httpx.Timeout``), ``max_retries`` (default 2), ``max_retry_after`` (the longest
    ``Retry-After`` waited, seconds), ``default_headers``, ``http_client`` (your own
    ``httpx.Client``), ``auth`` (your own ``httpx.Auth`` instead of client credentials).
    """

    def __init__(self, base_url: str | None = None, client_id: str | None = None,
                 client_secret: str | None = None, *, scope: str | None = None,
                 timeout: float | httpx.Timeout | None = None, max_retries: int = DEFAULT_MAX_RETRIES,
                 max_retry_after: float = 60.0, default_headers: Mapping[str, str] | None = None,
                 http_client: httpx.Client | None = None, auth: httpx.Auth | None = None) -> None:
        url, cid, secret = _settings(base_url, client_id, client_secret)
        super().__init__(base_url=url, client_id=cid, client_secret=secret, scope=scope, timeout=timeout,
                         max_retries=max_retries, max_retry_after=max_retry_after,
                         default_headers=default_headers, auth=auth, http_client=http_client)
        self._wire()

    def _wire(self) -> None:
        self.returnees = Returnees(self)
        self.notices = Notices(self)
        self.referrals = Referrals(self)
        self.stats = Statistics(self)
        self.audit = Audit(self)
        self.events = Events(self)
        self.webhooks = Webhooks(self)
        self.agencies = Agencies(self)
        self.regions = Regions(self)
        self.manifests = Manifests(self)
        self.register = Register(self)
        self.alerts = Alerts(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class AsyncSinergi(_WithOptions, AsyncAPIClient):
    """The async twin of :class:`Sinergi` (``async with AsyncSinergi(...) as client``)."""

    def __init__(self, base_url: str | None = None, client_id: str | None = None,
                 client_secret: str | None = None, *, scope: str | None = None,
                 timeout: float | httpx.Timeout | None = None, max_retries: int = DEFAULT_MAX_RETRIES,
                 max_retry_after: float = 60.0, default_headers: Mapping[str, str] | None = None,
                 http_client: httpx.AsyncClient | None = None, auth: httpx.Auth | None = None) -> None:
        url, cid, secret = _settings(base_url, client_id, client_secret)
        super().__init__(base_url=url, client_id=cid, client_secret=secret, scope=scope, timeout=timeout,
                         max_retries=max_retries, max_retry_after=max_retry_after,
                         default_headers=default_headers, auth=auth, http_client=http_client)
        self._wire()

    def _wire(self) -> None:
        self.returnees = AsyncReturnees(self)
        self.notices = AsyncNotices(self)
        self.referrals = AsyncReferrals(self)
        self.stats = AsyncStatistics(self)
        self.audit = AsyncAudit(self)
        self.events = AsyncEvents(self)
        self.webhooks = AsyncWebhooks(self)
        self.agencies = AsyncAgencies(self)
        self.regions = AsyncRegions(self)
        self.manifests = AsyncManifests(self)
        self.register = AsyncRegister(self)
        self.alerts = AsyncAlerts(self)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
