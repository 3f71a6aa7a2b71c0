"""A few seconds of ``make soak`` and two of ``make faults``' phases, so that a regression of
what they prove fails the suite (PostgreSQL only: two server processes on one database).

The workload and the checks are those of ``bench/workload.py`` (read its ``check`` for what
is compared with what); here they run at a small size against real server processes.
"""

from __future__ import annotations

import psycopg
import pytest

from bench.common import libpq, make_parties
from bench.faults import Options, faults
from bench.soak import servers, soak

SMALL = {"verify_every": 1.0, "batch_size": 10, "timeout": 30.0}
NOT_HERE: set[str] = set()  # every check runs in the fault phases too


@pytest.fixture
def pg_url(backend, database_url) -> str:
    if backend.name != "postgresql":
        pytest.skip("two server processes and a TCP proxy in front of one PostgreSQL")
    return database_url


async def test_soak_two_servers_consistent_and_the_checks_can_fail(pg_url):
    """Four seconds of the mixed workload on two server processes: no 5xx, both feed pollers
    complete and in order, every write's events in commit order, the chain verifies, no
    partial batch, no duplicate. Then the database is tampered with three ways, and the same
    checks report each."""
    creds = await make_parties(pg_url)
    with servers(pg_url, 2, env={"SINERGI_DB_POOL_SIZE": "6"}) as procs:
        findings, rows, _ran, load = await soak([p.url for p in procs], creds, libpq(pg_url), 4.0, **SMALL)
    assert not findings, "\n".join(map(str, findings))
    answered = {r["kind"] for r in rows if r["ok"]}
    assert {"batch", "referral.create", "referral.transition", "notice.create", "notice.ack", "notice.follow_up",
            "feed", "verify", "stats", "returnee.list"} <= answered, answered
    assert all(len(p.ids) > 0 for p in load.pollers)

    from bench.workload import check

    ok_batch = next(op for op in load.ops if op.kind == "batch" and op.outcome == "ok")
    referral = next(op for op in load.ops if op.kind == "referral.create" and op.outcome == "ok")
    with psycopg.connect(libpq(pg_url)) as conn:
        conn.execute("SET session_replication_role = replica")  # past the append-only triggers and keys
        conn.execute("DELETE FROM returnee WHERE source_ref = %s", (ok_batch.info["refs"][0],))
        conn.execute("DELETE FROM event WHERE pos = (SELECT max(pos) / 2 FROM event)")
        conn.execute("CREATE TEMP TABLE twin AS SELECT * FROM referral WHERE note = %s", (referral.marker,))
        conn.execute("UPDATE twin SET id = gen_random_uuid(), sender_ref = NULL, change_pos = NULL")
        conn.execute("INSERT INTO referral SELECT * FROM twin")
    found = {f.check for f in check(load, libpq(pg_url))}
    assert {"batch", "feed", "duplicate", "events"} <= found, found


async def test_database_refusing_connections_fast_503s_and_recovery(pg_url):
    """The database refuses connections for two seconds (open ones reset): every 5xx is a 503
    problem with Retry-After, nothing waits past the bound, /readyz says 503, both servers
    serve again at once, and the consistency checks pass."""
    creds = await make_parties(pg_url)
    o = Options(pre=1.5, post=1.5, refuse_seconds=2.0, max_wait=5.0, recovery=10.0)
    results, _load = await faults(pg_url, creds, ["refuse"], o, pool=6, quiet=True, **SMALL)
    (res,) = results
    assert any(s.status == 503 for s in res.samples), "the refusal was not noticed"
    findings = [f for f in res.findings if f.check not in NOT_HERE]
    assert not findings, "\n".join(map(str, findings))


async def test_lost_commit_reply_is_reported_truthfully(pg_url):
    """Every COMMIT's reply is lost for two seconds (the changes are committed): the clients
    are not told that nothing changed, a retry does not write twice, the audit does not
    record as failed what was done."""
    creds = await make_parties(pg_url)
    o = Options(pre=1.0, post=1.5, cut_seconds=2.0, cut_every=1, max_wait=5.0, recovery=10.0)
    results, _load = await faults(pg_url, creds, ["cut"], o, pool=6, quiet=True, **SMALL)
    (res,) = results
    assert any(s.status == 503 for s in res.samples), "no COMMIT was cut"
    findings = [f for f in res.findings if f.check not in NOT_HERE]
    assert not findings, "\n".join(map(str, findings))
