"""A real ``uvicorn`` server on a copy of the demo world (tests/demo_world.py), for the
client's tests and the examples' (one per test module and backend), and a small HTTP front
that can lose a reply.

``live`` yields a :class:`Live`: its ``url``, the demo clients' credentials and a way to make
``Sinergi`` / ``AsyncSinergi`` clients for a demo agency.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from bench.common import wait_answering
from sinergi_client import AsyncSinergi, Sinergi
from tests.demo_world import DemoCopy

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    return os.environ | {
        "SINERGI_DATABASE_URL": database_url,
        "SINERGI_MODE": "development",
        "SINERGI_LOG_JSON": "false",
        "SINERGI_LOG_LEVEL": "WARNING",
        "SINERGI_DB_POOL_SIZE": "5",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "clients")]),
        **extra,
    }


@contextmanager
def serve(database_url: str, *command: str, **env: str) -> Iterator[str]:
    """A real server process on a free port (``uvicorn api.main:app``, or ``command`` with the
    address appended); yields its base URL once /readyz answers; always stops it (its whole
    process group). ``env``: more environment variables for it."""
    port = free_port()
    log = tempfile.TemporaryFile()  # not a pipe: a chatty server must never block on it
    args = [*(command or (sys.executable, "-m", "uvicorn", "api.main:app")), "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(args, cwd=ROOT, env=server_env(database_url, **env), stdout=subprocess.DEVNULL,
                            stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_answering(url + "/readyz", timeout=30, alive=lambda: proc.poll() is None):
            if proc.poll() is not None:
                log.seek(0)
                raise AssertionError(f"server exited: {log.read().decode(errors='replace')[-2000:]}")
            raise AssertionError("server did not become ready")
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


@dataclass
class Live:
    url: str
    database_url: str
    creds: dict[str, dict[str, Any]]
    backend: str

    def client(self, agency: str, **kwargs: Any) -> Sinergi:
        c = self.creds[agency]
        return Sinergi(self.url, c["client_id"], c["client_secret"], **kwargs)

    def async_client(self, agency: str, **kwargs: Any) -> AsyncSinergi:
        c = self.creds[agency]
        return AsyncSinergi(self.url, c["client_id"], c["client_secret"], **kwargs)

    def env(self, agency: str) -> dict[str, str]:
        """The environment an example script reads its connection from."""
        c = self.creds[agency]
        return os.environ | {"SINERGI_BASE_URL": self.url, "SINERGI_CLIENT_ID": c["client_id"],
                             "SINERGI_CLIENT_SECRET": c["client_secret"],
                             "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "clients")])}


@contextmanager
def live_world(world: DemoCopy, **env: str) -> Iterator[Live]:
    """The server on ``world`` (a copy of the demo world), ``env`` added to its environment."""
    with serve(world.url, **env) as base:
        yield Live(base, world.url, world.demo["clients"], world.backend)


# --- a front that loses one reply ---------------------------------------------------------


@dataclass
class LosingFront:
    """An HTTP server in front of ``upstream``: it forwards everything, but the first request
    that ``lose(method, path)`` picks is forwarded (the server does it) and answered with
    ``reply`` instead of the server's answer, as a proxy that lost the reply would."""

    upstream: str
    lose: Callable[[str, str], bool]
    reply: Callable[[], tuple[int, dict[str, str], bytes]]
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    lost: int = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        method, path = scope["method"], scope["path"]
        headers = {k.decode(): v.decode() for k, v in scope["headers"] if k.decode() != "host"}
        self.seen.append((method, path, headers))
        query = scope["query_string"].decode()
        async with httpx.AsyncClient(timeout=30) as http:
            r = await http.request(method, self.upstream + path + ("?" + query if query else ""), content=body,
                                   headers=headers)
        status, out_headers, content = r.status_code, dict(r.headers), r.content
        out_headers.pop("content-length", None)
        out_headers.pop("content-encoding", None)
        out_headers.pop("transfer-encoding", None)
        if self.lost == 0 and self.lose(method, path):
            self.lost += 1
            status, out_headers, content = self.reply()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(k.encode(), v.encode()) for k, v in out_headers.items()]})
        await send({"type": "http.response.body", "body": content})


@contextmanager
def front(app: LosingFront) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
