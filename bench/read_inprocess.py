"""The audited read's CPU in one process, its variants alternating in short blocks.

``python -m bench.read_inprocess`` serves the app over ASGI (no sockets, no second process) on a
scratch PostgreSQL database and reads one referral with ``--concurrency`` reads at a time, in
blocks of ``--block`` reads, the variants in turn, ``--pairs`` times: the plain read (auditing
switched off, as ``bench.noaudit``), the audited read as the service does it, and the audited
read with every read appending its entry alone (no group commit). Each line gives a variant's
median CPU a read and the median of its ratios to the plain read's block beside it: on a
machine whose speed drifts, the quickest way to see a change to the audited commit path through
the noise (bench/README.md, "eighth round"). Bench only; the service has no such switches.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx

from api.core import audit
from api.core.unit import Unit
from bench.common import create_database, drop_database, make_parties

_AUDIT = Unit.audit
_COMMIT_READ = audit.commit_read


def _no_audit(self: Unit, *args: object, **kwargs: object) -> None:
    return None


def _plain() -> None:
    Unit.audit = _no_audit  # type: ignore[method-assign]


def _audited() -> None:
    Unit.audit = _AUDIT  # type: ignore[method-assign]
    audit.commit_read = _COMMIT_READ


def _alone() -> None:
    Unit.audit = _AUDIT  # type: ignore[method-assign]
    audit.commit_read = audit.append_and_commit


VARIANTS: dict[str, Callable[[], None]] = {"plain": _plain, "audited": _audited, "alone": _alone}


async def run(url: str, block: int, pairs: int, concurrency: int) -> dict[str, list[float]]:
    from api.app import create_app
    from api.core.settings import Settings

    creds = await make_parties(url, ["bp3mi", "polres"])
    app = create_app(Settings(database_url=url, mode="development", rate_client=0), configure_logging=False)
    cpu: dict[str, list[float]] = {name: [] for name in VARIANTS}
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
            c = creds["bp3mi"]
            r = await client.post("/oauth/token", data={"grant_type": "client_credentials"},
                                  auth=(c.client_id, c.secret))
            r.raise_for_status()
            headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
            body: dict[str, Any] = {
                "to_agency": "POLRES-BENGKAYANG", "reason": "suspected_tppo_victim", "legal_basis": "UU-21-2007:51",
                "urgency": "normal", "subject": {"full_name": "Subjek Uji", "sex": "F", "district": "61.07.07"},
                "consent": {"given": True, "given_by": "the subject", "given_at": "2025-05-20T03:00:00Z",
                            "method": "written"}}
            r = await client.post("/v1/referrals", json=body, headers=headers)
            r.raise_for_status()
            path = f"/v1/referrals/{r.json()['id']}"

            async def reader(n: int) -> None:
                for _ in range(n):
                    reply = await client.get(path, headers=headers)
                    if reply.status_code != 200:
                        raise SystemExit(f"the read answered {reply.status_code}: {reply.text[:300]}")

            for setup in VARIANTS.values():  # every variant warm before anything is timed
                setup()
                await asyncio.gather(*(reader(20) for _ in range(concurrency)))
            gc.collect()
            gc.freeze()  # as api.main does for a server process
            gc.set_threshold(20_000, 50, 100)
            for _ in range(pairs):
                for name, setup in VARIANTS.items():
                    setup()
                    started = time.process_time()
                    await asyncio.gather(*(reader(block // concurrency) for _ in range(concurrency)))
                    cpu[name].append((time.process_time() - started) / (block // concurrency * concurrency) * 1000)
    _audited()
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.read_inprocess", description=__doc__.split("\n\n")[0])
    parser.add_argument("--block", type=int, default=320, help="reads a block")
    parser.add_argument("--pairs", type=int, default=20, help="blocks of each variant")
    parser.add_argument("--concurrency", type=int, default=16, help="reads at a time")
    args = parser.parse_args()
    if args.pairs < 1 or args.concurrency < 1 or args.block < args.concurrency:
        parser.error("--pairs and --concurrency must be at least 1, --block at least --concurrency")
    from api.core.migrate import upgrade

    name, url = create_database()
    try:
        upgrade(url)
        cpu = asyncio.run(run(url, args.block, args.pairs, args.concurrency))
    finally:
        drop_database(name)
    for variant, values in cpu.items():
        ratios = [p / v for p, v in zip(cpu["plain"], values, strict=True)]
        print(f"{variant:8} CPU a read {statistics.median(values):.3f} ms (median of {len(values)} blocks), "
              f"to the plain read: {statistics.median(ratios):.3f} (quartiles "
              f"{statistics.quantiles(ratios, n=4)[0]:.3f}–{statistics.quantiles(ratios, n=4)[2]:.3f})")


if __name__ == "__main__":
    main()
