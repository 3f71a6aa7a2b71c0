"""``python -m bench``: Sinergi against the limit of the same machine, measured in the same run.

Row "batch push": 10,000 returnees pushed end to end (HTTP, token, validation, encryption,
person matching, audit chain, outbox) to a real uvicorn server on a fresh PostgreSQL database,
in batches of 100; baseline: raw psycopg ``executemany`` of the same rows (the same columns,
encrypted values computed beforehand) in 100-row transactions into a plain table. An
informational second row inserts the same rows the same way into a copy of ``returnee`` (its
indexes, unique key and foreign keys, the persons inserted beforehand), to show how much of the
gap is the schema; the target is against the plain table.

Row "verify": the audit chain verification (``api.audit.service.verify``) of a chain of
500,000 entries loaded with COPY; baseline: the same rows and columns read through a psycopg
server-side cursor without hashing. Row "stats": ``GET /v1/stats/returnees?group_by=district,month``
as a province-level agency over 1,000,000 returnees loaded with COPY (in process, through the
ASGI app); baseline: the bare ``GROUP BY`` of district and month. See ``bench/README.md``.

``--only push,verify,stats`` picks rows (default: all).

Environment: ``SINERGI_BENCH_POSTGRES`` (an admin URL of the server to create the scratch
database on; default ``postgresql://postgres@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import sqlalchemy as sa
from psycopg.types.json import Jsonb
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get("SINERGI_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
AGENCY = "BP3MI-KALBAR"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def records(n: int, run: str) -> list[dict[str, Any]]:
    """``n`` valid, distinct returnee records (deterministic apart from ``run``)."""
    out = []
    subs = [f"61.07.{i:02d}" for i in range(1, 18)]
    for i in range(n):
        sex = "F" if i % 2 else "M"
        born = date(1980, 1, 1) + timedelta(days=(i * 37) % 9000)
        day = born.day + (40 if sex == "F" else 0)
        sub = subs[i % len(subs)]
        out.append({
            "source_ref": f"BENCH-{run}-{i:06d}",
            "full_name": f"Peserta Uji {i}",
            "nik": f"6107{sub[-2:]}{day:02d}{born:%m%y}{i % 9999 + 1:04d}",
            "passport_number": f"C{1000000 + i}",
            "phone": f"+62812{i:08d}",
            "sex": sex,
            "birth_date": born.isoformat(),
            "origin_district": "61.07",
            "origin_subdistrict": sub,
            "address": f"Jalan Uji {i} RT 001/RW 002",
            "returned_from_country": "MY",
            "returned_from_region": "Sarawak",
            "return_type": ("deported", "repatriated", "self_returned")[i % 3],
            "return_date": (date(2025, 1, 1) + timedelta(days=i % 180)).isoformat(),
            "entry_point": "PLBN Jagoi Babang",
            "employer": "Ladang Uji Sdn Bhd",
            "sector": "perkebunan kelapa sawit",
            "documented": bool(i % 2),
            "trafficking_status": ("unknown", "not_victim", "possible")[i % 3],
            "control_methods": ["withholds_documents"] if i % 3 == 2 else [],
            "exploitation_types": ["forced_labour"] if i % 3 == 2 else [],
        })
    return out


# --- the database ----------------------------------------------------------------------------


def create_database() -> tuple[str, str]:
    from api.core.db import sync_url

    name = f"sinergi_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(sync_url(ADMIN_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(sync_url(ADMIN_URL)).set(database=name, drivername="postgresql+psycopg")
    return name, url.render_as_string(hide_password=False)


def drop_database(name: str) -> None:
    from api.core.db import sync_url

    admin = sa.create_engine(sync_url(ADMIN_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def make_client(url: str) -> tuple[str, str]:
    from api.agencies import service as agencies
    from api.agencies.schemas import AgencyCreate, ClientCreate
    from api.core.db import Database
    from api.core.unit import operator_unit
    from api.core.settings import Settings
    from models import AgencyKind

    db = Database(Settings(database_url=url))
    try:
        async with operator_unit(db, "bench") as session:
            await agencies.create_agency(session, AgencyCreate(
                code=AGENCY, name="BP3MI Kalimantan Barat", kind=AgencyKind.migrant_protection, jurisdiction="61"))
            created = await agencies.create_client(session, AGENCY, ClientCreate(scopes=["returnees:write"]))
        return created.client_id, created.client_secret
    finally:
        await db.dispose()


# --- Sinergi, end to end ---------------------------------------------------------------------


def start_server(url: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SINERGI_DATABASE_URL": url, "SINERGI_LOG_LEVEL": "WARNING", "SINERGI_LOG_JSON": "false",
           "SINERGI_MODE": "development"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from api.cli import main; main()", "serve", "--port", str(port),
         "--workers", str(workers)],
        cwd=ROOT, env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit("the server did not start")
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("the server did not become ready in 30 s")


async def push_all(base: str, client_id: str, secret: str, batches: list[list[dict[str, Any]]],
                   concurrency: int) -> float:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as http:
        r = await http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
        r.raise_for_status()
        headers = {"Authorization": f"Bearer {r.json()['access_token']}", "Content-Type": "application/json"}
        # bodies encoded before the clock starts, as the baseline's rows are
        bodies = [orjson.dumps({"records": b}) for b in batches]
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        for body in bodies:
            queue.put_nowait(body)

        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                resp = await http.post("/v1/returnees/batch", content=body, headers=headers)
                resp.raise_for_status()
                statuses = {x["status"] for x in resp.json()["results"]}
                if statuses != {"created"}:
                    raise SystemExit(f"unexpected results: {statuses}")

        # warm-up: one batch, not timed (connections, caches, the audit and event heads)
        await http.post("/v1/returnees/batch", content=queue.get_nowait(), headers=headers)
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


# --- the baseline ----------------------------------------------------------------------------

_PLAIN_COLUMNS = (
    "id uuid, source_agency text, source_ref text, person_id uuid, version int, content_hash text, "
    "full_name text, sex text, birth_date date, nik_enc text, nik_index text, passport_enc text, "
    "passport_index text, phone_enc text, phone_index text, origin_district text, origin_subdistrict text, "
    "address text, returned_from_country text, returned_from_region text, return_type text, return_date date, "
    "entry_point text, employer text, sector text, documented boolean, trafficking_status text, "
    "control_methods jsonb, exploitation_types jsonb, recruiter_relationship text, created_at timestamptz, "
    "updated_at timestamptz"
)


def baseline_rows(recs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    from api.core import clock
    from api.returnees.schemas import ReturneeIn
    from api.core.settings import Settings
    from api.returnees.service import _columns, _Keys, content_hash

    keys = _Keys.of(Settings())
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


def schema_executemany(url: str, rows: list[tuple[Any, ...]], batch: int, table: str) -> float:
    """The baseline's rows into a copy of ``returnee`` (informational): its columns, indexes,
    unique key and defaults (``LIKE returnee INCLUDING ALL``) and its two foreign keys, to
    ``agency`` (the bench's agency exists) and ``person`` (the rows' persons are inserted
    first, untimed)."""
    placeholders = ", ".join(["%s"] * len(rows[0]))
    with psycopg.connect(libpq(url)) as conn:
        conn.execute(f"CREATE TABLE {table} (LIKE returnee INCLUDING ALL)")
        conn.execute(f"ALTER TABLE {table} ADD FOREIGN KEY (source_agency) REFERENCES agency (code), "
                     f"ADD FOREIGN KEY (person_id) REFERENCES person (id)")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO person (id, nik_index, created_at) VALUES (%s, NULL, now()) "
                            "ON CONFLICT DO NOTHING",
                            [(r[3],) for r in rows])
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cur:
            for i in range(0, len(rows), batch):
                cur.executemany(f"INSERT INTO {table} VALUES ({placeholders})", rows[i : i + batch])
                conn.commit()
        return time.perf_counter() - started


BENCHMARKS = ("push", "verify", "stats")


def run_push(args: argparse.Namespace, url: str) -> list[str]:
    client_id, secret = asyncio.run(make_client(url))
    run = uuid.uuid4().hex[:6]
    recs = records(args.rows + args.batch, run)  # + the untimed warm-up batch
    batches = [recs[i : i + args.batch] for i in range(0, len(recs), args.batch)]
    rows = baseline_rows(recs[args.batch :])

    # The baseline runs before and after (the machine may be busier in one of them); the
    # better of the two is the one compared with.
    base_s = raw_executemany(url, rows, args.batch, "bench_plain_1")
    schema_s = schema_executemany(url, rows, args.batch, "bench_schema_1")
    port = _free_port()
    proc = start_server(url, port, args.workers)
    try:
        e2e_s = asyncio.run(push_all(f"http://127.0.0.1:{port}", client_id, secret, batches, args.concurrency))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    base_s = min(base_s, raw_executemany(url, rows, args.batch, "bench_plain_2"))
    schema_s = min(schema_s, schema_executemany(url, rows, args.batch, "bench_schema_2"))

    base_rate, e2e_rate = args.rows / base_s, args.rows / e2e_s
    ratio = e2e_rate / base_rate
    schema_rate = args.rows / schema_s
    return [
        f"| batch push of {args.rows:,} returnees on PostgreSQL, end to end, batches of {args.batch} "
        f"({args.workers} server processes, {args.concurrency} clients) | {base_rate:,.0f} rows/s | "
        f"{e2e_rate:,.0f} rows/s | {ratio:.2f} | ≥ 0.50 | {'ok' if ratio >= 0.5 else 'BELOW TARGET'} |",
        f"| informational: the baseline's rows into a copy of `returnee` (its indexes, unique key and "
        f"foreign keys) instead of the plain table | {schema_rate:,.0f} rows/s | {e2e_rate:,.0f} rows/s | "
        f"{e2e_rate / schema_rate:.2f} | (none) | informational |",
    ]


def run_verify(args: argparse.Namespace, url: str) -> list[str]:
    from bench import reads

    base_rate, rate, text_rate = reads.bench_verify(url, libpq(url), args.audit_rows)
    ratio = rate / base_rate
    return [
        f"| audit chain verification of {args.audit_rows:,} entries, reading from PostgreSQL "
        f"(baseline: server-side cursor, no hashing) | {base_rate:,.0f} rows/s | {rate:,.0f} rows/s | "
        f"{ratio:.2f} | ≥ 0.70 | {'ok' if ratio >= 0.7 else 'BELOW TARGET'} |",
        f"| informational: the same cursor reading verify's own statement (`id`, `occurred_at` as text) "
        f"| {text_rate:,.0f} rows/s | {rate:,.0f} rows/s | {rate / text_rate:.2f} | (none) | informational |",
    ]


def run_stats(args: argparse.Namespace, url: str) -> list[str]:
    from bench import reads

    asyncio.run(make_client(url))  # the source agency of the records
    base_s, ours_s = reads.bench_stats(url, libpq(url), args.returnees, AGENCY)
    ratio = ours_s / base_s
    return [
        f"| district × month statistics over {args.returnees:,} returnees, province caller, in process "
        f"(baseline: bare SQL GROUP BY) | {base_s * 1000:,.0f} ms | {ours_s * 1000:,.0f} ms | "
        f"{ratio:.2f} × | ≤ 1.50 × | {'ok' if ratio <= 1.5 else 'ABOVE TARGET'} |"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(BENCHMARKS),
                        help=f"comma list of benchmarks to run, of {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--rows", type=int, default=10_000, help="push: returnees pushed")
    parser.add_argument("--batch", type=int, default=100, help="push: records per batch")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="push: server processes")
    parser.add_argument("--concurrency", type=int, default=2 * (os.cpu_count() or 2),
                        help="push: clients pushing at once")
    parser.add_argument("--audit-rows", type=int, default=500_000, help="verify: entries on the chain")
    parser.add_argument("--returnees", type=int, default=1_000_000, help="stats: returnees in the table")
    args = parser.parse_args()
    only = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = [x for x in only if x not in BENCHMARKS]
    if unknown or not only:
        parser.error(f"--only takes a comma list of {', '.join(BENCHMARKS)}")

    os.environ.setdefault("SINERGI_MODE", "development")
    runners = {"push": run_push, "verify": run_verify, "stats": run_stats}
    lines: list[str] = []
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

    print()
    print("| what | baseline | Sinergi | ratio | target | |")
    print("|---|---:|---:|---:|---:|---|")
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
