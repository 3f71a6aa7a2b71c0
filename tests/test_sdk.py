"""The partner client (clients/, ``sinergi_client``) against a real uvicorn server: typed
errors, tokens, ETags, idempotent retries, pagination, raw replies, sync and async."""

from __future__ import annotations

import asyncio
import email.utils
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import httpx
import orjson
import pytest

import sinergi_client
from sinergi_client import (
    AsyncSinergi,
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
    PreconditionRequiredError,
    RateLimitError,
    Sinergi,
    TokenError,
    UnprocessableEntityError,
)
from tests.live import Live, LosingFront, front, live_world, serve

BP3MI, POLRES, DP3A, AUDITOR = "BP3MI-KALBAR", "POLRES-BENGKAYANG", "DP3A-KALBAR", "INSPEKTORAT-KALBAR"


@pytest.fixture(scope="module")
def live(module_demo) -> Iterator[Live]:
    with live_world(module_demo) as world:
        yield world


def referral_args(**extra):
    return {"to_agency": POLRES, "reason": "suspected_tppo_victim", "legal_basis": "UU-21-2007:51",
            "urgency": "high", "subject": {"full_name": "Rina", "sex": "F", "district": "61.07.07"},
            "consent": {"given": True, "given_by": "Rina (the subject)", "given_at": "2025-05-20T03:00:00Z",
                        "method": "written"}, **extra}


def record(ref: str, **extra):
    return {"source_ref": ref, "full_name": "Siti Aminah", "sex": "F", "origin_district": "61.07",
            "return_type": "deported", "return_date": "2025-06-01", **extra}


def test_typed_errors_by_status(live):
    with live.client(POLRES) as polres, live.client(BP3MI) as bp3mi, live.client(DP3A) as dp3a:
        with pytest.raises(PermissionDeniedError) as denied:  # 403: DP3A Provinsi has no referrals:read
            dp3a.referrals.list()
        assert denied.value.status_code == 403 and denied.value.request_id
        assert denied.value.type.endswith("/problems/insufficient-scope")
        assert denied.value.problem.status == 403 and denied.value.title

        with pytest.raises(NotFoundError) as missing:  # 404
            polres.referrals.get(uuid.uuid4())
        assert missing.value.problem.type.endswith("/problems/not-found")

        with pytest.raises(UnprocessableEntityError) as invalid:  # 422 with its field errors
            bp3mi.referrals.create(**referral_args(legal_basis="article 51"))
        assert [e.field for e in invalid.value.errors] == ["legal_basis"]
        assert invalid.value.errors[0].message

        referral = bp3mi.referrals.create(**referral_args(note="typed errors"))
        with pytest.raises(PreconditionRequiredError) as no_tag:  # 428: a bare id carries no ETag
            polres.referrals.transition(str(referral.id), "receive")
        assert no_tag.value.status_code == 428
        with pytest.raises(ConflictError):  # 409: the state machine has no requested -> completed
            polres.referrals.complete(referral)
        received = polres.referrals.receive(referral)
        assert received.status == "received" and received.etag == f'"{received.version}"'
        with pytest.raises(PreconditionFailedError) as stale:  # 412: decided on the old version
            polres.referrals.accept(referral)
        assert stale.value.status_code == 412 and stale.value.detail

    with Sinergi(live.url, auth=_Bearer("not-a-token"), max_retries=0) as anonymous:  # 401
        with pytest.raises(AuthenticationError) as unauthenticated:
            anonymous.audit.verify()
        assert unauthenticated.value.response.headers["www-authenticate"].startswith("Bearer")
    with Sinergi(live.url, live.creds[AUDITOR]["client_id"], "wrong") as wrong:
        with pytest.raises(TokenError) as refused:
            wrong.audit.verify()
        assert refused.value.error == "invalid_client"


class _Bearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request):
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


def test_rate_limit_is_a_typed_error(live):
    creds = live.creds[AUDITOR]
    with serve(live.database_url, SINERGI_RATE_CLIENT="3") as base:  # a second server, a low limit
        with Sinergi(base, creds["client_id"], creds["client_secret"], max_retries=0) as c:
            with pytest.raises(RateLimitError) as limited:
                for _ in range(10):
                    c.audit.verify()
    assert limited.value.status_code == 429 and limited.value.retry_after and limited.value.retry_after > 0
    assert limited.value.type.endswith("/problems/too-many-requests") and limited.value.problem.status == 429


def test_token_cached_and_renewed_after_a_401(live):
    with live.client(AUDITOR) as c:
        for _ in range(3):
            assert c.audit.verify().ok
        assert c.auth.tokens_fetched == 1
        token = c.auth._token
        r = httpx.post(live.url + "/oauth/revoke", data={"token": token},
                       auth=(live.creds[AUDITOR]["client_id"], live.creds[AUDITOR]["client_secret"]))
        assert r.status_code == 200
        assert c.audit.verify().ok  # the 401 drops the token, a new one is fetched, the call sent again
        assert c.auth.tokens_fetched == 2 and c.auth._token != token


def test_user_agent_and_idempotency_key_on_every_write(live):
    sent: list[httpx.Request] = []
    http = httpx.Client(event_hooks={"request": [sent.append]})
    with live.client(BP3MI, http_client=http) as c:
        c.referrals.create(**referral_args(note="headers"))
        c.referrals.list(limit=1)
    http.close()
    api = [r for r in sent if r.url.path.startswith("/v1/")]
    assert {r.headers["user-agent"] for r in sent} == {f"sinergi-client/{sinergi_client.__version__}"}
    assert "idempotency-key" in api[0].headers and "idempotency-key" not in api[1].headers


def test_raw_response_headers_and_keyed_push_replayed(live):
    with live.client(BP3MI) as c:
        key = f"manifest-{uuid.uuid4().hex[:8]}.csv:1"
        first = c.returnees.with_raw_response.push([record("RAW-1"), record("RAW-2", sex="X")], idempotency_key=key)
        again = c.returnees.with_raw_response.push([record("RAW-1"), record("RAW-2", sex="X")], idempotency_key=key)
        assert not first.idempotent_replayed and again.idempotent_replayed
        assert first.request_id and again.request_id and first.request_id != again.request_id
        result = first.parse()
        assert [r.status for r in result.results] == ["created", "rejected"]
        assert result.rejected[0].index == 1 and result.rejected[0].errors[0].field == "sex"
        assert again.parse().results == result.results

        referral = c.referrals.create(**referral_args(note="raw"))
        raw = c.referrals.with_raw_response.get(referral)
        assert raw.status_code == 200 and raw.etag == f'"{referral.version}"' and raw.request_id
        assert raw.parse().id == referral.id and raw.parse().history[0].to == "requested"
        assert raw.headers["content-type"].startswith("application/json")


def test_auto_pagination_walks_every_page(live):
    with live.client(BP3MI) as c:
        for i in range(5):
            c.referrals.create(**referral_args(note=f"page {i}"))
        page = c.referrals.list(limit=2, role="sent")
        assert len(page.items) == 2 and page.has_next_page()
        walked = [r.id for r in c.referrals.list(limit=2, role="sent")]
        by_hand, cursor = [], None
        while True:
            reply = httpx.get(live.url + "/v1/referrals", params={"limit": 500, "role": "sent"},
                              headers={"Authorization": f"Bearer {c.auth._token}"}).json()
            by_hand += [uuid.UUID(r["id"]) for r in reply["items"]]
            cursor = reply["next_cursor"]
            if not cursor:
                break
        assert walked == by_hand and len(walked) >= 5 and len(set(walked)) == len(walked)
        assert sum(len(p.items) for p in page.iter_pages()) == len(walked)


def test_503_with_an_http_date_retry_after_is_retried_without_a_second_record(live):
    dates: list[int] = []

    def unknown_outcome() -> tuple[int, dict[str, str], bytes]:
        dates.append(int(time.time() + 1))  # an HTTP-date has whole seconds: 0-1 s from now
        when = email.utils.formatdate(dates[-1], usegmt=True)
        body = {"type": "/problems/outcome-unknown", "title": "Outcome unknown", "status": 503,
                "detail": "the connection to the database was lost during the commit"}
        return 503, {"content-type": "application/problem+json", "retry-after": when}, orjson.dumps(body)

    lossy = LosingFront(live.url, lambda m, p: m == "POST" and p == "/v1/referrals", unknown_outcome)
    sender_ref = f"SDK/503/{uuid.uuid4().hex[:8]}"
    with front(lossy) as url:
        creds = live.creds[BP3MI]
        with Sinergi(url, creds["client_id"], creds["client_secret"]) as c:
            raw = c.referrals.with_raw_response.create(**referral_args(sender_ref=sender_ref))
            returned = time.time()
            mine = [r for r in c.referrals.list(role="sent", limit=500) if r.sender_ref == sender_ref]
    posts = [h for m, p, h in lossy.seen if m == "POST" and p == "/v1/referrals"]
    assert lossy.lost == 1 and len(posts) == 2 and raw.retries_taken == 1
    assert posts[0]["idempotency-key"] == posts[1]["idempotency-key"]
    assert raw.idempotent_replayed  # the server did it the first time; the retry is its replay
    assert [r.id for r in mine] == [raw.parse().id]
    assert len(dates) == 1 and returned >= dates[0] - 0.05  # the retry waited for the date


def test_with_options_and_per_request_timeout(live):
    with live.client(AUDITOR) as c:
        quick = c.with_options(timeout=5.0, max_retries=0)
        assert quick.audit.verify(timeout=10.0).ok and quick.timeout == 5.0 and c.timeout != 5.0
    # a server that takes the connection and never answers: the call's own timeout ends it (a
    # real server may answer within any deadline short enough to test)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with sinergi_client.Sinergi(url, auth=httpx.Auth(), timeout=60.0) as c:
            with pytest.raises(sinergi_client.APITimeoutError) as raised:
                c.audit.list(limit=5, timeout=httpx.Timeout(0.2), max_retries=0)
    # the request went with the call's timeout, not the client's
    assert raised.value.request.extensions["timeout"]["read"] == 0.2


def test_stats_audit_events_and_agencies(live):
    with live.client(DP3A) as dp3a:
        stats = dp3a.stats.returnees(group_by=["district", "sex"])
        assert stats.group_by == ["district", "sex"] and stats.rows
        csv = dp3a.stats.returnees_csv(group_by=["district"])
        assert csv.splitlines()[0].startswith("district")
        assert dp3a.stats.referrals(group_by=["status"]).group_by == ["status"]
        bengkayang = dp3a.stats.referrals(group_by=["district"], district="61.07", open=True)
        assert {row["district"] for row in bengkayang.rows} <= {"61.07"}
        assert dp3a.stats.referrals_csv(group_by=["district"], open=False).splitlines()[0] == \
            "district,count,overdue,suppressed"
    with live.client(AUDITOR) as auditor:
        verified = auditor.audit.verify()
        assert verified.ok and verified.first_bad_seq is None and verified.head.seq >= 1
        checkpoint = auditor.audit.checkpoint()
        assert auditor.audit.verify(checkpoint=checkpoint.checkpoint).ok
        first = auditor.audit.list(limit=3)
        assert len(first.items) == 3 and first.items[0].hash
    with live.client(BP3MI) as bp3mi:
        events = list(bp3mi.events.feed(limit=50, stop_when_idle=True))
        assert events and len({e.id for e in events}) == len(events)
    with live.client("SINERGI-OPERATOR") as operator:
        code = f"DINKES-{uuid.uuid4().hex[:6].upper()}"
        agency = operator.agencies.create(code=code, name="Dinas Kesehatan", kind="health", jurisdiction="61.07")
        assert agency.code == code and code in {a.code for a in operator.agencies.list(limit=2)}
        created = operator.agencies.create_client(code, scopes=["events:read"])
        assert created.client_secret and created.agency == code


def test_notices_acknowledge_with_the_etag_and_follow_up(live):
    with live.client(BP3MI) as bp3mi, live.client("DP3A-BENGKAYANG") as dp3a:
        pushed = bp3mi.returnees.push([record(f"NOTICE-{uuid.uuid4().hex[:6]}")])
        notice = bp3mi.notices.create(district="61.07", returnee_ids=[pushed.results[0].id],
                                      summary="Deportasi via PLBN Jagoi Babang")
        listed = [n for n in dp3a.notices.list(acknowledged=False) if n.id == notice.id]
        assert listed and listed[0].etag is None  # a list item carries no ETag: acknowledge reads it first
        acknowledged = dp3a.notices.acknowledge(listed[0])
        assert acknowledged.acknowledged_by == "DP3A-BENGKAYANG" and acknowledged.etag
        follow_up = dp3a.notices.follow_up(notice, action="home_visit", occurred_on=date(2025, 6, 3), note="ok")
        assert follow_up.notice_id == notice.id
        assert [f.id for f in dp3a.notices.get(notice.id).follow_ups] == [follow_up.id]


async def test_async_client_against_the_live_server(live):
    async with live.async_client(BP3MI) as bp3mi, live.async_client(POLRES) as polres:
        referral = await bp3mi.referrals.create(**referral_args(note="async"))
        received = [r async for r in polres.referrals.list(role="received", status="requested", limit=2)]
        assert referral.id in {r.id for r in received}
        mine = next(r for r in received if r.id == referral.id)
        moved = await polres.referrals.receive(mine)
        moved = await polres.referrals.accept(moved)
        assert moved.status == "accepted" and [h.action for h in moved.history][-2:] == ["receive", "accept"]
        with pytest.raises(PreconditionFailedError):
            await polres.referrals.start(mine)
        page = await polres.referrals.list(limit=1, role="received")
        assert len(page.items) == 1 and (await page.get_next_page()).items
        raw = await polres.referrals.with_raw_response.get(referral.id)
        assert raw.etag == moved.etag and raw.request_id
        result = await bp3mi.returnees.push([record("ASYNC-1")], idempotency_key=f"async-{uuid.uuid4()}")
        assert result.results[0].status in ("created", "updated", "unchanged")
        returnee = await bp3mi.returnees.get(result.results[0].id)
        assert returnee.source_ref == "ASYNC-1" and not returnee.pii_masked
        events = [e async for e in bp3mi.events.feed(stop_when_idle=True, limit=100)]
        assert events
    assert isinstance(bp3mi, AsyncSinergi)


async def test_calls_starting_together_share_one_token_fetch(live):
    async with live.async_client(AUDITOR) as c:
        replies = await asyncio.gather(*(c.audit.verify() for _ in range(12)))
        assert all(r.ok for r in replies) and c.auth.tokens_fetched == 1
    with live.client(AUDITOR) as c:
        with ThreadPoolExecutor(6) as pool:
            assert all(r.ok for r in pool.map(lambda _: c.audit.verify(), range(12)))
        assert c.auth.tokens_fetched == 1
