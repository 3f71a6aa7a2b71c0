"""Row "sdk": the partner client's cost per call against bare httpx, same endpoint, same run.

One server process on the scratch database; one referral read over and over
(``GET /v1/referrals/{id}``) by one keep-alive connection: bare ``httpx.Client`` with a bearer
token, decoding the JSON, against ``sinergi_client.Sinergi`` (``client.referrals.get``: its
auth flow with a cached token, retry loop, Idempotency-Key rules, pydantic models). Rounds
alternate between the two (``--sdk-rounds`` each, ``--sdk-calls`` calls a round) and the best
round of each is kept, so what the other work on the machine does to one does it to the other.
The client's own CPU per call (this process's CPU time, the server runs elsewhere) is reported
beside the wall time: it is the overhead itself, unblurred by the server.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from bench.common import Server, make_parties
from sinergi_client import Sinergi

REFERRAL = {"to_agency": "POLRES-BENGKAYANG", "reason": "suspected_tppo_victim", "legal_basis": "UU-21-2007:51",
            "urgency": "normal", "subject": {"full_name": "Subjek Uji", "sex": "F", "district": "61.07.07"},
            "consent": {"given": True, "given_by": "the subject", "given_at": "2025-05-20T03:00:00Z",
                        "method": "written"}}


@dataclass
class Round:
    wall: float  # seconds per call
    cpu: float  # this process's CPU seconds per call


def _timed(call: object, n: int) -> Round:
    assert callable(call)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        call()
    return Round((time.perf_counter() - wall) / n, (time.process_time() - cpu) / n)


def bench_sdk(url: str, calls: int, rounds: int) -> tuple[Round, Round]:
    creds = asyncio.run(make_parties(url, ["bp3mi", "polres"]))["bp3mi"]
    server = Server(url, env={"SINERGI_RATE_CLIENT": "0"})
    server.start()
    try:
        server.wait_ready()
        with Sinergi(server.url, creds.client_id, creds.secret) as sdk, httpx.Client(base_url=server.url) as bare:
            referral = sdk.referrals.create(**REFERRAL)
            token = httpx.post(server.url + "/oauth/token", data={"grant_type": "client_credentials"},
                               auth=(creds.client_id, creds.secret)).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            path = f"/v1/referrals/{referral.id}"

            def with_httpx() -> None:
                r = bare.get(path, headers=headers)
                r.raise_for_status()
                r.json()

            def with_sdk() -> None:
                sdk.referrals.get(referral.id)

            with_httpx(), with_sdk()  # warm: connections, token
            best_bare: Round | None = None
            best_sdk: Round | None = None
            for _ in range(rounds):
                b = _timed(with_httpx, calls)
                s = _timed(with_sdk, calls)
                best_bare = b if best_bare is None or b.wall < best_bare.wall else best_bare
                best_sdk = s if best_sdk is None or s.wall < best_sdk.wall else best_sdk
            assert best_bare is not None and best_sdk is not None
            return best_bare, best_sdk
    finally:
        server.stop()


def rows(url: str, calls: int = 200, rounds: int = 4) -> list[str]:
    bare, sdk = bench_sdk(url, calls, rounds)
    ratio = sdk.wall / bare.wall
    return [
        f"| partner client's overhead per call: `client.referrals.get(id)` against bare httpx `GET "
        f"/v1/referrals/{{id}}` + JSON decode, one keep-alive connection, 1 server process (best of {rounds} "
        f"alternating rounds of {calls} calls) | {bare.wall * 1000:.2f} ms a call (client CPU "
        f"{bare.cpu * 1000:.2f} ms) | {sdk.wall * 1000:.2f} ms a call (client CPU {sdk.cpu * 1000:.2f} ms) | "
        f"{ratio:.2f} × | ≤ 1.20 × | {'ok' if ratio <= 1.2 else 'ABOVE TARGET'} |"
    ]
