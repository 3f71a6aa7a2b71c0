"""What the benchmarks, the soak and the fault runs share: scratch databases, server processes,
test records and the agencies they act as."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get("SINERGI_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
AGENCY = "BP3MI-KALBAR"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_answering(url: str, *, timeout: float, alive: Callable[[], bool] = lambda: True,
                   status: int | None = 200, interval: float = 0.1) -> bool:
    """Look at ``url`` every ``interval`` seconds until it answers (with ``status``; ``None``: any
    answer) or ``timeout`` seconds have passed or ``alive()`` turns false; whether it answered.
    One HTTP client for every look: a client made for each (``httpx.get``) builds a TLS context
    from the CA store every time, tens of milliseconds of CPU a look."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1) as http:
        while alive():
            try:
                reply = http.get(url)
                if status is None or reply.status_code == status:
                    return True
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                return False
            time.sleep(interval)
    return False


def records(n: int, run: str, start: int = 0, district: str = "61.07") -> list[dict[str, Any]]:
    """``n`` valid, distinct returnee records numbered from ``start`` (deterministic apart from
    ``run``; distinct numbers give distinct NIKs, so distinct persons)."""
    out = []
    subs = [f"{district}.{i:02d}" for i in range(1, 18)]
    for i in range(start, start + n):
        sex = "F" if i % 2 else "M"
        born = date(1980, 1, 1) + timedelta(days=(i * 37) % 9000)
        day = born.day + (40 if sex == "F" else 0)
        sub = subs[i % len(subs)]
        out.append({
            "source_ref": f"BENCH-{run}-{i:06d}",
            "full_name": f"Peserta Uji {i}",
            "nik": f"{district.replace('.', '')}{sub[-2:]}{day:02d}{born:%m%y}{i % 9999 + 1:04d}",
            "passport_number": f"C{1000000 + i}",
            "phone": f"+62812{i:08d}",
            "sex": sex,
            "birth_date": born.isoformat(),
            "origin_district": district,
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


# --- scratch databases -----------------------------------------------------------------------


def create_database(prefix: str = "sinergi_bench") -> tuple[str, str]:
    """A new, empty database on the bench's PostgreSQL: ``(name, SQLAlchemy URL)``."""
    from api.core.db import sync_url

    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
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
    """A SQLAlchemy URL as a libpq connection string (for psycopg directly)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def via(url: str, port: int) -> str:
    """``url`` pointed at 127.0.0.1:``port`` (the fault proxy), without TLS (the proxy reads the
    protocol)."""
    u = make_url(url).set(host="127.0.0.1", port=port)
    u = u.update_query_dict({"sslmode": "disable", "gssencmode": "disable"})
    return u.render_as_string(hide_password=False)


# --- agencies and clients --------------------------------------------------------------------

# name -> (agency code, agency name, kind, jurisdiction, scopes)
PARTIES: dict[str, tuple[str, str, str, str, str]] = {
    "bp3mi": (AGENCY, "BP3MI Kalimantan Barat", "migrant_protection", "61",
              "returnees:write returnees:read notices:write notices:read referrals:write referrals:read "
              "events:read stats:read"),
    "polres": ("POLRES-BENGKAYANG", "Polres Bengkayang", "police", "61.07",
               "referrals:read referrals:respond referrals:write"),
    "dp3a": ("DP3A-BENGKAYANG", "DP3A Bengkayang", "women_child_protection", "61.07",
             "notices:read notices:ack returnees:read"),
    "province": ("DP3A-KALBAR", "DP3A Kalimantan Barat", "women_child_protection", "61", "stats:read"),
    "taskforce": ("GUGUS-TPPO-KALBAR", "Gugus Tugas TPPO Kalimantan Barat", "task_force", "61",
                  "events:read returnees:read notices:read referrals:read"),
    "auditor": ("INSPEKTORAT-KALBAR", "Inspektorat Kalimantan Barat", "inspectorate", "61", "audit:read"),
}


@dataclass(frozen=True)
class Credentials:
    agency: str
    client_id: str
    secret: str


async def make_parties(url: str, names: list[str] | None = None) -> dict[str, Credentials]:
    """Register the agencies of :data:`PARTIES` (those missing) and one new client each,
    through the service's own code (an operator unit, as ``sinergi agency add`` does)."""
    from api.agencies import service as agencies
    from api.agencies.schemas import AgencyCreate, ClientCreate
    from api.core.db import Database
    from api.core.settings import Settings
    from api.core.unit import operator_unit
    from models import Agency, AgencyKind

    db = Database(Settings(database_url=url, mode="development"))
    out: dict[str, Credentials] = {}
    try:
        async with operator_unit(db, "bench") as session:
            for name in names or list(PARTIES):
                code, title, kind, jurisdiction, scopes = PARTIES[name]
                if await session.get(Agency, code) is None:
                    await agencies.create_agency(session, AgencyCreate(
                        code=code, name=title, kind=AgencyKind(kind), jurisdiction=jurisdiction))
                created = await agencies.create_client(session, code, ClientCreate(scopes=scopes.split()))
                out[name] = Credentials(code, created.client_id, created.client_secret)
        return out
    finally:
        await db.dispose()


# --- server processes ------------------------------------------------------------------------


class Server:
    """One ``python -m uvicorn`` process of the service on 127.0.0.1 (stopped, killed, restarted
    on the same port). Its log goes to a file, shown when it does not start."""

    def __init__(self, database_url: str, *, app: str = "api.main:app", workers: int = 1,
                 env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.database_url, self.app, self.workers = database_url, app, workers
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = Path(tempfile.mkstemp(prefix="sinergi-server-", suffix=".log")[1])

    def start(self) -> None:
        env = {**os.environ, "SINERGI_DATABASE_URL": self.database_url, "SINERGI_MODE": "development",
               "SINERGI_LOG_LEVEL": "WARNING", "SINERGI_LOG_JSON": "false", **self.extra_env}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        cmd = [sys.executable, "-m", "uvicorn", self.app, "--host", "127.0.0.1", "--port", str(self.port),
               "--no-access-log", "--log-level", "warning"]
        if self.workers > 1:
            cmd += ["--workers", str(self.workers)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True)

    def wait_ready(self, timeout: float = 60) -> None:
        if wait_answering(self.url + "/readyz", timeout=timeout, alive=self.running):
            return
        if not self.running():
            raise RuntimeError(f"the server on {self.port} exited:\n{self.tail()}")
        raise RuntimeError(f"the server on {self.port} was not ready in {timeout:.0f} s:\n{self.tail()}")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def kill9(self) -> None:
        """SIGKILL the process (and, with several workers, its whole group)."""
        if self.proc is not None and self.proc.poll() is None:
            import signal

            os.killpg(self.proc.pid, signal.SIGKILL) if self.workers > 1 else self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill9()
        self.proc = None

    def pids(self) -> list[int]:
        """The process and its workers (children), for CPU accounting and profiling."""
        if self.proc is None:
            return []
        out = [self.proc.pid]
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
            out += [int(c) for c in children]
        except OSError:
            pass
        return out


def machine() -> str:
    """One line describing the machine (CPU, cores, memory, PostgreSQL, load)."""
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GB RAM"
    except (OSError, ValueError, IndexError):
        pass
    pg = ""
    try:
        import psycopg

        from api.core.db import sync_url

        with psycopg.connect(libpq(sync_url(ADMIN_URL)), connect_timeout=3) as c:
            pg = ", PostgreSQL " + str(c.execute("SHOW server_version").fetchone()[0]).split()[0]
    except Exception:
        pass
    load = ", load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    return f"{cpu}, {os.cpu_count()} cores{mem}{pg}, Python {platform.python_version()}{load}"
