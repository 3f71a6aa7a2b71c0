"""The server's own bounds, on a real `sinergi serve` process: a head sent a byte at a time is
cut at its deadline, a body that does not arrive is answered 408, an oversized head 431, and
requests past the limit in flight get a 503 problem with Retry-After instead of piling up."""

from __future__ import annotations

import json
import select
import socket
import sys
import time
from pathlib import Path

import httpx

from bench.common import wait_answering
from models import AgencyKind
from tests.e2e.test_two_processes import server

SINERGI = str(Path(sys.executable).parent / "sinergi")


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def trickle(sock: socket.socket, data: bytes, pause: float) -> int:
    """Send ``data`` a byte at a time until the server answers or hangs up: how many bytes
    went before it did (``len(data)``: it waited for all of them)."""
    for sent in range(len(data)):
        if select.select([sock], [], [], 0)[0]:
            return sent  # an answer (or the close) is there: the server did not wait
        try:
            sock.sendall(data[sent:sent + 1])
        except (BrokenPipeError, ConnectionResetError):
            return sent
        time.sleep(pause)
    return len(data)


def read_reply(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Everything the server sends until it closes the connection, as (status, headers, body)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def assert_problem(status: int, headers: dict[str, str], body: bytes, want: int, slug: str) -> None:
    assert status == want, (status, body)
    assert headers["content-type"] == "application/problem+json"
    assert headers.get("connection") == "close"
    doc = json.loads(body)
    assert doc["type"] == "/problems/" + slug and doc["status"] == want


def test_slow_headers_are_cut_at_the_deadline(database_url, monkeypatch):
    monkeypatch.setenv("SINERGI_HEADER_TIMEOUT", "1")
    monkeypatch.setenv("SINERGI_MAX_HEADER_BYTES", "4096")
    with server(database_url, SINERGI, "serve") as url:
        # Slowloris: a request line, then a header a byte every 0.1 s, never finished.
        sock = connect(url)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        header = b"X-Slow: " + b"a" * 100
        sent = trickle(sock, header, 0.1)
        status, headers, body = read_reply(sock)
        sock.close()
        assert sent < len(header), "the server waited for the whole slow header"
        assert_problem(status, headers, body, 408, "request-timeout")

        # A connection that never sends anything is closed by the server (the socket's own
        # 10 s timeout would raise instead of reading the end of the stream).
        sock = connect(url)
        assert sock.recv(1) == b""
        sock.close()

        # A head larger than the bound: 431, closed.
        sock = connect(url)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(4):
                sock.sendall(b"X-Big: " + b"b" * 2000 + b"\r\n")
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, headers, body = read_reply(sock)
        sock.close()
        assert_problem(status, headers, body, 431, "headers-too-large")

        # A keep-alive client that sends its requests in time is not affected.
        with httpx.Client(base_url=url, timeout=10) as http:
            for _ in range(3):
                assert http.get("/healthz").status_code == 200
                time.sleep(0.6)  # idle between requests: under the keep-alive bound (5 s)


async def test_slow_body_is_answered_408(database_url, monkeypatch, make_party):
    bp3mi = await make_party("BP3MI-KALBAR", "61", ["returnees:write"], kind=AgencyKind.migrant_protection)
    monkeypatch.setenv("SINERGI_BODY_TIMEOUT", "1")
    with server(database_url, SINERGI, "serve") as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            r = await http.post("/oauth/token", data={"grant_type": "client_credentials"},
                                auth=(bp3mi.client_id, bp3mi.client_secret))
            assert r.status_code == 200, r.text
            token = r.json()["access_token"]
        body = json.dumps({"items": []}).encode() + b" " * 400
        sock = connect(url)
        sock.sendall(b"POST /v1/returnees/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer " + token.encode() + b"\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        sent = trickle(sock, body[:60], 0.1)  # a byte every 0.1 s: 6 s for a seventh of the body
        status, headers, reply = read_reply(sock)
        sock.close()
        assert sent < 60, "the server waited for the slow body"
        assert_problem(status, headers, reply, 408, "request-timeout")
        # The same body sent at once is taken (an empty batch is a validation error, not a timeout).
        r = httpx.post(url + "/v1/returnees/batch", content=body, timeout=10,
                       headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
        assert r.status_code != 408, r.text
        assert r.status_code < 500, r.text


def test_requests_past_the_limit_in_flight_get_503(database_url, monkeypatch):
    monkeypatch.setenv("SINERGI_MAX_CONCURRENCY", "2")
    monkeypatch.setenv("SINERGI_BODY_TIMEOUT", "20")
    with server(database_url, SINERGI, "serve") as url:
        # Two requests in flight: their heads are complete, their bodies have not come.
        held = []
        for _ in range(2):
            sock = connect(url)
            sock.sendall(b"POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
                         b"\r\nContent-Length: 100\r\n\r\n")
            held.append(sock)
        time.sleep(0.5)
        r = httpx.get(url + "/healthz", timeout=10)
        assert r.status_code == 503, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["retry-after"] == "1"
        assert r.json()["type"] == "/problems/unavailable"
        for sock in held:
            sock.close()
        # the held requests end when their clients go away
        assert wait_answering(url + "/healthz", timeout=5), "still refusing after the held requests ended"
