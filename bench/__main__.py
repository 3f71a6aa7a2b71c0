"""``python -m bench``: Sinergi against the limit of the same machine, measured in the same run.

Row "push": 10,000 returnees pushed end to end (HTTP, token, validation, encryption, person
matching, audit chain, outbox) to a real server (``sinergi serve --workers N``) on a fresh
PostgreSQL database, in batches of 100; baseline: **the storage floor**, raw psycopg writing
exactly the rows the push writes (the persons, the records into the real, indexed
``returnee`` table, the 100 events with their feed head, the 100 audit subjects and the audit
entry with its chain head) in the same 100-row transactions. An informational row compares
with the old baseline, the records alone into a plain table without indexes.

Row "read": ``GET /v1/referrals/{id}`` (token check, the readable-set query, the history, the
audit entry) by 32 keep-alive clients against 2 server processes; baseline: the same with
auditing switched off (``bench/noaudit.py``, a bench-only app). Throughput and p99.

Row "mixed": the soak's mixed workload (``bench/soak.py``) for ``--mixed-seconds``:
throughput and p99 per kind of request, and whether its consistency checks passed.

Row "stats": ``GET /v1/stats/returnees?group_by=district,month`` as a province-level agency
over 1,000,000 returnees loaded with COPY (in process, through the ASGI app), the protection
against differencing applied; baseline: the bare ``GROUP BY`` of district and month.

Row "verify": the audit chain verification (``api.core.audit.verify``) of a chain of 500,000
entries loaded with COPY; baseline: the same rows and columns read through a psycopg
server-side cursor without hashing. A second row verifies from a signed checkpoint 1,000
entries before the head: only the entries after it should be read.

Row "sdk": the partner client (``sinergi_client``) against bare httpx, per call, on the same
endpoint in the same run (``bench/sdk.py``).

Row "webhooks": webhook delivery against a bare httpx loop posting the same signed bodies to
the same receiver, and a receiver outage: zero lost, zero twice (``bench/webhooks.py``).

``--only push,read,mixed,stats,verify,sdk,webhooks`` picks rows (default: all). See ``bench/README.md``.

Environment: ``SINERGI_BENCH_POSTGRES`` (an admin URL of the server to create the scratch
database on; default ``postgresql://postgres@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
from psycopg.types.json import Jsonb

from bench.common import (
    AGENCY,
    ROOT,
    Server,
    create_database,
    drop_database,
    free_port,
    libpq,
    machine,
    make_parties,
    records,
    wait_answering,
)
from bench.webhooks import run_webhooks


async def make_client(url: str) -> tuple[str, str]:
    creds = await make_parties(url, ["bp3mi"])
    return creds["bp3mi"].client_id, creds["bp3mi"].secret


# --- Sinergi, end to end ---------------------------------------------------------------------


def start_server(url: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SINERGI_DATABASE_URL": url, "SINERGI_LOG_LEVEL": "WARNING", "SINERGI_LOG_JSON": "false",
           "SINERGI_MODE": "development"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from api.cli import main; main()", "serve", "--port", str(port),
         "--workers", str(workers)],
        cwd=ROOT, env=env,
    )
    if wait_answering(f"http://127.0.0.1:{port}/readyz", timeout=30, alive=lambda: proc.poll() is None, interval=0.2):
        return proc
    if proc.poll() is not None:
        raise SystemExit("the server did not start")
    proc.terminate()
    raise SystemExit("the server did not become ready in 30 s")


async def push_all(bases: list[str], client_id: str, secret: str, batches: list[list[dict[str, Any]]],
                   concurrency: int, during: Any = None) -> float:
    """The batches pushed by ``concurrency`` clients, client ``i`` sending to ``bases[i % n]``
    (a round-robin balancer in front of the server processes: one uvicorn with ``--workers``
    lets whichever worker wakes first accept every connection that is waiting, so 4 keep-alive
    clients starting together usually all land on one process)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with contextlib.AsyncExitStack() as stack:
        https = [await stack.enter_async_context(httpx.AsyncClient(base_url=b, limits=limits, timeout=60))
                 for b in bases]
        http = https[0]
        r = await http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
        r.raise_for_status()
        headers = {"Authorization": f"Bearer {r.json()['access_token']}", "Content-Type": "application/json"}
        # bodies encoded before the clock starts, as the baseline's rows are
        bodies = [orjson.dumps({"records": b}) for b in batches]
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        for body in bodies:
            queue.put_nowait(body)

        async def worker(i: int) -> None:
            http = https[i % len(https)]
            while not queue.empty():
                body = queue.get_nowait()
                resp = await http.post("/v1/returnees/batch", content=body, headers=headers)
                resp.raise_for_status()
                statuses = {x["status"] for x in resp.json()["results"]}
                if statuses != {"created"}:
                    raise SystemExit(f"unexpected results: {statuses}")

        # warm-up: one batch through each server, not timed (connections, caches, the heads)
        for h in https:
            if not queue.empty():
                await h.post("/v1/returnees/batch", content=queue.get_nowait(), headers=headers)
        if during is not None:
            during()
        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        return time.perf_counter() - started


# --- the baselines ---------------------------------------------------------------------------

_PLAIN_COLUMNS = (
    "id uuid, source_agency text, source_ref text, person_id uuid, version int, content_hash text, "
    "full_name text, sex text, birth_date date, nik_enc text, nik_index text, passport_enc text, "
    "passport_index text, phone_enc text, phone_index text, origin_district text, origin_subdistrict text, "
    "address text, returned_from_country text, returned_from_region text, return_type text, return_date date, "
    "entry_point text, employer text, sector text, documented boolean, trafficking_status text, "
    "control_methods jsonb, exploitation_types jsonb, recruiter_relationship text, created_at timestamptz, "
    "updated_at timestamptz"
)
_RETURNEE_COLUMNS = [c.split()[0] for c in _PLAIN_COLUMNS.split(", ")]


def baseline_rows(recs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The ``returnee`` rows of ``recs`` as the push writes them (encrypted, indexed, hashed),
    computed before any clock starts."""
    from api.core import clock
    from api.core.settings import Settings
    from api.returnees.schemas import ReturneeIn
    from api.returnees.service import _columns, _Keys, content_hash

    keys = _Keys.of(Settings(mode="development"))
    now = clock.now()
    rows = []
    for r in recs:
        item = ReturneeIn.model_validate(r)
        c = _columns(item, content_hash(item, keys), keys)
        rows.append((
            uuid.uuid4(), AGENCY, c["source_ref"], uuid.uuid4(), 1, c["content_hash"], c["full_name"], c["sex"],
            c["birth_date"], c["nik_enc"], c["nik_index"], c["passport_enc"], c["passport_index"], c["phone_enc"],
            c["phone_index"], c["origin_district"], c["origin_subdistrict"], c["address"],
            c["returned_from_country"], c["returned_from_region"], c["return_type"], c["return_date"],
            c["entry_point"], c["employer"], c["sector"], c["documented"], c["trafficking_status"],
            Jsonb(c["control_methods"]), Jsonb(c["exploitation_types"]), c["recruiter_relationship"], now, now,
        ))
    return rows


def raw_executemany(url: str, rows: list[tuple[Any, ...]], batch: int, table: str) -> float:
    """Informational: the records alone into a plain table (no index, key or constraint)."""
    placeholders = ", ".join(["%s"] * len(rows[0]))
    with psycopg.connect(libpq(url)) as conn:
        conn.execute(f"CREATE TABLE {table} ({_PLAIN_COLUMNS})")
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cur:
            for i in range(0, len(rows), batch):
                cur.executemany(f"INSERT INTO {table} VALUES ({placeholders})", rows[i : i + batch])
                conn.commit()
        return time.perf_counter() - started


# The audit append as the service does it on PostgreSQL (head advanced, hashed and the entry
# inserted in one statement), in psycopg's parameter style.
_FLOOR_APPEND = """
    WITH h AS (
        UPDATE audit_head SET seq = seq + 1, prev_hash = hash,
               hash = encode(sha256(convert_to(hash || E'\\n' || (seq + 1)::text || E'\\n' || %(body)s::text,
                                               'UTF8')), 'hex')
         WHERE chain = %(chain)s
     RETURNING seq, prev_hash, hash)
    INSERT INTO audit_event (chain, seq, id, occurred_at, client_id, agency, action, resource_type, resource_id,
                             outcome, request_id, body, prev_hash, hash)
    SELECT %(chain)s, h.seq, %(id)s, %(at)s, %(client)s, %(agency)s, 'returnee.batch', NULL, NULL, 'allowed',
           %(rid)s, %(body)s, h.prev_hash, h.hash FROM h
"""


_REGISTER_COLUMNS = ("person_id, full_name, sex, birth_date, nik_enc, nik_context, origin_district, origin_subdistrict, "
                     "origin_village, departures, procedural_departures, returns, deportations, last_departure, "
                     "last_return, last_return_type, status, repeat_return, updated_at")


def _register_row(r: tuple[Any, ...], now: Any) -> tuple[Any, ...]:
    """The register row of the new person of the ``returnee`` row ``r`` (of :func:`baseline_rows`)."""
    deported = r[20] == "deported"
    return (r[3], r[6], r[7], r[8], r[9], "returnee.nik", r[15], r[16], None, 0, 0, 1, int(deported), None, r[21],
            r[20], "deported" if deported else "returned", False, now)


def storage_floor(url: str, rows: list[tuple[Any, ...]], batch: int, key: str, copy: bool = False,
                  change_pos: bool = True, register: bool = True) -> float:
    """The storage floor: exactly the rows a push of ``rows`` writes, with raw psycopg, in
    ``batch``-row transactions on one connection: the persons, the records (into ``returnee``
    itself, with all its indexes, unique key and foreign keys, and their change positions after
    advancing the list's change head, as the service has numbered them since issue 9), the
    events after advancing their feed's head, the register's person rows (since issue 11: every
    push sums its people into the register), the audit subjects, and one audit entry appended
    to its chain's head. Feed, chain and change head are ``key`` (of their own, so the
    service's are untouched; same tables; the floor's change positions start far above the
    service's, the index on them being unique).
    ``executemany`` (pipelined, prepared) for each table; with ``copy``, ``COPY`` instead (the
    cheapest way PostgreSQL takes rows; informational). Without ``change_pos`` and ``register``,
    the records without their change positions and no register rows (the floor before issue 9's
    sync order and issue 11's register; informational)."""
    from api.core import clock
    from api.core.audit import _iso
    from models import GENESIS_HASH

    cols = ", ".join(_RETURNEE_COLUMNS)
    # everything the statements take is built before the clock starts, as the rows are
    batches = []
    now = clock.now()
    for i in range(0, len(rows), batch):
        chunk = rows[i : i + batch]
        persons = [(r[3], r[10], now) for r in chunk]
        events = [(uuid.uuid4(), "returnee.created", now, r[15], AGENCY,
                   orjson.dumps({"id": str(r[0]), "source_ref": r[2], "origin_district": r[15],
                                 "trafficking_status": r[26]}).decode()) for r in chunk]
        entry_id = uuid.uuid4()
        subjects = [(entry_id, "returnee", str(r[0])) for r in chunk]
        body = orjson.dumps({
            "id": str(entry_id), "chain": key, "occurred_at": _iso(now), "client_id": "cl_bench", "agency": AGENCY,
            "action": "returnee.batch", "resource_type": None, "resource_id": None, "outcome": "allowed",
            "request_id": uuid.uuid4().hex, "subjects": [["returnee", str(r[0])] for r in chunk],
            "detail": {"created": len(chunk), "updated": 0, "unchanged": 0, "scope": "returnees:write",
                       "ip": "127.0.0.1"}}, option=orjson.OPT_SORT_KEYS).decode()
        entry = {"chain": key, "id": entry_id, "at": now, "client": "cl_bench", "agency": AGENCY,
                 "rid": uuid.uuid4().hex, "body": body}
        batches.append((persons, chunk, events, subjects, entry))
    with psycopg.connect(libpq(url)) as conn:
        conn.execute("INSERT INTO event_head (key, pos) VALUES (%s, 0) ON CONFLICT DO NOTHING", (key,))
        conn.execute("INSERT INTO change_head (key, pos) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                     (key, int(key[-1]) * 10**12))
        conn.execute("INSERT INTO audit_head (chain, seq, hash, prev_hash) VALUES (%s, 0, %s, %s) "
                     "ON CONFLICT DO NOTHING", (key, GENESIS_HASH, GENESIS_HASH))
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cur:
            def write(table: str, columns: str, values: list[tuple[Any, ...]]) -> None:
                if copy:
                    with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as cp:
                        for v in values:
                            cp.write_row(v)
                else:
                    marks = ", ".join(["%s"] * len(values[0]))
                    cur.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", values)

            for persons, chunk, events, subjects, entry in batches:
                write("person", "id, nik_index, created_at", persons)
                # the records carry their change positions from the start (the service sets them
                # in a second statement at its commit, under the change head's lock)
                if change_pos:
                    cur.execute("UPDATE change_head SET pos = pos + %s WHERE key = %s RETURNING pos", (len(chunk), key))
                    last_change = cur.fetchone()[0]
                    write("returnee", cols + ", change_pos",
                          [(*r, last_change - len(chunk) + 1 + j) for j, r in enumerate(chunk)])
                else:
                    write("returnee", cols, chunk)
                if register:  # the register's person view, one row per new person
                    write("register_person", _REGISTER_COLUMNS, [_register_row(r, now) for r in chunk])
                write("audit_subject", "event_id, resource_type, resource_id", subjects)
                cur.execute("UPDATE event_head SET pos = pos + %s WHERE key = %s RETURNING pos", (len(events), key))
                last = cur.fetchone()[0]
                first = last - len(events) + 1
                write("event", "key, pos, id, type, occurred_at, region, audience, data",
                      [(key, first + j, *e) for j, e in enumerate(events)])
                cur.execute(_FLOOR_APPEND, entry)
                conn.commit()
        return time.perf_counter() - started


BENCHMARKS = ("push", "read", "mixed", "stats", "verify", "sdk", "webhooks")


def _profile(pids: list[int], out: str) -> list[subprocess.Popen[bytes]]:
    """py-spy on each of the server's worker processes (raw folded stacks to ``out.PID``) until
    it is interrupted, if py-spy is installed (on PATH, or ``PY_SPY``; more options in
    ``PY_SPY_ARGS``)."""
    spy = os.environ.get("PY_SPY") or shutil.which("py-spy")
    if not spy:
        print("(no py-spy: not profiled)", file=sys.stderr)
        return []
    extra = os.environ.get("PY_SPY_ARGS", "").split()  # e.g. --native
    return [subprocess.Popen([spy, "record", "--format", "raw", "--rate", "250", *(extra or ["--nonblocking"]),
                              "--pid", str(pid), "-o", f"{out}.{pid}"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
            for pid in pids]


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes so far (Linux /proc), 0 for any that is gone."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def _backends(url: str) -> list[int]:
    """The PostgreSQL backends connected to this database (the servers' pools)."""
    from sqlalchemy.engine import make_url

    with psycopg.connect(libpq(url)) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                            (make_url(url).database,)).fetchall()
    return [r[0] for r in rows]


CPU_NOTE: list[str] = []


def _push_once(args: argparse.Namespace, url: str, client_id: str, secret: str, run: str, start: int,
               profile: str | None) -> tuple[float, str]:
    """One push of ``args.rows`` new records of new persons (``run`` and ``start`` make them
    distinct) through servers started for it: its seconds, and a note of the CPU it took per batch."""
    recs = records(args.rows + args.batch * args.workers, run, start=start)  # + the untimed warm-up batches
    batches = [recs[i : i + args.batch] for i in range(0, len(recs), args.batch)]
    ports = [free_port() for _ in range(args.workers)]
    procs: list[subprocess.Popen[bytes]] = []
    profiled: list[subprocess.Popen[bytes]] = []
    cpu: dict[str, float] = {}
    pids: list[int] = []

    def during() -> None:
        pids.extend(p.pid for p in procs)
        cpu["workers"] = _cpu_seconds(pids)
        cpu["pg"] = _cpu_seconds(_backends(url))
        cpu["client"] = _cpu_seconds([os.getpid()])
        if profile:
            profiled.extend(_profile(pids, profile))
            time.sleep(1)  # py-spy attaches

    try:
        for port in ports:  # one process each, the clients spread over them (push_all)
            procs.append(start_server(url, port, 1))
        e2e_s = asyncio.run(push_all([f"http://127.0.0.1:{p}" for p in ports], client_id, secret, batches,
                                     args.concurrency, during))
        n_batches = len(batches) - args.workers
        server = _cpu_seconds(pids) - cpu["workers"]
        pg = _cpu_seconds(_backends(url)) - cpu["pg"]
        client = _cpu_seconds([os.getpid()]) - cpu["client"]
        note = (f"CPU per batch of {args.batch} during the faster push: server processes {server / n_batches * 1000:.1f} ms, "
                f"PostgreSQL backends {pg / n_batches * 1000:.1f} ms, load generator {client / n_batches * 1000:.1f} ms "
                f"(wall {e2e_s / n_batches * 1000:.1f} ms a batch)")
    finally:
        for p in profiled:
            p.send_signal(signal.SIGINT)  # py-spy writes what it sampled
        for p in profiled:
            p.wait(30)
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
    return e2e_s, note


def run_push(args: argparse.Namespace, url: str) -> list[str]:
    client_id, secret = asyncio.run(make_client(url))
    run = uuid.uuid4().hex[:6]
    floor_rows = [baseline_rows(records(args.rows, f"f{k}{run}", start=(k + 1) * 1_000_000)) for k in range(6)]
    plain_rows = baseline_rows(records(args.rows, f"p{run}", start=9_000_000))

    # Each side runs twice, alternately (baselines, the push, baselines, the push: the machine
    # may be busier during one of them); the better run of each side is the one compared.
    floor_s = storage_floor(url, floor_rows[0], args.batch, "floor1")
    copy_s = storage_floor(url, floor_rows[1], args.batch, "floor2", copy=True)
    old_s = storage_floor(url, floor_rows[4], args.batch, "floor5", change_pos=False, register=False)
    plain_s = raw_executemany(url, plain_rows, args.batch, "bench_plain_1")
    first = _push_once(args, url, client_id, secret, f"{run}a", 0, profile=args.profile)
    floor_s = min(floor_s, storage_floor(url, floor_rows[2], args.batch, "floor3"))
    copy_s = min(copy_s, storage_floor(url, floor_rows[3], args.batch, "floor4", copy=True))
    old_s = min(old_s, storage_floor(url, floor_rows[5], args.batch, "floor6", change_pos=False, register=False))
    plain_s = min(plain_s, raw_executemany(url, plain_rows, args.batch, "bench_plain_2"))
    second = _push_once(args, url, client_id, secret, f"{run}b", args.rows + args.batch * args.workers, profile=None)
    e2e_s, note = min(first, second)
    CPU_NOTE.append(note + f"; the two pushes took {first[0]:.2f} and {second[0]:.2f} s")

    floor_rate, e2e_rate, plain_rate, copy_rate, old_rate = (args.rows / x for x in (floor_s, e2e_s, plain_s, copy_s,
                                                                                      old_s))
    ratio = e2e_rate / floor_rate
    return [
        f"| batch push of {args.rows:,} returnees on PostgreSQL, end to end, batches of {args.batch} "
        f"({args.workers} server processes, {args.concurrency} clients spread over them); baseline: the storage floor (raw "
        f"psycopg writing the same rows: persons, records with their change positions into the indexed "
        f"`returnee`, the register's person rows, events, audit subjects "
        f"and entry, in {args.batch}-row transactions) | {floor_rate:,.0f} rows/s | {e2e_rate:,.0f} rows/s | "
        f"{ratio:.2f} | ≥ 0.70 | {'ok' if ratio >= 0.7 else 'BELOW TARGET'} |",
        f"| informational: the same storage floor without the records' change positions and the register's rows "
        f"(the floor before issue 9's sync order and issue 11's register) | {old_rate:,.0f} rows/s | {e2e_rate:,.0f} rows/s | {e2e_rate / old_rate:.2f} | "
        f"(none) | informational |",
        f"| informational: the same storage floor written with `COPY` instead of `executemany` | "
        f"{copy_rate:,.0f} rows/s | {e2e_rate:,.0f} rows/s | {e2e_rate / copy_rate:.2f} | (none) | informational |",
        f"| informational: the records alone into a plain table without indexes (the old baseline) | "
        f"{plain_rate:,.0f} rows/s | {e2e_rate:,.0f} rows/s | {e2e_rate / plain_rate:.2f} | (none) | informational |",
    ]


def run_read(args: argparse.Namespace, url: str) -> list[str]:
    """One referral, read by 32 keep-alive clients through 2 server processes (the clients spread
    over them, as for the push), with auditing and without (the bench-only app).

    Both variants' servers are up the whole time (4 processes; the 2 not measured sit idle) and
    the load moves between them in short blocks, alternately (A B, B A, A B, ...): the machine's
    speed drifting over a minute (seen here by a third) then falls on both sides of each pair
    alike, where one long run of each, minutes apart, compared two moments of the machine as
    much as the two variants. The ratio is the median over the pairs of audited / plain; the
    rates and p99s shown are over all of a variant's blocks."""
    import statistics

    from bench.loadgen import Result, hammer

    creds = asyncio.run(make_parties(url, ["bp3mi", "polres"]))
    # 32 clients of one agency: far past a partner's rate. A pool opens only the connections its
    # process uses at once (16 here): 4 processes, 64 connections.
    env = {"SINERGI_RATE_CLIENT": "0"}
    apps = {"audited": "api.main:app", "plain": "bench.noaudit:app"}
    servers = {name: [Server(url, app=app, env=env) for _ in range(2)] for name, app in apps.items()}
    blocks: dict[str, list[Any]] = {"audited": [], "plain": []}
    cpu: dict[str, list[tuple[float, ...]]] = {"audited": [], "plain": []}  # ms a request: servers, PostgreSQL, load
    try:
        for group in servers.values():
            for one in group:
                one.start()
        for group in servers.values():
            for one in group:
                one.wait_ready()
        first = servers["audited"][0]
        c = creds["bp3mi"]
        r = httpx.post(first.url + "/oauth/token", data={"grant_type": "client_credentials"},
                       auth=(c.client_id, c.secret), timeout=30)
        r.raise_for_status()
        h = {"Authorization": f"Bearer {r.json()['access_token']}"}
        body = {"to_agency": "POLRES-BENGKAYANG", "reason": "suspected_tppo_victim", "legal_basis": "UU-21-2007:51",
                "urgency": "normal", "subject": {"full_name": "Subjek Uji", "sex": "F", "district": "61.07.07"},
                "consent": {"given": True, "given_by": "the subject", "given_at": "2025-05-20T03:00:00Z",
                            "method": "written"}}
        r = httpx.post(first.url + "/v1/referrals", json=body, headers=h, timeout=30)
        r.raise_for_status()
        path = f"/v1/referrals/{r.json()['id']}"
        ports = {name: [one.port for one in group] for name, group in servers.items()}
        for name in apps:  # each variant's pools filled and its code warm before anything is timed
            asyncio.run(hammer(ports[name], path, h, clients=args.read_clients, seconds=1.0, warmup=0.5))
        for round_ in range(args.read_rounds):
            order = list(apps) if round_ % 2 == 0 else list(reversed(apps))
            for name in order:
                pids = [p for one in servers[name] for p in one.pids()]
                before = (_cpu_seconds(pids), _cpu_seconds(_backends(url)), _cpu_seconds([os.getpid()]))
                spies = _profile(pids, f"{args.profile}.{name}") if args.profile and round_ == 0 else []
                try:
                    res = asyncio.run(hammer(ports[name], path, h, clients=args.read_clients,
                                             seconds=args.read_seconds, warmup=0.5))
                finally:
                    for spy in spies:
                        spy.send_signal(signal.SIGINT)
                    for spy in spies:
                        spy.wait(30)
                after = (_cpu_seconds(pids), _cpu_seconds(_backends(url)), _cpu_seconds([os.getpid()]))
                cpu[name].append(tuple((b - a) / max(1, res.total) * 1000 for a, b in zip(before, after, strict=True)))
                if set(res.statuses) != {200}:
                    raise SystemExit(f"the read ({name}) answered {res.statuses}")
                blocks[name].append(res)
    finally:
        for group in servers.values():
            for one in group:
                one.stop()

    def pooled(results: list[Any]) -> Any:
        out = Result(sum(x.seconds for x in results))
        for x in results:
            out.latencies.extend(x.latencies)
        return out

    pairs = [a.rate / b.rate for a, b in zip(blocks["audited"], blocks["plain"], strict=True)]
    ratio = statistics.median(pairs)
    a, b = pooled(blocks["audited"]), pooled(blocks["plain"])
    p99 = a.pct(0.99) * 1000
    ok = ratio >= 0.8 and p99 < 100
    for name in ("audited", "plain"):
        server, pg, load = (statistics.median(x[i] for x in cpu[name]) for i in range(3))
        CPU_NOTE.append(f"CPU per read ({name}, median of the blocks): server processes {server:.2f} ms, "
                        f"PostgreSQL backends {pg:.2f} ms, load generator {load:.2f} ms")
    CPU_NOTE.append(f"The read's pairs (audited / plain, {args.read_rounds} pairs of {args.read_seconds:g} s blocks): "
                    + ", ".join(f"{x:.2f}" for x in pairs))
    return [
        f"| audited read of one referral (`GET /v1/referrals/{{id}}`), {args.read_clients} clients, 2 server "
        f"processes; baseline: the same with auditing switched off (alternate blocks; median of the pairs) | "
        f"{b.rate:,.0f} req/s, p99 {b.pct(0.99) * 1000:.0f} ms | {a.rate:,.0f} req/s, p99 {p99:.0f} ms | {ratio:.2f} | "
        f"≥ 0.80, p99 < 100 ms | {'ok' if ok else 'BELOW TARGET'} |"
    ]


MIXED_DETAIL: list[str] = []


def run_mixed(args: argparse.Namespace, url: str) -> list[str]:
    from bench.soak import servers, soak
    from bench.workload import format_summary

    creds = asyncio.run(make_parties(url))
    with servers(url, 2) as procs:
        findings, rows, ran, _load = asyncio.run(soak([p.url for p in procs], creds, libpq(url), args.mixed_seconds))
    total = sum(r["n"] for r in rows)
    MIXED_DETAIL.extend(["", f"Mixed workload ({ran:.0f} s, 2 server processes, {machine()}):", "",
                         "```", format_summary(rows, ran), "```"])
    if findings:
        MIXED_DETAIL.extend(["", "Its consistency checks FAILED:", *(f"- {f}" for f in findings)])
    worst = max(rows, key=lambda r: r["p99"])
    return [
        f"| mixed workload ({ran:.0f} s of `bench/soak.py`, 2 server processes): all requests; per kind below | — | "
        f"{total / ran:,.0f} req/s; highest p99 {worst['p99']:.0f} ms ({worst['kind']}) | — | recorded | "
        f"{'checks passed' if not findings else f'{len(findings)} CHECKS FAILED'} |"
    ]


def run_verify(args: argparse.Namespace, url: str) -> list[str]:
    from bench import reads

    base_rate, rate, text_rate = reads.bench_verify(url, libpq(url), args.audit_rows)
    ratio = rate / base_rate
    tail = args.checkpoint_tail
    cp_s, cp_checked, all_s, all_checked = reads.sinergi_verify_from_checkpoint(url, tail)
    reads_tail = cp_checked <= tail + 2
    return [
        f"| audit chain verification of {args.audit_rows:,} entries, reading from PostgreSQL "
        f"(baseline: server-side cursor read alone, no hashing) | {base_rate:,.0f} rows/s | {rate:,.0f} rows/s | "
        f"{ratio:.2f} | ≥ 0.90 | {'ok' if ratio >= 0.9 else 'BELOW TARGET'} |",
        f"| informational: the same cursor reading verify's own statement (`id`, `occurred_at` as text) "
        f"| {text_rate:,.0f} rows/s | {rate:,.0f} rows/s | {rate / text_rate:.2f} | (none) | informational |",
        f"| verification from a signed checkpoint {tail:,} entries before the head (baseline: the whole "
        f"chain) | {all_checked:,} entries, {all_s * 1000:,.0f} ms | {cp_checked:,} entries, {cp_s * 1000:,.0f} ms | "
        f"{cp_s / all_s:.2f} × | reads only the entries after it | "
        f"{'ok' if reads_tail else 'READS THE WHOLE CHAIN'} |",
    ]


def run_stats(args: argparse.Namespace, url: str) -> list[str]:
    from bench import reads

    asyncio.run(make_client(url))  # the source agency of the records
    base_s, ours_s = reads.bench_stats(url, libpq(url), args.returnees, AGENCY)
    ratio = ours_s / base_s
    return [
        f"| district × month statistics over {args.returnees:,} returnees, province caller, in process, "
        f"protection against differencing applied (baseline: bare SQL GROUP BY) | {base_s * 1000:,.0f} ms | "
        f"{ours_s * 1000:,.0f} ms | {ratio:.2f} × | ≤ 1.00 × | {'ok' if ratio <= 1.0 else 'ABOVE TARGET'} |"
    ]


def run_sdk(args: argparse.Namespace, url: str) -> list[str]:
    from bench import sdk

    return sdk.rows(url, args.sdk_calls, args.sdk_rounds)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(BENCHMARKS),
                        help=f"comma list of benchmarks to run, of {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--rows", type=int, default=10_000, help="push: returnees pushed")
    parser.add_argument("--batch", type=int, default=100, help="push: records per batch")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="push: server processes")
    parser.add_argument("--concurrency", type=int, default=2 * (os.cpu_count() or 2),
                        help="push: clients pushing at once")
    parser.add_argument("--profile", default=None, help="push and read: py-spy's raw stacks of the server's "
                        "workers, to this path (.PID appended; the read: .audited.PID and .plain.PID, its first "
                        "round), while the push or the read runs (needs py-spy on PATH or PY_SPY)")
    parser.add_argument("--read-clients", type=int, default=32, help="read: clients at once")
    parser.add_argument("--read-seconds", type=float, default=4.0, help="read: seconds of each block")
    parser.add_argument("--read-rounds", type=int, default=8,
                        help="read: pairs of blocks (audited and plain, alternately first)")
    parser.add_argument("--mixed-seconds", type=float, default=30.0, help="mixed: seconds of the soak workload")
    parser.add_argument("--audit-rows", type=int, default=500_000, help="verify: entries on the chain")
    parser.add_argument("--checkpoint-tail", type=int, default=1_000, help="verify: entries after the checkpoint")
    parser.add_argument("--sdk-calls", type=int, default=200, help="sdk: calls a round")
    parser.add_argument("--sdk-rounds", type=int, default=4, help="sdk: alternating rounds of each")
    parser.add_argument("--returnees", type=int, default=1_000_000, help="stats: returnees in the table")
    parser.add_argument("--webhook-events", type=int, default=1_000, help="webhooks: events delivered (twice)")
    args = parser.parse_args()
    only = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = [x for x in only if x not in BENCHMARKS]
    if unknown or not only:
        parser.error(f"--only takes a comma list of {', '.join(BENCHMARKS)}")
    if args.read_rounds < 1 or args.read_seconds <= 0:
        parser.error("--read-rounds must be at least 1 and --read-seconds more than 0")

    os.environ.setdefault("SINERGI_MODE", "development")
    runners = {"push": run_push, "read": run_read, "mixed": run_mixed, "verify": run_verify, "stats": run_stats,
               "sdk": run_sdk, "webhooks": run_webhooks}
    lines: list[str] = []
    started = time.monotonic()
    print(f"bench on {machine()}", flush=True)
    for which in BENCHMARKS:
        if which not in only:
            continue
        # each benchmark on its own scratch database: the tables one fills do not slow another
        name, url = create_database()
        try:
            from api.core.migrate import upgrade

            upgrade(url)
            lines += runners[which](args, url)
        finally:
            drop_database(name)
        print(f"({which} done, {time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)

    print()
    print("| what | baseline | Sinergi | ratio | target | |")
    print("|---|---:|---:|---:|---:|---|")
    for line in lines:
        print(line)
    for line in CPU_NOTE + MIXED_DETAIL:
        print(line)
    print(f"\n({time.monotonic() - started:.0f} s in all; machine at the end: {machine()})")


if __name__ == "__main__":
    main()
