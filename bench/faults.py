"""``make faults`` / ``python -m bench.faults``: the soak's workload while the database
misbehaves, each fault followed by the consistency checks.

Two server processes reach a scratch PostgreSQL database through a TCP proxy this script
starts (:mod:`bench.proxy`, on loopback). The workload (:mod:`bench.workload`) runs through
each phase in turn, on the same database (the checks cover everything done so far):

``refuse``     the database refuses connections (open ones reset) for ``--refuse-seconds``;
``blackhole``  the network drops everything silently, open connections included, which stay
               dead afterwards (``--stall-seconds``);
``freeze``     nothing moves and nothing is lost (``--stall-seconds``);
``cut``        the connection of every ``--cut-every``-th COMMIT is dropped right after the
               COMMIT is sent, before its reply reaches the server (``--cut-seconds``): the
               change is committed, the server cannot know;
``kill``       ``kill -9`` of a server process in the middle of a 1,000-record batch (twice), the
               batch retried under its Idempotency-Key on the other server, the process restarted.

Each phase runs the load ``--pre`` seconds before the fault and ``--post`` after, then:

* every 5xx reply is a 503 problem (``application/problem+json``) with ``Retry-After``: no 500;
* no request waits longer than ``--max-wait`` seconds for its answer (a bound hit is a 503;
  the default is the longest the servers' bounds allow, :data:`BOUNDS`, shorter than a stall);
* ``/readyz`` answers within ``--max-wait`` and says 503 while the database is unreachable;
* each server serves again within ``--recovery`` seconds of the fault's end;
* the checks of :func:`bench.workload.check` (feed, events in commit order, chain, batches all
  or nothing, no duplicate, outcomes told truthfully, audit).

Everything that fails is printed as a finding; the exit status is 1 when there is one. Bounded:
each phase ends by itself (a blackhole's dead connections are reset by the proxy if the servers
have not given up on them within ``--recovery``, so the run can go on).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy.engine import make_url

from bench.common import Credentials, Server, free_port, libpq, machine, make_parties, via
from bench.soak import SERVER_ENV, scratch_database, spool_env
from bench.workload import WRITE_KINDS, Finding, Load, Sample, check, format_summary, ops_summary, summary

PHASES = ("refuse", "blackhole", "freeze", "cut", "kill")

# The servers' bounds on waiting for the database in this run (README, "Bounds on waiting for
# the database"), below the defaults so that the longest wait they allow is shorter than a
# stall: a request that waited for the whole stall was not bounded, one that waited its bounds
# was. The longest a request may take while the database does not answer: a statement already
# sent waits the reply bound (statement + margin), then its failure's audit entry two connect
# bounds (a ping, a new connection); a new request waits the pool's bound, a ping and a new
# connection, and its failure's entry the same two again.
BOUNDS = {"statement": 8.0, "margin": 2.0, "connect": 3, "pool": 5.0}
BOUNDS_ENV = {"SINERGI_DB_STATEMENT_TIMEOUT": str(BOUNDS["statement"]), "SINERGI_DB_REPLY_MARGIN": str(BOUNDS["margin"]),
              "SINERGI_DB_CONNECT_TIMEOUT": str(BOUNDS["connect"]), "SINERGI_DB_POOL_TIMEOUT": str(BOUNDS["pool"])}
LONGEST = max(BOUNDS["statement"] + BOUNDS["margin"] + 2 * BOUNDS["connect"], BOUNDS["pool"] + 4 * BOUNDS["connect"])


class ProxyControl:
    """The proxy process and its command line (``bench/proxy.py``)."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc, self.port = proc, port

    @classmethod
    async def start(cls, upstream: str) -> ProxyControl:
        port = free_port()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.proxy", "--listen", str(port), "--upstream", upstream,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        ctl = cls(proc, port)
        first = await ctl._line()
        if not first.get("ok"):
            raise RuntimeError(f"the proxy did not start: {first}")
        return ctl

    async def _line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        async with asyncio.timeout(10):
            line = await self.proc.stdout.readline()
        return orjson.loads(line) if line else {"ok": False, "error": "the proxy exited"}

    async def cmd(self, line: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()
        return await self._line()

    async def close(self) -> None:
        if self.proc.returncode is None:
            try:
                await self.cmd("quit")
            except (Exception, TimeoutError):
                pass
            try:
                async with asyncio.timeout(5):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@dataclass
class Options:
    pre: float = 3.0
    post: float = 5.0
    refuse_seconds: float = 6.0
    stall_seconds: float = LONGEST + 8
    cut_seconds: float = 10.0
    cut_every: int = 3
    max_wait: float = LONGEST + 1
    recovery: float = 15.0
    big: int = 1000


@dataclass
class PhaseResult:
    name: str
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    seconds: float = 0.0


async def _probe_ready(load: Load, out: list[tuple[float, float, int | None, int]], stop: asyncio.Event,
                       max_wait: float) -> None:
    """``GET /readyz`` on every server once a second (each with a client timeout past the bound)."""

    async def one(i: int) -> None:
        t0 = time.monotonic()
        try:
            r = await load.http[i].get("/readyz", timeout=max_wait + 5)
            status: int | None = r.status_code
        except Exception:
            status = None
        out.append((t0, time.monotonic(), status, i))

    while not stop.is_set():
        await asyncio.gather(*(one(i) for i in range(len(load.urls)) if load.up[i]))
        try:
            async with asyncio.timeout(1):
                await stop.wait()
        except TimeoutError:
            pass


async def _recovered(load: Load, i: int, deadline: float) -> float | None:
    """Seconds until server ``i`` answers an authenticated read 200 again (None: not by ``deadline``)."""
    t0 = time.monotonic()
    while time.monotonic() < deadline:
        try:
            r = await load.send("probe", "dp3a", "GET", "/v1/returnees", server=i, params={"limit": 1},
                                timeout=max(1.0, deadline - time.monotonic()))
            if r.status == 200:
                return time.monotonic() - t0
        except Exception:
            pass
        await asyncio.sleep(0.25)
    return None


def _judge_replies(samples: list[Sample], o: Options, res: PhaseResult, *, expected_down: list[tuple[int, float, float]]
                   = ()) -> None:
    """5xx only as 503 problems with Retry-After; nothing waits past the bound; every request
    answered (except those to a server that was killed, while it was down)."""

    def excused(s: Sample) -> bool:
        return any(s.server == i and a - 0.5 <= s.t1 and s.t0 <= b + 0.5 for i, a, b in expected_down)

    five = [s for s in samples if s.status is not None and s.status >= 500]
    not503 = [s for s in five if s.status != 503]
    if not503:
        c = Counter((s.kind, s.status) for s in not503)
        res.findings.append(Finding("5xx", f"{len(not503)} replies other than 503: {c.most_common(5)}; e.g. "
                                           f"{not503[0].path}: {not503[0].detail}"))
    bare = [s for s in five if s.status == 503 and (not (s.content_type or "").startswith("application/problem+json")
                                                     or not s.retry_after)]
    if bare:
        res.findings.append(Finding("5xx", f"{len(bare)} 503 replies without a problem document or Retry-After "
                                           f"(e.g. {bare[0].path}, content-type {bare[0].content_type}, "
                                           f"Retry-After {bare[0].retry_after})"))
    slow = [s for s in samples if s.latency > o.max_wait and not excused(s)]
    if slow:
        c = Counter(s.kind for s in slow)
        longest = max(slow, key=lambda s: s.latency)
        res.findings.append(Finding("bounded", f"{len(slow)} requests waited longer than {o.max_wait:.0f} s for "
                                               f"their answer (longest {longest.latency:.1f} s, {longest.path}, "
                                               f"answered {longest.status or longest.error}); by kind "
                                               f"{dict(c.most_common(6))}"))
    lost = [s for s in samples if s.status is None and not excused(s)]
    if lost:
        c = Counter((s.kind, s.error) for s in lost)
        res.findings.append(Finding("bounded", f"{len(lost)} requests got no answer at all: {c.most_common(5)}"))
    c503 = Counter(s.ptype.rsplit("/", 1)[-1] if s.ptype else "?" for s in five if s.status == 503)
    if c503:
        res.notes.append("503 problem types: " + ", ".join(f"{k} {v}" for k, v in c503.most_common()))


async def fault_phase(load: Load, proxy: ProxyControl, name: str, mode: str, seconds: float, o: Options) -> PhaseResult:
    res = PhaseResult(name)
    marks: dict[str, float] = {}
    probes: list[tuple[float, float, int | None, int]] = []
    stop_probes = asyncio.Event()
    first = len(load.samples)

    async def controller() -> None:
        await asyncio.sleep(o.pre)
        await proxy.cmd(f"mode {mode}")
        marks["start"] = time.monotonic()
        probing = asyncio.ensure_future(_probe_ready(load, probes, stop_probes, o.max_wait))
        await asyncio.sleep(seconds)
        stats = await proxy.cmd("mode pass")
        marks["end"] = time.monotonic()
        if mode == "cut":
            res.notes.append(f"COMMITs cut: {stats.get('cuts')}")
        deadline = marks["end"] + o.recovery
        took = await asyncio.gather(*(_recovered(load, i, deadline) for i in range(len(load.urls))))
        for i, t in enumerate(took):
            if t is None:
                res.findings.append(Finding("recovery", f"server {i + 1} did not serve again within {o.recovery:.0f} s "
                                                        f"of the {name}'s end"))
            else:
                res.notes.append(f"server {i + 1} served again {t:.1f} s after the {name} ended")
        if mode == "blackhole":
            aborted = await proxy.cmd("abort-dead")
            if aborted.get("aborted"):
                res.notes.append(f"{aborted['aborted']} connections the blackhole left dead were still open "
                                 f"{o.recovery:.0f} s after it (reset by the proxy)")
        stop_probes.set()
        await probing
        await asyncio.sleep(o.post)

    res.seconds = await load.run(0, controller())
    res.samples = load.samples[first:]
    _judge_replies(res.samples, o, res)
    # /readyz: answered within the bound, and said the database was unreachable
    during = [p for p in probes if marks["start"] <= p[0] <= marks["end"]]
    late = [p for p in probes if p[2] is None or p[1] - p[0] > o.max_wait]
    if late:
        res.findings.append(Finding("readyz", f"{len(late)} of {len(probes)} /readyz probes took longer than "
                                              f"{o.max_wait:.0f} s or got no answer (longest "
                                              f"{max(p[1] - p[0] for p in late):.1f} s)"))
    if mode in ("refuse", "blackhole", "freeze") and during and not any(p[2] == 503 for p in during):
        res.findings.append(Finding("readyz", f"/readyz never said 503 during the {name} "
                                              f"(answers: {Counter(p[2] for p in during).most_common()})"))
    return res


async def kill_phase(load: Load, servers: list[Server], o: Options) -> PhaseResult:
    res = PhaseResult("kill -9")
    first = len(load.samples)
    down: list[tuple[int, float, float]] = []

    async def controller() -> None:
        await asyncio.sleep(o.pre)
        for delay in (0.05, 0.2):
            state: dict[str, Any] = {}

            async def kill(task: asyncio.Future[Any], delay: float = delay, state: dict[str, Any] = state) -> None:
                await asyncio.sleep(delay)
                state["mid"] = not task.done()
                state["at"] = time.monotonic()
                load.up[0] = False
                servers[0].kill9()

            ops = await load.push_batch(keyed=True, dup=False, size=o.big, kind="batch.big", first=0, kill=kill)
            op = ops[0]
            said = " → ".join(str(a[1]) for a in op.attempts)
            if not state.get("mid"):
                res.notes.append(f"the {o.big}-record batch was answered before the kill after {delay:.2f} s ({said})")
            elif op.outcome != "ok":
                res.findings.append(Finding("kill", f"the batch killed mid-way was not done by its keyed retry on the "
                                                    f"other server: {said} (a stuck Idempotency-Key?)"))
            else:
                res.notes.append(f"batch killed after {delay:.2f} s: {said}, done "
                                 f"{op.t_done - state['at']:.1f} s after the kill")
            servers[0].start()
            try:
                await asyncio.to_thread(servers[0].wait_ready, 60)
            except RuntimeError as exc:
                res.findings.append(Finding("kill", f"the killed server did not start again: {exc}"))
            load.up[0] = True
            down.append((0, state.get("at", time.monotonic()), time.monotonic()))
            await asyncio.sleep(1.5)
        await asyncio.sleep(o.post)

    res.seconds = await load.run(0, controller())
    res.samples = load.samples[first:]
    _judge_replies(res.samples, o, res, expected_down=down)
    return res


async def run_faults(urls: list[str], servers: list[Server], proxy: ProxyControl, creds: dict[str, Credentials],
                     conninfo: str, phases: list[str], o: Options, *, quiet: bool = False, **load_kw: Any) -> tuple[list[PhaseResult], Load]:
    results: list[PhaseResult] = []
    seen: set[str] = set()
    async with Load(urls, creds, **load_kw) as load:
        for name in phases:
            if name == "kill":
                res = await kill_phase(load, servers, o)
            else:
                seconds = {"refuse": o.refuse_seconds, "cut": o.cut_seconds}.get(name, o.stall_seconds)
                mode = f"cut {o.cut_every}" if name == "cut" else name
                res = await fault_phase(load, proxy, name, mode, seconds, o)
            await load.finish_checks()
            for f in check(load, conninfo, no_5xx=False):
                if str(f) not in seen:
                    res.findings.append(f)
            seen |= {str(f) for f in res.findings}
            results.append(res)
            if not quiet:
                print_phase(res)
    return results, load


def print_phase(res: PhaseResult) -> None:
    print(f"\n=== {res.name} ({res.seconds:.0f} s)", flush=True)
    writes = [s for s in res.samples if s.kind in WRITE_KINDS]
    c = Counter(str(s.status) if s.status is not None else str(s.error) for s in writes)
    print("write replies: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    for n in res.notes:
        print(f"  {n}")
    if res.findings:
        for f in res.findings:
            print(f"  FINDING {f}")
    else:
        print("  all checks passed")
    sys.stdout.flush()


async def faults(url: str, creds: dict[str, Credentials], phases: list[str], o: Options, *,
                 pool: int | None = None, **load_kw: Any) -> tuple[list[PhaseResult], Load]:
    """Start the proxy and two servers behind it on ``url``, run ``phases``, stop them."""
    u = make_url(url)
    proxy = await ProxyControl.start(f"{u.host or '127.0.0.1'}:{u.port or 5432}")
    spool = tempfile.TemporaryDirectory(prefix="sinergi-spool-")
    env = {**SERVER_ENV, **BOUNDS_ENV, **spool_env(spool.name), **({"SINERGI_DB_POOL_SIZE": str(pool)} if pool else {})}
    servers = [Server(via(url, proxy.port), env=env) for _ in range(2)]
    try:
        servers[0].start()
        await asyncio.to_thread(servers[0].wait_ready)  # the first start makes the signing key
        servers[1].start()
        await asyncio.to_thread(servers[1].wait_ready)
        load_kw.setdefault("timeout", o.stall_seconds + o.recovery + 30)
        return await run_faults([s.url for s in servers], servers, proxy, creds, libpq(url), phases, o, **load_kw)
    finally:
        for s in servers:
            s.stop()
        await proxy.close()
        spool.cleanup()


async def main_async(url: str, creds: dict[str, Credentials], args: argparse.Namespace, o: Options) -> int:
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    results, load = await faults(url, creds, phases, o, pool=args.pool, batch_size=args.batch)
    ran = sum(r.seconds for r in results)
    print()
    print(format_summary(summary(load.samples, ran), ran))
    print(ops_summary(load))
    findings = [(r.name, f) for r in results for f in r.findings]
    print()
    if findings:
        print(f"FAILED: {len(findings)} finding(s)")
        for name, f in findings:
            print(f"  {name}: {f}")
    else:
        print("all phases passed")
    return 1 if findings else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__.split("\n\n")[0])
    d = Options()
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma list of {', '.join(PHASES)} (default all)")
    parser.add_argument("--pre", type=float, default=d.pre, help="seconds of load before each fault")
    parser.add_argument("--post", type=float, default=d.post, help="seconds of load after each fault")
    parser.add_argument("--refuse-seconds", type=float, default=d.refuse_seconds)
    parser.add_argument("--stall-seconds", type=float, default=d.stall_seconds, help="blackhole and freeze")
    parser.add_argument("--cut-seconds", type=float, default=d.cut_seconds)
    parser.add_argument("--cut-every", type=int, default=d.cut_every, help="cut every N-th COMMIT (default 3)")
    parser.add_argument("--max-wait", type=float, default=d.max_wait, help="the longest a request may wait for "
                        f"its answer (default {d.max_wait:g} s: the servers' bounds, BOUNDS)")
    parser.add_argument("--recovery", type=float, default=d.recovery, help="seconds a server has to serve again "
                        "after a fault (default 15)")
    parser.add_argument("--batch", type=int, default=20, help="records per pushed batch")
    parser.add_argument("--pool", type=int, default=None, help="SINERGI_DB_POOL_SIZE of the servers")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args(argv)
    unknown = [p for p in args.phases.split(",") if p.strip() and p.strip() not in PHASES]
    if unknown:
        parser.error(f"unknown phases {unknown}")
    o = Options(pre=args.pre, post=args.post, refuse_seconds=args.refuse_seconds, stall_seconds=args.stall_seconds,
                cut_seconds=args.cut_seconds, cut_every=args.cut_every, max_wait=args.max_wait,
                recovery=args.recovery)
    print(f"faults: {args.phases} on {machine()}", flush=True)
    started = time.monotonic()
    with scratch_database(args.keep) as url:
        creds = asyncio.run(make_parties(url))
        rc = asyncio.run(main_async(url, creds, args, o))
    print(f"({time.monotonic() - started:.0f} s in all)")
    return rc


if __name__ == "__main__":
    sys.exit(main())
