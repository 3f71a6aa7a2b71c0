"""Retry timing and the rules of what may be sent twice. The statuses here (408, 5xx, a
Retry-After in milliseconds or as a date) are ones the real server cannot be made to send on
demand, so these run against a local httpx.MockTransport; the live server's 503 retry is in
tests/test_sdk.py."""

from __future__ import annotations

import email.utils
import json
import time

import httpx
import pytest

from sinergi_client import (
    APIConnectionError,
    APITimeoutError,
    AsyncSinergi,
    InternalServerError,
    NotFoundError,
    OutcomeUnknownError,
    RateLimitError,
    Sinergi,
)
from sinergi_client._base_client import parse_retry_after

TOKEN = {"access_token": "t", "token_type": "Bearer", "expires_in": 300, "scope": "referrals:write"}
REFERRAL = {"id": "6f1c1e6e-5d7e-4a8e-9a57-5b2b9f3f3b11"}


class Script:
    """Replies in order to the calls to ``path`` (the token endpoint always answers)."""

    def __init__(self, *replies: httpx.Response | Exception) -> None:
        self.replies = list(replies)
        self.calls: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json=TOKEN)
        self.calls.append(request)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply


def problem(status: int, type_: str = "/problems/unavailable", **headers: str) -> httpx.Response:
    named = {k.replace("_", "-"): v for k, v in headers.items()}
    return httpx.Response(status, headers={"content-type": "application/problem+json", **named},
                          content=json.dumps({"type": type_, "title": "t", "status": status}).encode())


def ok() -> httpx.Response:
    return httpx.Response(200, json={"ok": True, "chain": "61", "checked": 1, "head": {"seq": 1, "hash": "h"},
                                     "first_bad_seq": None})


def client(script: Script, **kwargs) -> tuple[Sinergi, list[float]]:
    c = Sinergi("http://sinergi.test", "id", "secret", http_client=httpx.Client(transport=httpx.MockTransport(script)),
                **kwargs)
    waits: list[float] = []
    c._sleep = waits.append
    return c, waits


def test_retry_after_in_seconds_milliseconds_and_as_a_date():
    assert parse_retry_after(httpx.Headers({"retry-after": "3"})) == 3.0
    assert parse_retry_after(httpx.Headers({"retry-after-ms": "250", "retry-after": "9"})) == 0.25
    now = time.time()
    when = email.utils.formatdate(now + 7, usegmt=True)
    assert 5.5 <= parse_retry_after(httpx.Headers({"retry-after": when}), now=now) <= 7.0
    assert parse_retry_after(httpx.Headers({"retry-after": "soon"})) is None

    script = Script(problem(429, retry_after="2"), problem(503, **{"retry-after-ms": "150"}),
                    problem(502, retry_after=email.utils.formatdate(time.time() + 4, usegmt=True)), ok())
    c, waits = client(script, max_retries=3)
    assert c.audit.verify().ok
    assert waits[0] == 2.0 and waits[1] == 0.15 and 2.5 < waits[2] <= 4.0


def test_backoff_grows_with_jitter_and_gives_up_with_the_typed_error():
    script = Script(problem(500), problem(500), problem(500), problem(500))
    c, waits = client(script, max_retries=3)
    with pytest.raises(InternalServerError) as failed:
        c.audit.verify()
    assert failed.value.status_code == 500 and len(script.calls) == 4
    assert 0.375 <= waits[0] <= 0.5 and 0.75 <= waits[1] <= 1.0 and 1.5 <= waits[2] <= 2.0
    # A Retry-After past max_retry_after falls back to the backoff.
    c, waits = client(Script(problem(429, retry_after="3600"), ok()), max_retry_after=60)
    assert c.audit.verify().ok and waits[0] <= 0.5


def test_408_and_connection_errors_are_retried_and_a_timeout_is_its_own_error():
    script = Script(problem(408), httpx.ConnectError("refused"), ok())
    c, waits = client(script)
    assert c.audit.verify().ok and len(waits) == 2
    c, _ = client(Script(httpx.ReadTimeout("slow"), httpx.ReadTimeout("slow"), httpx.ReadTimeout("slow")))
    with pytest.raises(APITimeoutError):
        c.audit.verify()
    c, _ = client(Script(httpx.ConnectError("refused")), max_retries=0)
    with pytest.raises(APIConnectionError):
        c.audit.verify()


def test_a_post_is_retried_only_under_one_idempotency_key():
    created = httpx.Response(201, json=REFERRAL | _referral())
    script = Script(httpx.RemoteProtocolError("cut"), problem(503), created)
    c, _ = client(script)
    c.referrals.create(to_agency="POLRES-BENGKAYANG", reason="other", legal_basis="UU-21-2007:51")
    keys = {r.headers["idempotency-key"] for r in script.calls}
    assert len(script.calls) == 3 and len(keys) == 1

    script = Script(httpx.Response(201, json=REFERRAL | _referral()))
    c, _ = client(script)
    c.referrals.create(to_agency="X", reason="other", legal_basis="UU-21-2007:51", idempotency_key="file.csv:7")
    assert script.calls[0].headers["idempotency-key"] == "file.csv:7"

    # Without a key (the caller said None) a POST is sent once, whatever happens.
    script = Script(problem(503))
    c, _ = client(script)
    with pytest.raises(InternalServerError):
        c.referrals.create(to_agency="X", reason="other", legal_basis="UU-21-2007:51", idempotency_key=None)
    assert len(script.calls) == 1 and "idempotency-key" not in script.calls[0].headers
    script = Script(httpx.RemoteProtocolError("cut"))
    c, _ = client(script)
    with pytest.raises(APIConnectionError):
        c.referrals.create(to_agency="X", reason="other", legal_basis="UU-21-2007:51", idempotency_key=None)
    assert len(script.calls) == 1


def test_an_unknown_outcome_is_retried_only_under_a_key():
    script = Script(problem(503, "/problems/outcome-unknown"), problem(503, "/problems/outcome-unknown"))
    c, _ = client(script, max_retries=1)
    with pytest.raises(OutcomeUnknownError):
        c.referrals.create(to_agency="X", reason="other", legal_basis="UU-21-2007:51")
    assert len(script.calls) == 2 and len({r.headers["idempotency-key"] for r in script.calls}) == 1
    # A DELETE without a key would be sent again on a 503 but not on an unknown outcome.
    script = Script(problem(503, "/problems/outcome-unknown"))
    c, _ = client(script)
    with pytest.raises(OutcomeUnknownError):
        c.webhooks.delete("6f1c1e6e-5d7e-4a8e-9a57-5b2b9f3f3b11", idempotency_key=None)
    assert len(script.calls) == 1


def test_4xx_other_than_408_and_429_are_not_retried():
    script = Script(problem(429, retry_after="1"))
    c, _ = client(script, max_retries=0)
    with pytest.raises(RateLimitError) as limited:
        c.audit.verify()
    assert limited.value.retry_after == 1.0
    script = Script(problem(404, "/problems/not-found"))
    c, waits = client(script)
    with pytest.raises(NotFoundError):
        c.audit.verify()
    assert len(script.calls) == 1 and waits == []


async def test_the_async_twin_retries_the_same_way():
    script = Script(problem(429, retry_after="1"), httpx.ConnectError("refused"), ok())
    c = AsyncSinergi("http://sinergi.test", "id", "secret",
                     http_client=httpx.AsyncClient(transport=httpx.MockTransport(script)))
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    c._sleep = record
    assert (await c.audit.verify()).ok
    assert waits[0] == 1.0 and len(waits) == 2


def _referral() -> dict:
    return {"sender_ref": None, "from_agency": "BP3MI-KALBAR", "to_agency": "POLRES-BENGKAYANG", "status": "requested",
            "returnee_id": None, "subject": None, "reason": "other", "legal_basis": "UU-21-2007:51",
            "urgency": "normal", "note": None, "consent": {"given": False}, "consent_status": "not_given",
            "processing_basis": "legal_obligation", "due_at": "2025-06-01T00:00:00Z", "overdue": False,
            "created_at": "2025-06-01T00:00:00Z", "updated_at": "2025-06-01T00:00:00Z", "closed_at": None,
            "version": 1, "history": []}
