"""The read benchmarks: audit chain verification and district x month statistics.

Both fill a migrated scratch database with COPY (untimed), then time Sinergi's code against the
bare read of the same data in the same run, best of a few repetitions each.
"""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import orjson
import psycopg

CHAIN = "61"
STATS_AGENCY = "DP3A-KALBAR"

# --- audit chain -------------------------------------------------------------------------------

_ACTIONS = (
    # (action, resource_type, scope, share of entries in 50)
    ("returnees.read", "returnee", "returnees:read"),
    ("referrals.read", "referral", "referrals:read"),
    ("referrals.update", "referral", "referrals:write"),
    ("stats.returnees", "stats", "stats:read"),
    ("notices.read", "notice", "notices:read"),
)
_CLIENTS = [(f"cl_{i:02d}{'x' * 20}", agency) for i, agency in enumerate(
    ("BP3MI-KALBAR", "POLDA-KALBAR", "DP3A-KALBAR", "DINSOS-SAMBAS", "POLRES-BENGKAYANG", "GUGUS-TPPO-SAMBAS"))]


def fill_audit_chain(conninfo: str, n: int) -> None:
    """``n`` entries on chain ``61`` whose bodies are built as :func:`api.audit.service._build`
    builds them (sorted-key orjson of the same fields) and hashed with ``chain_hash``; one in 50
    is a batch push naming 100 returnees (a ≈ 5 kB body), the others single reads and updates.
    Loaded with COPY (an INSERT: the append-only trigger does not fire) and the head set."""
    from api.core.audit import _iso, chain_hash
    from models import GENESIS_HASH

    start = datetime(2026, 1, 1, tzinfo=UTC)
    prev = last_prev = GENESIS_HASH
    cols = ("chain, seq, id, occurred_at, client_id, agency, action, resource_type, resource_id, outcome, "
            "request_id, body, prev_hash, hash")
    with psycopg.connect(conninfo) as conn:
        with conn.cursor() as cur, cur.copy(f"COPY audit_event ({cols}) FROM STDIN") as copy:
            for seq in range(1, n + 1):
                at = start + timedelta(microseconds=seq * 137_911)
                client_id, agency = _CLIENTS[seq % len(_CLIENTS)]
                eid = uuid.uuid4()
                request_id = uuid.uuid4().hex
                if seq % 50 == 0:
                    action, rtype, scope = "returnees.batch", None, "returnees:write"
                    rid = None
                    subjects = [["returnee", str(uuid.uuid4())] for _ in range(100)]
                    detail: dict[str, Any] = {"created": 100, "updated": 0, "unchanged": 0, "scope": scope,
                                              "ip": "10.61.0.7"}
                    outcome = "allowed"
                else:
                    action, rtype, scope = _ACTIONS[seq % len(_ACTIONS)]
                    rid = str(uuid.uuid4()) if rtype != "stats" else None
                    subjects = [[rtype, rid]] if rid else []
                    detail = {"scope": scope, "ip": f"10.61.{seq % 200}.{seq % 250}"}
                    if rtype == "stats":
                        detail.update(group_by=["district", "month"], threshold=5, filters={})
                    outcome = "denied" if seq % 97 == 0 else "allowed"
                    if outcome == "denied":
                        detail = {"status": 403, "problem": "forbidden"}
                body = orjson.dumps({
                    "id": str(eid), "chain": CHAIN, "occurred_at": _iso(at), "client_id": client_id,
                    "agency": agency, "action": action, "resource_type": rtype, "resource_id": rid,
                    "outcome": outcome, "request_id": request_id, "subjects": subjects, "detail": detail,
                }, option=orjson.OPT_SORT_KEYS).decode()
                digest = chain_hash(prev, seq, body)
                copy.write_row((CHAIN, seq, eid, at, client_id, agency, action, rtype, rid, outcome, request_id,
                                body, prev, digest))
                last_prev, prev = prev, digest
        conn.execute("INSERT INTO audit_head (chain, seq, prev_hash, hash) VALUES (%s, %s, %s, %s) "
                     "ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, prev_hash = excluded.prev_hash, "
                     "hash = excluded.hash", (CHAIN, n, last_prev, prev))
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE audit_event")


def raw_chain_read(conninfo: str) -> tuple[float, int]:
    """The baseline: the columns verify reads, in seq order, through a server-side cursor, no hashing."""
    with psycopg.connect(conninfo) as conn:
        started = time.perf_counter()
        count = 0
        with conn.cursor(name="bench_chain") as cur:
            cur.itersize = 5000
            cur.execute(
                "SELECT seq, prev_hash, hash, body, id, occurred_at, client_id, agency, action, resource_type, "
                "resource_id, outcome, request_id FROM audit_event WHERE chain = %s ORDER BY seq", (CHAIN,))
            for _row in cur:
                count += 1
        conn.rollback()
        return time.perf_counter() - started, count


def raw_chain_read_text(conninfo: str) -> tuple[float, int]:
    """Informational: the statement verify runs on PostgreSQL (``id`` and ``occurred_at`` as
    text), through the same kind of cursor, no hashing."""
    from api.core.audit import _PG_VERIFY_SQL

    with psycopg.connect(conninfo) as conn:
        started = time.perf_counter()
        count = 0
        with conn.cursor(name="bench_chain_text") as cur:
            cur.itersize = 5000
            cur.execute(_PG_VERIFY_SQL, {"chain": CHAIN, "first": 1, "upto": 2**62})
            for _row in cur:
                count += 1
        conn.rollback()
        return time.perf_counter() - started, count


def sinergi_verify(url: str) -> tuple[float, int]:
    from api.core.audit import verify
    from api.core.db import Database
    from api.core.settings import Settings

    async def run() -> tuple[float, int]:
        db = Database(Settings(database_url=url))
        try:
            async with db.read() as conn:  # a warm pool: connecting is not what is measured
                await conn.exec_driver_sql("SELECT 1")
            started = time.perf_counter()
            result = await verify(db, CHAIN)
            elapsed = time.perf_counter() - started
        finally:
            await db.dispose()
        if not result.ok:
            raise SystemExit(f"the bench chain did not verify: {result}")
        return elapsed, result.checked

    return asyncio.run(run())


def bench_verify(url: str, conninfo: str, n: int, repeat: int = 3) -> tuple[float, float, float]:
    """Rows per second: (baseline, Sinergi, the informational text read). Alternating runs,
    best of ``repeat`` each."""
    fill_audit_chain(conninfo, n)
    raw_chain_read(conninfo)  # warm the cache
    base, ours, text = [], [], []
    for _ in range(repeat):
        for out, run in ((base, raw_chain_read), (text, raw_chain_read_text)):
            s, count = run(conninfo)
            assert count == n, count
            out.append(s)
        s, count = sinergi_verify(url)
        assert count == n, count
        ours.append(s)
    return n / min(base), n / min(ours), n / min(text)


def sinergi_verify_from_checkpoint(url: str, tail: int) -> tuple[float, int, float, int]:
    """Verification from a signed checkpoint ``tail`` entries before the head: the service's
    signing key signs ``(seq, hash)`` of that entry, :func:`api.core.audit.read_checkpoint`
    reads it back, and :func:`api.core.audit.verify` walks with it. Returns (seconds, entries
    checked) from the checkpoint, and (seconds, entries checked) of a whole walk, best of three
    each; the entries after the checkpoint are ``tail`` (plus the ``keys.create`` entry
    appended when the signing key is made)."""
    from api.core import clock, tokens
    from api.core.audit import read_checkpoint, verify
    from api.core.db import Database
    from api.core.keys import KeyStore, ensure_active_key
    from api.core.settings import Settings

    async def run() -> tuple[float, int, float, int]:
        settings = Settings(database_url=url, mode="development")
        db = Database(settings)
        try:
            await ensure_active_key(db)  # appends keys.create to the chain
            keys = KeyStore(db, settings.access_token_ttl)
            await keys.load()
            async with db.read() as conn:
                head = (await conn.exec_driver_sql(f"SELECT seq FROM audit_head WHERE chain = '{CHAIN}'")).scalar()
                at = head - tail
                digest = (await conn.exec_driver_sql(
                    f"SELECT hash FROM audit_event WHERE chain = '{CHAIN}' AND seq = {at}")).scalar()
            kid, signer = await keys.signing_key()
            signed = tokens.sign_checkpoint(signer=signer, kid=kid, issuer=settings.issuer, chain=CHAIN, seq=at,
                                            hash=digest, now=clock.now())
            best_cp, best_all = (float("inf"), 0), (float("inf"), 0)
            for _ in range(3):
                started = time.perf_counter()
                cp = await read_checkpoint(keys, settings.issuer, signed)
                result = await verify(db, CHAIN, (cp.seq, cp.hash))
                elapsed = time.perf_counter() - started
                if not result.ok:
                    raise SystemExit(f"the bench chain did not verify from its checkpoint: {result}")
                best_cp = min(best_cp, (elapsed, result.checked))
                started = time.perf_counter()
                whole = await verify(db, CHAIN)
                best_all = min(best_all, (time.perf_counter() - started, whole.checked))
            return best_cp[0], best_cp[1], best_all[0], best_all[1]
        finally:
            await db.dispose()

    return asyncio.run(run())


# --- statistics --------------------------------------------------------------------------------

# Kalimantan Barat's districts and cities
_DISTRICTS = [f"61.{d:02d}" for d in range(1, 13)] + ["61.71", "61.72"]
_RETURNEE_COLS = (
    "id", "source_agency", "source_ref", "person_id", "version", "content_hash", "full_name", "sex", "birth_date",
    "nik_enc", "nik_index", "passport_enc", "passport_index", "phone_enc", "phone_index", "origin_district",
    "origin_subdistrict", "address", "returned_from_country", "returned_from_region", "return_type", "return_date",
    "entry_point", "employer", "sector", "documented", "trafficking_status", "control_methods",
    "exploitation_types", "recruiter_relationship", "created_at", "updated_at",
)


def fill_returnees(conninfo: str, n: int, agency: str) -> None:
    """``n`` returnees (each with its person) of ``agency``, spread over Kalimantan Barat's 14
    districts (unevenly) and three years of return dates; COPY, then VACUUM ANALYZE (so the
    visibility map allows index-only scans, as on a table autovacuum has been through).

    As a bulk restore does, the table's secondary indexes and foreign keys are dropped for the
    load and then created again from their own definitions (the keys validated over all rows
    at once): the same table, indexes and constraints, in a fraction of the time."""
    base_day = date(2023, 1, 1)
    chunk = 50_000
    with psycopg.connect(conninfo) as conn:
        indexes = conn.execute(
            "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "WHERE x.indrelid = 'returnee'::regclass AND NOT x.indisprimary "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)").fetchall()
        constraints = conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'returnee'::regclass AND contype IN ('f', 'u')").fetchall()
        for name, _ in constraints:
            conn.execute(f'ALTER TABLE returnee DROP CONSTRAINT "{name}"')
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        conn.commit()
        for lo in range(0, n, chunk):
            hi = min(n, lo + chunk)
            pids = [uuid.uuid4() for _ in range(hi - lo)]
            with conn.cursor() as cur:
                with cur.copy("COPY person (id, nik_index, created_at) FROM STDIN") as copy:
                    copy.write("".join(f"{p}\t\\N\t2026-01-01 00:00:00+00\n" for p in pids))
                buf = io.StringIO()
                for i, pid in zip(range(lo, hi), pids, strict=True):
                    h = uuid.uuid4().hex
                    # uneven: the border districts (Sambas 61.01, Bengkayang 61.07, Sanggau 61.03) send most
                    d = _DISTRICTS[(i * i) % 7 if i % 3 else i % 14]
                    day = base_day + timedelta(days=(i * 7919) % 1095)
                    born = date(1970, 1, 1) + timedelta(days=(i * 104729) % 14000)
                    typ = ("deported", "repatriated", "self_returned")[i % 3]
                    ts = ("unknown", "not_victim", "possible", "confirmed")[i % 4]
                    ctl = '["withholds_documents"]' if ts == "confirmed" else "[]"
                    buf.write(
                        f"{uuid.uuid4()}\t{agency}\tLOAD-{i:07d}\t{pid}\t1\t{h}{h}\tPeserta {i}\t{'FM'[i % 2]}\t"
                        f"{born}\tv1.{h}{h[:20]}\t{h}{h}\tv1.{h[:40]}\t{h}{h}\tv1.{h[:36]}\t{h}{h}\t{d}\t"
                        f"{d}.{1 + i % 9:02d}\tJalan {i} RT 001/RW 002\tMY\tSarawak\t{typ}\t{day}\t"
                        f"PLBN Jagoi Babang\tLadang Sdn Bhd\tperkebunan\t{'tf'[i % 2]}\t{ts}\t{ctl}\t{ctl}\t\\N\t"
                        f"2026-01-01 00:00:00+00\t2026-01-01 00:00:00+00\n")
                with cur.copy(f"COPY returnee ({', '.join(_RETURNEE_COLS)}) FROM STDIN") as copy:
                    copy.write(buf.getvalue())
            conn.commit()
        for _, ddl in indexes:
            conn.execute(ddl)
        for name, ddl in constraints:
            conn.execute(f'ALTER TABLE returnee ADD CONSTRAINT "{name}" {ddl}')
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE person")
        conn.execute("VACUUM ANALYZE returnee")


BARE_STATS = ("SELECT origin_district, date_trunc('month', return_date), count(*) FROM returnee GROUP BY 1, 2")


def bare_stats(conninfo: str, repeat: int) -> float:
    with psycopg.connect(conninfo) as conn:
        conn.execute(BARE_STATS).fetchall()  # warm
        best = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            rows = conn.execute(BARE_STATS).fetchall()
            best = min(best, time.perf_counter() - started)
            assert rows
        conn.rollback()
        return best


async def _make_stats_client(url: str) -> tuple[str, str]:
    from api.agencies import service as agencies
    from api.agencies.schemas import AgencyCreate, ClientCreate
    from api.core.db import Database
    from api.core.settings import Settings
    from api.core.unit import operator_unit
    from models import AgencyKind

    db = Database(Settings(database_url=url))
    try:
        async with operator_unit(db, "bench") as session:
            await agencies.create_agency(session, AgencyCreate(
                code=STATS_AGENCY, name="DP3A Kalimantan Barat", kind=AgencyKind.women_child_protection,
                jurisdiction="61"))
            created = await agencies.create_client(session, STATS_AGENCY, ClientCreate(scopes=["stats:read"]))
        return created.client_id, created.client_secret
    finally:
        await db.dispose()


def sinergi_stats(url: str, n: int, repeat: int) -> float:
    """``GET /v1/stats/returnees?group_by=district,month`` as DP3A Kalimantan Barat (province 61),
    in process: the ASGI app (routing, token check, the service's query, suppression, audit
    entry, JSON reply) called through httpx's ASGI transport."""
    from api.app import create_app
    from api.core.settings import Settings

    client_id, secret = asyncio.run(_make_stats_client(url))

    async def run() -> float:
        app = create_app(Settings(database_url=url), configure_logging=False)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
                r = await http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
                r.raise_for_status()
                headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
                best = float("inf")
                for i in range(repeat + 1):  # the first one warms up
                    started = time.perf_counter()
                    resp = await http.get("/v1/stats/returnees", params={"group_by": "district,month"},
                                          headers=headers)
                    elapsed = time.perf_counter() - started
                    resp.raise_for_status()
                    out = resp.json()
                    # the total is a cell like any other: rounded (to a multiple of 5) by the
                    # protection against differencing, so it may differ from n by up to 4
                    if out["total"] is None or abs(out["total"] - n) > 4:
                        raise SystemExit(f"unexpected total {out['total']} (expected {n}, within 4)")
                    if i:
                        best = min(best, elapsed)
                return best

    return asyncio.run(run())


def bench_stats(url: str, conninfo: str, n: int, agency: str, repeat: int = 5) -> tuple[float, float]:
    """Seconds: (bare GROUP BY, Sinergi), best of ``repeat`` each."""
    fill_returnees(conninfo, n, agency)
    base = bare_stats(conninfo, repeat)
    ours = sinergi_stats(url, n, repeat)
    base = min(base, bare_stats(conninfo, repeat))
    return base, ours
