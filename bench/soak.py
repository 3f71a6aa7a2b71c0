"""``make soak`` / ``python -m bench.soak``: the mixed workload against two real server
processes on one PostgreSQL for a bounded time, then the consistency checks.

A scratch database is created on ``SINERGI_BENCH_POSTGRES`` (default
``postgresql://postgres@127.0.0.1:5432/test``), migrated, given the agencies of the workload,
and dropped at the end. Two ``python -m uvicorn api.main:app`` processes serve it on loopback
ports; the workload (:mod:`bench.workload`) runs against both for ``--seconds`` (60), then
the writers finish, the feed pollers drain, and :func:`bench.workload.check` compares what the
clients were told with what the database holds. Prints the throughput and the p50 / p99 per
kind of request, and every check that failed; the exit status is 1 when one did.

The servers run with the per-client rate limits off (``SINERGI_RATE_CLIENT=0``,
``SINERGI_RATE_TOKEN=0``): each agency here is one client sending as fast as it is answered,
far more than a partner system does, and a 429 would only hide what is measured. They share
one audit spool (``SINERGI_AUDIT_SPOOL``, in a temporary directory): a call that fails while
the database is away is audited when it is back.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench.common import Credentials, Server, create_database, drop_database, libpq, machine, make_parties
from bench.workload import Finding, Load, check, format_summary, ops_summary, summary

SERVER_ENV = {"SINERGI_RATE_CLIENT": "0", "SINERGI_RATE_TOKEN": "0"}


@contextmanager
def servers(url: str, n: int = 2, env: dict[str, str] | None = None) -> Iterator[list[Server]]:
    """``n`` server processes on ``url``, started at once, ready; stopped at the end."""
    spool = tempfile.TemporaryDirectory(prefix="sinergi-spool-")
    procs = [Server(url, env={**SERVER_ENV, **spool_env(spool.name), **(env or {})}) for _ in range(n)]
    try:
        procs[0].start()
        procs[0].wait_ready()  # the first start makes the signing key; the others find it
        for p in procs[1:]:
            p.start()
        for p in procs[1:]:
            p.wait_ready()
        yield procs
    finally:
        for p in procs:
            p.stop()
        spool.cleanup()


def spool_env(directory: str) -> dict[str, str]:
    """The servers' shared audit spool, in ``directory``."""
    return {"SINERGI_AUDIT_SPOOL": os.path.join(directory, "audit.spool")}


@contextmanager
def scratch_database(keep: bool = False) -> Iterator[str]:
    from api.core.migrate import upgrade

    name, url = create_database("sinergi_soak")
    try:
        upgrade(url)
        yield url
    finally:
        if not keep:
            drop_database(name)


async def soak(urls: list[str], creds: dict[str, Credentials], conninfo: str, seconds: float,
               **load_kw: Any) -> tuple[list[Finding], list[dict[str, Any]], float, Load]:
    """The workload for ``seconds``, then the checks: (findings, summary rows, seconds run, load)."""
    async with Load(urls, creds, **load_kw) as load:
        ran = await load.run(seconds)
        await load.finish_checks()
        findings = check(load, conninfo)
    return findings, summary(load.samples, ran), ran, load


def report(findings: list[Finding], rows: list[dict[str, Any]], ran: float, load: Load) -> None:
    print(format_summary(rows, ran))
    print()
    print(ops_summary(load))
    feed = ", ".join(f"{p.name} {len(p.ids)} events in {p.pages} polls" for p in load.pollers)
    print(f"feed: {feed}; verifications: {len(load.verifies)} ({sum(1 for v in load.verifies if v[1])} ok)")
    print()
    if findings:
        print(f"FAILED: {len(findings)} check(s)")
        for f in findings:
            print(f"  {f}")
    else:
        print("all checks passed: no 5xx, feed contiguous and complete for both pollers, every write's events "
              "in commit order, chain verified, no partial batch, no duplicate")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the workload runs (default 60)")
    parser.add_argument("--servers", type=int, default=2, help="server processes (default 2)")
    parser.add_argument("--batch", type=int, default=20, help="records per pushed batch (default 20)")
    parser.add_argument("--scale", type=int, default=1, help="writer lanes (each: 2 pushers, 2 referral and "
                        "1 notice driver; default 1)")
    parser.add_argument("--pool", type=int, default=None, help="SINERGI_DB_POOL_SIZE of the servers "
                        "(default: the service's)")
    parser.add_argument("--burst-at", type=float, default=35.0, help="seconds in: pool + 1 simultaneous token "
                        "requests to a third server process, idle until then (past the key store's 30 s "
                        "refresh; default 35; 0 = none)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args(argv)
    env = {"SINERGI_DB_POOL_SIZE": str(args.pool)} if args.pool else {}
    burst = args.burst_at if args.burst_at and args.burst_at < args.seconds else None
    pool = args.pool or 20
    print(f"soak: {args.seconds:.0f} s, {args.servers} server processes, on {machine()}", flush=True)
    started = time.monotonic()
    with scratch_database(args.keep) as url:
        creds = asyncio.run(make_parties(url))
        with servers(url, args.servers + (1 if burst else 0), env) as procs:
            work, idle = (procs[:-1], procs[-1]) if burst else (procs, None)
            findings, rows, ran, load = asyncio.run(soak(
                [p.url for p in work], creds, libpq(url), args.seconds, batch_size=args.batch, scale=args.scale,
                burst_at=burst, burst_size=pool + 1, burst_url=idle.url if idle else None))
    report(findings, rows, ran, load)
    print(f"({time.monotonic() - started:.0f} s in all)")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
