"""Webhooks: subscriptions, signed deliveries driven by the outbox, retries, the delivery log,
disabling and re-enabling, partner URLs that may not be reached, and who receives what.

Receivers are real HTTP servers on loopback (tests/webhook_receiver.py); signatures are checked
with the independent ``standardwebhooks`` library. The worker is driven pass by pass here
(``webhook_worker`` off), except where the in-process worker of the server is the point.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook as StandardWebhook

from api.app import create_app
from api.core import outbox
from api.core.db import Database
from api.core.settings import Settings
from api.core.unit import operator_unit
from api.webhooks.schemas import EVENT_DATA, WebhookCreate
from api.webhooks.worker import Worker
from models import AgencyKind, AuditEvent, WebhookAttempt, WebhookDelivery
from tests.conftest import Backend, assert_not_stored, assert_problem
from tests.reply_shapes import CheckReplies
from tests.returnee_rows import insert_returnees
from tests.test_notices import _create
from tests.webhook_receiver import Receiver

SUBSCRIBER = "notices:read notices:write returnees:read referrals:read events:read webhooks:manage"
NOTICE_TYPES = ["notice.created", "notice.acknowledged", "notice.follow_up_recorded"]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, mode="development", db_pool_size=10, webhook_worker=False,
                    webhook_backoff=0.05, webhook_backoff_max=0.2, webhook_max_attempts=4, webhook_timeout=3,
                    webhook_poll=0.05)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


async def subscribe(client: httpx.AsyncClient, party: Any, url: str, types: list[str] | None = None) -> dict[str, Any]:
    r = await client.post("/v1/webhooks", json={"url": url, "event_types": types or NOTICE_TYPES},
                          headers=await party.headers())
    assert r.status_code == 201, r.text
    return r.json()


async def emit_notices(db: Database, n: int, district: str = "61.07", issuer: str = "BP3MI-KALBAR") -> None:
    """``n`` ``notice.created`` events written by the outbox, as an issuing transaction writes them."""
    async with operator_unit(db, "test") as session:
        for i in range(n):
            outbox.emit(session, "notice.created", {"id": f"00000000-0000-4000-8000-{i:012d}", "district": district,
                                                    "issued_by": issuer, "returnee_count": 1},
                        region=district, audience=[issuer])


async def drain(*workers: Worker, until: Any = None, timeout: float = 20.0) -> None:
    """Run passes of the workers (concurrently) until ``until()`` holds, or nothing is left to do."""
    deadline = time.monotonic() + timeout
    idle = 0
    while time.monotonic() < deadline:
        done = sum(await asyncio.gather(*(w.run_once() for w in workers)))
        if until is not None and until():
            return
        if done == 0:
            idle += 1
            if until is None and idle > 8:
                return
            await asyncio.sleep(0.05)
        else:
            idle = 0
    raise AssertionError("the workers did not finish in time")


@pytest.fixture
async def worker(db: Database) -> AsyncIterator[Worker]:
    w = Worker(db, name="test-worker")
    yield w
    await w.close()


async def deliveries(client: httpx.AsyncClient, party: Any, webhook_id: str, **params: Any) -> list[dict[str, Any]]:
    r = await client.get(f"/v1/webhooks/{webhook_id}/deliveries", params=params, headers=await party.headers())
    assert r.status_code == 200, r.text
    return r.json()["items"]


# --- subscribing, signing -------------------------------------------------------------------


async def test_subscribe_deliver_signed_and_secret_shown_once(client, make_party, db, worker, receiver, backend):
    bp3mi = await make_party("BP3MI-KALBAR", "61", SUBSCRIBER, kind=AgencyKind.migrant_protection)
    hook = await subscribe(client, bp3mi, receiver.url)
    secret = hook["secret"]
    assert secret.startswith("whsec_") and hook["status"] == "active"
    assert hook["event_types"] == sorted(NOTICE_TYPES)

    r = await client.get(f"/v1/webhooks/{hook['id']}", headers=await bp3mi.headers())
    assert r.status_code == 200 and "secret" not in r.json()
    listed = (await client.get("/v1/webhooks", headers=await bp3mi.headers())).json()
    assert [w["id"] for w in listed["items"]] == [hook["id"]] and "secret" not in listed["items"][0]

    ids = await insert_returnees(db, "BP3MI-KALBAR", "61.07", 2)
    notice = (await _create(client, bp3mi, "61.07", ids)).json()  # a real business write
    await drain(worker, until=lambda: len(receiver.received) >= 1)

    [got] = receiver.received
    payload = StandardWebhook(secret).verify(got.body, got.headers)  # the independent verifier
    assert payload["type"] == "notice.created" and payload["data"]["id"] == notice["id"]
    feed = (await client.get("/v1/events", headers=await bp3mi.headers())).json()["items"]
    assert payload == [e for e in feed if e["type"] == "notice.created"][0]  # the feed's event, as it is
    with pytest.raises(Exception):  # noqa: B017 - the library's own verification error
        StandardWebhook("whsec_" + "QUJD" * 8).verify(got.body, got.headers)

    [d] = await deliveries(client, bp3mi, hook["id"])
    assert d["id"] == got.headers["webhook-id"] and d["status"] == "succeeded" and d["attempts"] == 1
    assert d["log"][0]["status_code"] == 200 and d["log"][0]["latency_ms"] is not None
    await assert_not_stored(db, backend, [secret, secret.removeprefix("whsec_")], visible=receiver.url)


async def test_subscribing_needs_the_feed_scope(client, make_party, receiver):
    no_feed = await make_party("DP3A-BENGKAYANG", "61.07", "notices:read webhooks:manage")
    r = await client.post("/v1/webhooks", json={"url": receiver.url, "event_types": NOTICE_TYPES},
                          headers=await no_feed.headers())
    assert_problem(r, 403, "insufficient-scope")
    bad = await client.post("/v1/webhooks", json={"url": receiver.url, "event_types": ["notice.nope"]},
                            headers=await (await make_party("X-AG", "61.07", SUBSCRIBER)).headers())
    assert_problem(bad, 422)


async def test_other_agencies_subscriptions_are_not_found(client, make_party, db, worker, receiver):
    bp3mi = await make_party("BP3MI-KALBAR", "61", SUBSCRIBER, kind=AgencyKind.migrant_protection)
    other = await make_party("DP3A-BENGKAYANG", "61.07", SUBSCRIBER)
    hook = await subscribe(client, bp3mi, receiver.url)
    await emit_notices(db, 1)
    await drain(worker, until=lambda: len(receiver.received) >= 1)
    [d] = await deliveries(client, bp3mi, hook["id"])
    for method, path in [("GET", f"/v1/webhooks/{hook['id']}"), ("DELETE", f"/v1/webhooks/{hook['id']}"),
                         ("GET", f"/v1/webhooks/{hook['id']}/deliveries"),
                         ("POST", f"/v1/webhooks/{hook['id']}/enable"),
                         ("POST", f"/v1/webhooks/{hook['id']}/deliveries/{d['id']}/redeliver")]:
        assert_problem(await client.request(method, path, headers=await other.headers()), 404)
    assert (await client.get("/v1/webhooks", headers=await other.headers())).json()["items"] == []

    r = await client.delete(f"/v1/webhooks/{hook['id']}", headers=await bp3mi.headers())
    assert r.status_code == 200 and r.json()["id"] == hook["id"]
    assert_problem(await client.get(f"/v1/webhooks/{hook['id']}", headers=await bp3mi.headers()), 404)
    await emit_notices(db, 1)
    await drain(worker)
    assert len(receiver.received) == 1  # nothing more after unsubscribing


async def test_deleted_while_in_flight(client, make_party, db, worker, receiver):
    bp3mi = await make_party("BP3MI-KALBAR", "61", SUBSCRIBER, kind=AgencyKind.migrant_protection)
    hook = await subscribe(client, bp3mi, receiver.url)
    await emit_notices(db, 3)
    receiver.delay = 0.5
    await worker.fan_out()
    batch = asyncio.create_task(worker.deliver_batch())
    for _ in range(100):
        if receiver.received:
            break
        await asyncio.sleep(0.02)
    r = await client.delete(f"/v1/webhooks/{hook['id']}", headers=await bp3mi.headers())
    assert r.status_code == 200, r.text
    assert await batch == 3  # its log is not written for deliveries that are gone, and nothing fails
    async with db.sessionmaker() as s:
        assert (await s.execute(sa.select(sa.func.count()).select_from(WebhookAttempt))).scalar_one() == 0


async def test_nothing_is_delivered_while_the_client_is_disabled(client, make_party, db, worker, receiver):
    from api.agencies import service as agencies

    bp3mi = await make_party("BP3MI-KALBAR", "61", SUBSCRIBER, kind=AgencyKind.migrant_protection)
    await subscribe(client, bp3mi, receiver.url)
    async with operator_unit(db, "test") as session:
        await agencies.set_client_disabled(session, "BP3MI-KALBAR", bp3mi.client_id, True)
    await emit_notices(db, 2)
    await drain(worker)
    assert receiver.received == []
    async with operator_unit(db, "test") as session:
        await agencies.set_client_disabled(session, "BP3MI-KALBAR", bp3mi.client_id, False)
    await drain(worker, until=lambda: len(receiver.received) >= 2)
    await drain(worker)
    assert len(receiver.received) == 2


# --- outage, retries, 410, budget, re-enable ---------------------------------------------------


async def test_receiver_outage_loses_nothing_and_keeps_the_webhook_id(client, make_party, db):
    worker = Worker(db, db.settings.model_copy(update={"webhook_max_attempts": 50}), name="patient")
    bp3mi = await make_party("BP3MI-KALBAR", "61", SUBSCRIBER, kind=AgencyKind.migrant_protection)
    receiver = Receiver()  # not started: the partner's system is down
    hook = await subscribe(client, bp3mi, receiver.url)
    await emit_notices(db, 30)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:  # a second of failed attempts while it is down
        if not await worker.run_once():
            await asyncio.sleep(0.02)
    assert receiver.received == []
    pending = await deliveries(client, bp3mi, hook["id"], limit=50)
    assert len(pending) == 30 and all(d["status"] == "pending" and d["attempts"] >= 1 for d in pending)
    assert all(d["log"][0]["status_code"] is None and d["log"][0]["error"] for d in pending)
    assert all(d["log"][0]["next_attempt_at"] for d in pending)

    receiver.start()
    try:
        await drain(worker, until=lambda: len(set(receiver.ids())) >= 30)
        await drain(worker)
    finally:
        receiver.stop()
        await worker.close()
    assert sorted(set(receiver.ids())) == sorted(d["id"] for d in pending)  # zero lost
    assert len(receiver.ids()) == 30  # and none twice
    done = await deliveries(client, bp3mi, hook["id"], limit=50)
    assert all(d["status"] == "succeeded" for d in done)
    retried = [d for d in done if d["attempts"] > 1]
    assert retried and all([a["attempt"] for a in d["log"]] == list(range(1, d["attempts"] + 1)) for d in retried)
    bodies = {r.headers["webhook-id"]: orjson.loads(r.body)["data"]["id"] for r in receiver.received}
    assert len(set(bodies.values())) == 30


async def test_410_disables_and_the_owner_re_enables(client, make_party, db, worker, receiver):
    bp3mi = await make_party("BP3MI-KALBAR", "61", SUBSCRIBER, kind=AgencyKind.migrant_protection)
    hook = await subscribe(client, bp3mi, receiver.url)
    receiver.status = 410
    await emit_notices(db, 1)
    await drain(worker)
    assert len(receiver.received) == 1
    got = (await client.get(f"/v1/webhooks/{hook['id']}", headers=await bp3mi.headers())).json()
    assert got["status"] == "disabled" and got["disabled_reason"] == "410 Gone" and got["disabled_at"]
    [d] = await deliveries(client, bp3mi, hook["id"])
    assert d["status"] == "failed" and d["attempts"] == 1 and d["log"][0]["status_code"] == 410

    await emit_notices(db, 2)  # while disabled: nothing is posted
    await drain(worker)
    assert len(receiver.received) == 1

    receiver.status = 200
    r = await client.post(f"/v1/webhooks/{hook['id']}/enable", headers=await bp3mi.headers())
    assert r.status_code == 200 and r.json()["status"] == "active" and r.json()["disabled_reason"] is None
    await drain(worker, until=lambda: len(receiver.received) >= 4)
    await drain(worker)
    assert len(receiver.received) == 4  # the failed one again (same webhook-id) and the two it missed
    assert receiver.ids()[1:].count(d["id"]) == 1
    async with db.sessionmaker() as s:
        actions = set((await s.execute(sa.select(AuditEvent.action).where(
            AuditEvent.action.like("webhook.%")))).scalars())
    assert {"webhook.create", "webhook.enqueue", "webhook.claim", "webhook.attempt", "webhook.disable",
            "webhook.enable"} <= actions


async def test_retry_budget_disables_then_redeliver(client, make_party, db, worker, receiver):
    bp3mi = await make_party("BP3MI-KALBAR", "61", SUBSCRIBER, kind=AgencyKind.migrant_protection)
    hook = await subscribe(client, bp3mi, receiver.url)
    receiver.status = 503
    await emit_notices(db, 1)
    await drain(worker)
    assert len(receiver.received) == 4  # webhook_max_attempts
    assert len(set(receiver.ids())) == 1  # the same webhook-id on every retry
    stamps = [int(r.headers["webhook-timestamp"]) for r in receiver.received]
    assert stamps == sorted(stamps)
    [d] = await deliveries(client, bp3mi, hook["id"])
    assert d["status"] == "failed" and [a["status_code"] for a in d["log"]] == [503] * 4
    waits = [a["next_attempt_at"] for a in d["log"]]
    assert all(waits[:3]) and waits[3] is None
    got = (await client.get(f"/v1/webhooks/{hook['id']}", headers=await bp3mi.headers())).json()
    assert got["status"] == "disabled" and "retry budget" in got["disabled_reason"]

    # redelivering waits for the subscription; enabling sends it, with the same webhook-id
    receiver.status = 200
    r = await client.post(f"/v1/webhooks/{hook['id']}/deliveries/{d['id']}/redeliver", headers=await bp3mi.headers())
    assert r.status_code == 202 and r.json()["status"] == "pending"
    await drain(worker)
    assert len(receiver.received) == 4
    assert (await client.post(f"/v1/webhooks/{hook['id']}/enable", headers=await bp3mi.headers())).status_code == 200
    await drain(worker, until=lambda: len(receiver.received) >= 5)
    assert receiver.ids()[-1] == d["id"]
    [d2] = await deliveries(client, bp3mi, hook["id"])
    assert d2["status"] == "succeeded" and d2["attempts"] == 5


async def test_backoff_grows(settings):
    import random

    from api.webhooks.worker import backoff

    s = settings.model_copy(update={"webhook_backoff": 1.0, "webhook_backoff_max": 100.0})
    waits = [backoff(s, n, random.Random(n)) for n in range(1, 9)]
    assert all(b > a for a, b in zip(waits, waits[1:], strict=False) if b < 100)
    assert 1.0 <= waits[0] <= 1.25 and waits[-1] <= 125


# --- partner URLs that may not be reached --------------------------------------------------


@pytest.fixture
async def strict(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    """The service with private addresses not allowed (as in production), on the same database."""
    strict_settings = settings.model_copy(update={"webhook_allow_private": False})
    app = create_app(strict_settings, configure_logging=False)
    async with app.router.lifespan_context(app):
        checked = CheckReplies(app)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=checked, raise_app_exceptions=False),
                                     base_url="http://testserver") as c:
            yield c, strict_settings
        assert not checked.mismatches


@pytest.mark.parametrize("url", [
    "file:///etc/passwd",
    "ftp://example.org/hooks",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/hooks",
    "http://192.168.1.10/hooks",
    "http://127.0.0.1:9/hooks",
    "http://[::1]:9/hooks",
    "http://[::ffff:127.0.0.1]:9/hooks",
    "http://localhost:9/hooks",  # a name that resolves to loopback
    "http://user:pw@example.org/hooks",
    "http://0.0.0.0/hooks",
])
async def test_unsafe_urls_are_refused(strict, make_party, url):
    http, _ = strict
    party = await make_party("BP3MI-KALBAR", "61", SUBSCRIBER, kind=AgencyKind.migrant_protection)
    r = await http.post("/v1/webhooks", json={"url": url, "event_types": NOTICE_TYPES},
                        headers={"Authorization": f"Bearer {await party.token()}"})
    body = assert_problem(r, 422)
    assert [e["field"] for e in body["errors"]] == ["url"], body


async def test_addresses_are_checked_again_at_every_connection(client, strict, make_party, db, receiver):
    """Subscribed while private addresses were allowed (or while the name resolved elsewhere):
    a worker that does not allow them refuses to connect to the name that now resolves to loopback."""
    _, strict_settings = strict
    bp3mi = await make_party("BP3MI-KALBAR", "61", SUBSCRIBER, kind=AgencyKind.migrant_protection)
    hook = await subscribe(client, bp3mi, f"http://localhost:{receiver.port}/hooks")
    await emit_notices(db, 1)
    w = Worker(db, strict_settings, name="strict-worker")
    try:
        await drain(w)
    finally:
        await w.close()
    assert receiver.received == []
    [d] = await deliveries(client, bp3mi, hook["id"])
    assert d["status"] == "failed" and all("refused" in a["error"] and "not a public address" in a["error"]
                                           for a in d["log"])


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "file:///etc/passwd",
                                    "http://localhost:9/", "second-receiver"])
async def test_redirects_are_not_followed(client, make_party, db, worker, receiver, target):
    second = Receiver().start()
    try:
        receiver.status, receiver.location = 302, second.url if target == "second-receiver" else target
        bp3mi = await make_party("BP3MI-KALBAR", "61", SUBSCRIBER, kind=AgencyKind.migrant_protection)
        hook = await subscribe(client, bp3mi, receiver.url)
        await emit_notices(db, 1)
        await drain(worker)
        assert second.received == []
        [d] = await deliveries(client, bp3mi, hook["id"])
        assert d["status"] == "failed" and d["attempts"] == 4
        assert all(a["status_code"] == 302 and "not followed" in a["error"] for a in d["log"])
    finally:
        second.stop()


async def test_attempts_keep_their_connections_and_no_cookies(client, make_party, db, worker):
    """A receiver with persistent connections gets a batch over at most ``webhook_concurrency``
    of them, each used again (not one per attempt); what it sets in a cookie never comes back."""
    receiver = Receiver(keep_alive=True).start()
    try:
        receiver.reply_headers = {"Set-Cookie": "session=from-the-receiver; Path=/"}
        bp3mi = await make_party("BP3MI-KALBAR", "61", SUBSCRIBER, kind=AgencyKind.migrant_protection)
        hook = await subscribe(client, bp3mi, receiver.url)
        await emit_notices(db, 30)
        await drain(worker, until=lambda: len(receiver.received) >= 30)
        await emit_notices(db, 5)  # a second batch: on the connections the first left open
        await drain(worker, until=lambda: len(receiver.received) >= 35)
        assert len(set(receiver.ids())) == 35
        assert 1 <= receiver.connections <= worker.settings.webhook_concurrency
        assert not [r for r in receiver.received if "cookie" in r.headers]
        assert all(d["status"] == "succeeded" for d in await deliveries(client, bp3mi, hook["id"], limit=100))
    finally:
        receiver.stop()


async def test_a_long_reply_is_not_read_to_its_end(client, make_party, db, worker):
    """A 2xx with a body of megabytes delivers; the worker reads only the first 64 KiB of it, and
    closes that connection (the next attempt comes on a new one)."""
    receiver = Receiver(keep_alive=True).start()
    try:
        receiver.reply = b"x" * (8 * 1024 * 1024)
        bp3mi = await make_party("BP3MI-KALBAR", "61", SUBSCRIBER, kind=AgencyKind.migrant_protection)
        hook = await subscribe(client, bp3mi, receiver.url)
        for n in range(1, 4):
            await emit_notices(db, 1)
            await drain(worker, until=lambda n=n: len(receiver.received) >= n)
        assert receiver.connections == 3
        assert [d["status"] for d in await deliveries(client, bp3mi, hook["id"])] == ["succeeded"] * 3
    finally:
        receiver.stop()


async def test_an_attempt_ends_within_the_timeout_however_slowly_the_reply_comes(client, make_party, db, settings):
    """A receiver that answers 200 and then sends its body a byte every 0.3 s: each read is
    quick, the whole attempt is not; it ends after ``webhook_timeout`` as timed out, and the
    delivery is retried (not held for as long as the receiver likes)."""
    receiver = Receiver(keep_alive=True).start()
    worker = Worker(db, settings.model_copy(update={"webhook_timeout": 1.0}), name="impatient")
    try:
        receiver.reply, receiver.dribble = b"x" * 40, 0.3
        bp3mi = await make_party("BP3MI-KALBAR", "61", SUBSCRIBER, kind=AgencyKind.migrant_protection)
        hook = await subscribe(client, bp3mi, receiver.url)
        await emit_notices(db, 1)
        started = time.monotonic()
        await drain(worker, until=lambda: len(receiver.received) >= 1)
        while time.monotonic() - started < 10:
            [d] = await deliveries(client, bp3mi, hook["id"])
            if d["log"]:
                break
            await worker.run_once()
        assert time.monotonic() - started < 6
        [attempt, *_] = d["log"]
        assert attempt["error"] == "timed out" and d["status"] == "pending", d
    finally:
        await worker.close()
        receiver.stop()


# --- who receives what ------------------------------------------------------------------------


async def test_subscribers_receive_only_what_their_feed_shows(client, make_party, db, worker):
    bp3mi = await make_party("BP3MI-KALBAR", "61", SUBSCRIBER, kind=AgencyKind.migrant_protection)
    bky = await make_party("DP3A-BENGKAYANG", "61.07", "notices:read notices:ack events:read webhooks:manage")
    sambas = await make_party("DP3A-SAMBAS", "61.01", "notices:read notices:ack events:read webhooks:manage")
    gugus = await make_party("GUGUS-TPPO-BENGKAYANG", "61.07", "referrals:read events:read webhooks:manage",
                             kind=AgencyKind.task_force)  # in the district, without notices:read
    parties = {"bp3mi": bp3mi, "bky": bky, "sambas": sambas, "gugus": gugus}
    receivers = {name: Receiver().start() for name in parties}
    try:
        for name, party in parties.items():
            await subscribe(client, party, receivers[name].url, NOTICE_TYPES + ["referral.requested"])
        ids = await insert_returnees(db, "BP3MI-KALBAR", "61.07", 1)
        sambas_ids = await insert_returnees(db, "BP3MI-KALBAR", "61.01", 1)
        n1 = (await _create(client, bp3mi, "61.07", ids)).json()
        n2 = (await _create(client, bp3mi, "61.01", sambas_ids)).json()
        r = await client.post(f"/v1/notices/{n1['id']}/acknowledge", headers=await bky.headers(**{"If-Match": '"1"'}))
        assert r.status_code == 200, r.text
        await emit_notices(db, 1, district="61.04", issuer="BP3MI-ELSEWHERE")
        await drain(worker)
        for name, party in parties.items():
            feed = (await client.get("/v1/events", headers=await party.headers())).json()["items"]
            got = [orjson.loads(x.body)["id"] for x in receivers[name].received]
            assert sorted(got) == sorted(e["id"] for e in feed), name
        bodies = {name: {(orjson.loads(x.body)["type"], orjson.loads(x.body)["data"]["id"])
                         for x in rec.received} for name, rec in receivers.items()}
        elsewhere = ("notice.created", "00000000-0000-4000-8000-000000000000")  # 61.04: the province's
        assert bodies["bp3mi"] == {("notice.created", n1["id"]), ("notice.created", n2["id"]),
                                   ("notice.acknowledged", n1["id"]), elsewhere}
        assert bodies["bky"] == {("notice.created", n1["id"]), ("notice.acknowledged", n1["id"])}
        assert bodies["sambas"] == {("notice.created", n2["id"])}
        assert bodies["gugus"] == set()
    finally:
        for rec in receivers.values():
            rec.stop()


async def test_events_before_the_subscription_are_not_sent(client, make_party, db, worker, receiver):
    bp3mi = await make_party("BP3MI-KALBAR", "61", SUBSCRIBER, kind=AgencyKind.migrant_protection)
    await emit_notices(db, 3)
    hook = await subscribe(client, bp3mi, receiver.url)
    await emit_notices(db, 1)
    await drain(worker)
    assert len(receiver.received) == 1
    assert len(await deliveries(client, bp3mi, hook["id"])) == 1


# --- several workers ---------------------------------------------------------------------------


async def test_two_workers_never_deliver_one_attempt_twice(client, make_party, db, receiver, backend: Backend):
    bp3mi = await make_party("BP3MI-KALBAR", "61", SUBSCRIBER, kind=AgencyKind.migrant_protection)
    await subscribe(client, bp3mi, receiver.url)
    await subscribe(client, bp3mi, receiver.url)  # two subscriptions: two deliveries per event
    await emit_notices(db, 150)
    settings = db.settings.model_copy(update={"webhook_batch": 20, "webhook_concurrency": 8})
    workers = [Worker(db, settings, name=f"w{i}") for i in range(2)]
    try:
        await drain(*workers, until=lambda: len(set(receiver.ids())) >= 300)
        await drain(*workers)
    finally:
        for w in workers:
            await w.close()
    ids = receiver.ids()
    assert len(ids) == 300 and len(set(ids)) == 300  # every delivery once, none twice
    async with db.sessionmaker() as s:
        per_worker = dict((await s.execute(sa.select(WebhookAttempt.worker, sa.func.count())
                                           .group_by(WebhookAttempt.worker))).all())
        attempts = (await s.execute(sa.select(sa.func.count()).select_from(WebhookAttempt))).scalar_one()
        made = (await s.execute(sa.select(sa.func.count()).select_from(WebhookDelivery))).scalar_one()
    assert attempts == 300 and made == 300
    if backend.name == "postgresql":
        assert set(per_worker) == {"w0", "w1"}, per_worker  # both did work, side by side


# --- the server's own worker, and the command ------------------------------------------------


async def test_the_server_delivers_in_process(settings, make_party, receiver):
    live = settings.model_copy(update={"webhook_worker": True})
    app = create_app(live, configure_logging=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
            from api.agencies import service as agencies
            from api.agencies.schemas import AgencyCreate, ClientCreate

            db = app.state.services.db
            async with operator_unit(db, "test") as session:
                await agencies.create_agency(session, AgencyCreate(code="BP3MI-KALBAR", name="BP3MI", jurisdiction="61",
                                                                   kind=AgencyKind.migrant_protection))
                c = await agencies.create_client(session, "BP3MI-KALBAR", ClientCreate(scopes=SUBSCRIBER))
            tok = (await http.post("/oauth/token", data={"grant_type": "client_credentials"},
                                   auth=(c.client_id, c.client_secret))).json()["access_token"]
            r = await http.post("/v1/webhooks", json={"url": receiver.url, "event_types": NOTICE_TYPES},
                                headers={"Authorization": f"Bearer {tok}"})
            assert r.status_code == 201, r.text
            await emit_notices(db, 2)
            for _ in range(200):
                if len(receiver.received) >= 2:
                    break
                await asyncio.sleep(0.05)
    assert len(receiver.received) == 2


def test_the_worker_command_runs_a_pass(sinergi):
    result = sinergi("worker", "--once")
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout.strip().splitlines()[-1]) == {"done": 0}


def test_webhooks_in_the_openapi_document(settings):
    doc = create_app(settings, configure_logging=False).openapi()
    assert set(doc["webhooks"]) >= {"notice.created", "referral.status_changed", "returnee.created"}
    op = doc["webhooks"]["referral.status_changed"]["post"]
    assert "webhook-signature" in op["description"]
    assert {p["name"] for p in op["parameters"]} == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert "422" not in op["responses"]
    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(doc["components"]["schemas"][ref]["properties"]) == {"id", "type", "occurred_at", "data"}
    assert "/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver" in doc["paths"]


async def test_every_event_the_demo_writes_can_be_subscribed_to(settings, demo_copy):
    """Each event type the service writes on the feed (the demo writes every family) is one a
    subscription may name and the document describes: a new event that webhooks cannot carry
    fails here. (The test's database is a copy of the demo world.)"""
    db = Database(settings)
    try:
        async with db.read() as conn:
            written = set((await conn.execute(sa.text("SELECT DISTINCT type FROM event"))).scalars())
    finally:
        await db.dispose()
    assert {"returnee.created", "notice.created", "referral.requested", "manifest.created"} <= written
    assert written <= set(EVENT_DATA), sorted(written - set(EVENT_DATA))
    WebhookCreate(url="https://example.org/h", event_types=sorted(written))
