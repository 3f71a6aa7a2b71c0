"""A real HTTP receiver of webhooks on loopback, in a thread: it can be stopped and started again
on the same port, told what to answer, and it keeps every request it got."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """``keep_alive``: HTTP/1.1 with persistent connections (else a connection per request, so a
    stopped receiver gets nothing); ``connections`` counts the connections it accepted."""

    def __init__(self, port: int | None = None, *, keep_alive: bool = False) -> None:
        self.port = port or free_port()
        self.keep_alive = keep_alive
        self.received: list[Received] = []
        self.connections = 0
        self.reply = b"ok"  # the body of every answer
        self.reply_headers: dict[str, str] = {}
        self.dribble = 0.0  # seconds between the reply body's bytes (0: all at once)
        self.status = 200
        self.location: str | None = None  # with a 3xx status: where it redirects
        self.delay = 0.0  # seconds before answering
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if receiver.keep_alive else "HTTP/1.0"
            disable_nagle_algorithm = True

            def setup(self) -> None:
                super().setup()
                with receiver._lock:
                    receiver.connections += 1

            def do_POST(self) -> None:  # noqa: N802 - the http.server name
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                      body))
                    status, location, delay = receiver.status, receiver.location, receiver.delay
                    reply, extra, dribble = receiver.reply, dict(receiver.reply_headers), receiver.dribble
                if delay:
                    time.sleep(delay)
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                try:
                    for part in [reply[i:i + 1] for i in range(len(reply))] if dribble else [reply]:
                        self.wfile.write(part)
                        self.wfile.flush()
                        time.sleep(dribble)
                except OSError:  # the sender stopped reading (a reply longer than it reads)
                    self.close_connection = True

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        # stop() waits for the serving loop to look again: every 50 ms, not the default 500 ms
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def ids(self) -> list[str]:
        with self._lock:
            return [r.headers["webhook-id"] for r in self.received]


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True
    request_queue_size = 256  # the default backlog of 5 drops concurrent connections (a second's retransmit)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
