"""The partner examples (examples/) run as their users would run them, against a real
uvicorn server with the demo data."""

from __future__ import annotations

import base64
import csv
import importlib.util
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import standardwebhooks

from api.app import create_app
from api.core.settings import Settings
from bench.common import wait_answering
from tests.live import ROOT, Live, free_port, live_world

EXAMPLES = ROOT / "examples"
BP3MI, POLRES, DP3A = "BP3MI-KALBAR", "POLRES-BENGKAYANG", "DP3A-KALBAR"


@pytest.fixture(scope="module")
def live(module_demo) -> Iterator[Live]:
    with live_world(module_demo) as world:
        yield world


def run(live: Live, agency: str, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(EXAMPLES / script), *args], env=live.env(agency), cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def referral_args(note: str) -> dict:
    return {"to_agency": POLRES, "reason": "suspected_tppo_victim", "legal_basis": "UU-21-2007:51",
            "subject": {"full_name": "Rina", "sex": "F", "district": "61.07.07"}, "note": note,
            "consent": {"given": True, "given_by": "Rina", "given_at": "2025-05-20T03:00:00Z", "method": "written"}}


def test_bp3mi_pushes_a_csv_in_keyed_batches_and_reports_rejected_lines(live, tmp_path):
    run_id = uuid.uuid4().hex[:6]
    path = tmp_path / "kedatangan.csv"
    rows = [
        ("A", "Siti Aminah", "F", "2025-06-01", "debt_bondage;threats"),
        ("B", "Budi Santoso", "X", "2025-06-01", ""),          # line 3: sex
        ("C", "Dewi Lestari", "F", "2025-06-02", ""),
        ("D", "Agus Salim", "M", "not a date", ""),            # line 5: return_date
        ("E", "Rina, binti Ahmad", "F", "2025-06-03", ""),
    ]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["source_ref", "full_name", "sex", "origin_district", "return_type", "return_date",
                    "control_methods", "entry_point"])
        for ref, name, sex, day, methods in rows:
            w.writerow([f"{run_id}-{ref}", name, sex, "61.07", "deported", day, methods, "PLBN Jagoi Babang"])

    first = run(live, BP3MI, "bp3mi_push.py", str(path), "--batch-size", "2")
    assert first.returncode == 1, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0].startswith(f"kedatangan.csv:3: {run_id}-B: sex:")
    assert lines[1].startswith(f"kedatangan.csv:5: {run_id}-D: return_date:")
    assert lines[-1] == "3 created, 2 rejected"
    again = run(live, BP3MI, "bp3mi_push.py", str(path), "--batch-size", "2")
    assert again.stdout == first.stdout  # the same keys: the first replies, replayed

    with live.client(BP3MI) as c:
        mine = [r for r in c.returnees.list(limit=500) if r.source_ref.startswith(run_id)]
    assert sorted(r.source_ref for r in mine) == [f"{run_id}-{x}" for x in "ACE"]
    assert {r.source_ref: r.control_methods for r in mine}[f"{run_id}-A"] == ["debt_bondage", "threats"]


def test_polres_works_received_referrals_through_their_states(live):
    with live.client(BP3MI) as bp3mi:
        made = [bp3mi.referrals.create(**referral_args(f"example {i}")) for i in range(2)]
    done = run(live, POLRES, "polres_referrals.py")
    assert done.returncode == 0, done.stderr
    with live.client(POLRES) as polres:
        for referral in made:
            now = polres.referrals.get(referral.id)
            assert now.status == "in-progress"
            assert [h.action for h in now.history][-3:] == ["receive", "accept", "start"]
            assert f"{referral.id}: start -> in-progress" in done.stdout


def test_polres_rereads_a_referral_on_412(live, capsys):
    work = example("polres_referrals").work
    with live.client(BP3MI) as bp3mi, live.client(POLRES) as polres:
        referral = bp3mi.referrals.create(**referral_args("stale"))
        stale = polres.referrals.get(referral.id)
        polres.referrals.receive(stale)  # someone else at the office moved it meanwhile
        final = work(polres, stale, complete=True)
    assert final.status == "completed"
    out = capsys.readouterr().out
    assert f"{referral.id}: changed since it was read (412); reading it again" in out
    assert f"{referral.id}: accept -> accepted" in out and "receive ->" not in out


def test_dp3a_pulls_district_statistics_into_a_csv(live, tmp_path):
    out = tmp_path / "statistik.csv"
    done = run(live, DP3A, "dp3a_stats.py", str(out), "--by", "district,sex")
    assert done.returncode == 0, done.stderr
    with out.open() as f:
        rows = list(csv.DictReader(f))
    with live.client(DP3A) as dp3a:
        stats = dp3a.stats.returnees(group_by=["district", "sex"])
    assert rows and list(rows[0]) == ["district", "sex", "count", "suppressed"]
    assert len(rows) == len(stats.rows)
    for row, cell in zip(rows, stats.rows, strict=True):
        assert row["district"] == cell["district"] and row["sex"] == cell["sex"]
        assert row["count"] == ("" if cell["count"] is None else str(cell["count"]))
        assert row["suppressed"] == ("true" if cell["suppressed"] else "false")


@contextmanager
def receiver(secret: str, store: Path, port: int | None = None) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = port or free_port()
    proc = subprocess.Popen([sys.executable, str(EXAMPLES / "webhook_receiver.py"), "serve", "--port", str(port),
                             "--store", str(store)], env=os.environ | {"SINERGI_WEBHOOK_SECRET": secret,
                                                                       "PYTHONPATH": f"{ROOT}:{ROOT / 'clients'}"},
                            stdout=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/hooks"
    try:
        wait_answering(url, timeout=5, alive=lambda: proc.poll() is None, status=None, interval=0.05)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(10)


def deliver(url: str, secret: str, msg_id: str, event: dict, *, tamper: bool = False) -> int:
    body = httpx.Request("POST", url, json=event).content.decode()
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(int(time.time())),
               "webhook-signature": standardwebhooks.Webhook(secret).sign(msg_id, datetime.now(UTC), body),
               "content-type": "application/json"}
    if tamper:
        body = body.replace("referral", "returnee")
    return httpx.post(url, content=body, headers=headers).status_code


def test_webhook_receiver_verifies_and_handles_each_webhook_id_once(tmp_path):
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    store = tmp_path / "hooks.db"
    created = {"id": "e1", "type": "referral.created", "occurred_at": "2025-06-01T00:00:00Z", "data": {"id": "r1"}}
    moved = {"id": "e2", "type": "referral.updated", "occurred_at": "2025-06-01T00:01:00Z", "data": {"id": "r1"}}
    with receiver(secret, store) as (url, proc):
        assert deliver(url, secret, "msg_1", created) == 204
        assert deliver(url, secret, "msg_1", created) == 204  # Sinergi's retry: the same webhook-id
        assert deliver(url, secret, "msg_2", moved, tamper=True) == 400
        assert deliver(url, secret, "msg_2", moved) == 204
        assert deliver(url, "whsec_" + base64.b64encode(b"another key, not ours").decode(), "msg_3", moved) == 400
    first = proc.stdout.read().splitlines()
    with receiver(secret, store) as (url, proc):  # restarted: it still knows msg_1
        assert deliver(url, secret, "msg_1", created) == 204
    assert [json.loads(line) for line in first if line] == [created, moved]
    assert proc.stdout.read() == ""


SERVES_WEBHOOKS = "/v1/webhooks" in create_app(Settings(mode="development")).openapi()["paths"]


@pytest.mark.skipif(not SERVES_WEBHOOKS, reason="this service does not serve /v1/webhooks yet")
def test_webhook_receiver_gets_the_servers_signed_deliveries_once(live, tmp_path):
    """Subscribed through the example, the receiver gets the server's own deliveries, verifies
    them, and a redelivery (the same webhook-id) is not handled twice."""
    port = free_port()
    done = run(live, BP3MI, "webhook_receiver.py", "subscribe", f"http://127.0.0.1:{port}/hooks",
               "--events", "referral.requested")
    assert done.returncode == 0, done.stderr
    subscription = json.loads(done.stdout)
    assert subscription["secret"].startswith("whsec_")
    store = tmp_path / "hooks.db"
    with receiver(subscription["secret"], store, port) as (_url, _proc), live.client(BP3MI) as bp3mi:
        referral = bp3mi.referrals.create(**referral_args("webhook"))
        handled = wait_for(lambda: handled_events(store), lambda rows: len(rows) >= 1)
        assert [e["type"] for e in handled] == ["referral.requested"]
        assert str(referral.id) in json.dumps(handled[0])
        deliveries = wait_for(lambda: list(bp3mi.webhooks.deliveries(subscription["id"])),
                              lambda ds: [d.status for d in ds] == ["succeeded"])  # recorded after the 204
        assert [d.status for d in deliveries] == ["succeeded"]
        bp3mi.webhooks.redeliver(subscription["id"], deliveries[0])
        again = wait_for(lambda: bp3mi.webhooks.deliveries(subscription["id"]).items[0],
                         lambda d: d.status == "succeeded" and len(d.log) == 2)
        assert again.id == deliveries[0].id
        assert len(handled_events(store)) == 1  # the same webhook-id: handled once
        bp3mi.webhooks.delete(subscription["id"])


def handled_events(store: Path) -> list[dict]:
    import sqlite3

    if not store.exists():
        return []
    with sqlite3.connect(store) as db:
        return [json.loads(e) for (e,) in db.execute("SELECT event FROM delivery")]


def wait_for(read, done, seconds: float = 30.0):
    deadline = time.monotonic() + seconds
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)
