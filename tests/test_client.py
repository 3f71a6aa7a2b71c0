"""The partner client against the real app: tokens, typed errors, retries that keep one
Idempotency-Key."""

from __future__ import annotations

import httpx
import pytest

from clients import AsyncClient, NotFoundError, PermissionDeniedError, TokenError


class FlakyTransport(httpx.AsyncBaseTransport):
    """Forwards to the app, but drops the first ``fail`` requests to ``path`` on the floor."""

    def __init__(self, inner: httpx.AsyncBaseTransport, path: str, fail: int) -> None:
        self.inner, self.path, self.fail = inner, path, fail
        self.seen: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == self.path:
            self.seen.append(request)
            if self.fail > 0:
                self.fail -= 1
                raise httpx.ConnectError("connection reset", request=request)
        return await self.inner.handle_async_request(request)


def _http(app, transport=None):
    return httpx.AsyncClient(transport=transport or httpx.ASGITransport(app=app), base_url="http://testserver")


async def test_token_and_typed_errors(app, make_party):
    auditor = await make_party("INSPEKTORAT-KALBAR", "61", ["audit:read"])
    async with AsyncClient("http://testserver", auditor.client_id, auditor.client_secret, http=_http(app)) as c:
        assert (await c.verify_audit())["ok"] is True
        with pytest.raises(PermissionDeniedError) as denied:
            await c.get("/v1/agencies")
        assert denied.value.status_code == 403
        assert denied.value.problem["required_scope"] == "admin"
        assert denied.value.request_id
        with pytest.raises(NotFoundError):
            await c.get("/v1/audit/verify", chain="99")

    async with AsyncClient("http://testserver", auditor.client_id, "wrong", http=_http(app)) as c:
        with pytest.raises(TokenError) as bad:
            await c.verify_audit()
        assert bad.value.error == "invalid_client"


async def test_retry_keeps_one_idempotency_key(app, make_party):
    operator = await make_party("SINERGI-OPERATOR", "61", ["admin"])
    flaky = FlakyTransport(httpx.ASGITransport(app=app), "/v1/agencies", fail=1)
    async with AsyncClient("http://testserver", operator.client_id, operator.client_secret,
                           http=_http(app, flaky), max_retries=2) as c:
        c._delay = lambda attempt, response: 0  # no waiting in tests
        reply = await c.request(
            "POST", "/v1/agencies", json={"code": "DINKES-BENGKAYANG", "name": "Dinas Kesehatan Bengkayang",
                                          "kind": "health", "jurisdiction": "61.07"},
            idempotent_create=True,
        )
        assert reply.status_code == 201
        listed = [a["code"] async for a in c.iter_pages("/v1/agencies", limit=1)]
    assert "DINKES-BENGKAYANG" in listed
    keys = {r.headers["idempotency-key"] for r in flaky.seen if r.method == "POST"}
    assert len(keys) == 1 and len([r for r in flaky.seen if r.method == "POST"]) == 2
