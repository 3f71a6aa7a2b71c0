"""A TCP proxy between the servers and PostgreSQL that can be told to misbehave.

``python -m bench.proxy --listen PORT --upstream HOST:PORT`` forwards every connection to the
upstream server and reads commands on its standard input, one a line, answering each with one
line of JSON on its standard output (the fault harness, ``bench/faults.py``, drives it):

``mode pass``
    forward bytes both ways (the start).
``mode refuse``
    the database refuses: every open connection is reset and new ones are refused (the
    listening socket is closed, so a connect gets ECONNREFUSED).
``mode blackhole``
    the network silently drops everything: the bytes of every open connection are read and
    thrown away in both directions, and new connections are accepted and never answered. The
    connections caught by it stay dead after the mode ends (a firewall that forgot them),
    until ``abort-dead`` or the client gives up on them; PostgreSQL keeps their sessions (and
    any row locks they hold) meanwhile, as it would.
``mode freeze``
    nothing moves, nothing is lost: bytes are held in both directions and new connections wait;
    everything is delivered when the mode ends.
``mode cut N``
    forward, but drop every N-th connection that sends ``COMMIT`` right after forwarding it:
    PostgreSQL commits, and the reply never reaches the client (its connection is reset).
``abort-dead``
    reset the connections a blackhole left dead (the harness does this when a server did not
    give up on them by itself, so the run can go on).
``stats``
    counts: open connections, dead ones, COMMITs cut.

The proxy works above TCP: its own kernel acknowledges what the servers send, so TCP
keepalives and ``TCP_USER_TIMEOUT`` on the servers' side cannot notice a blackhole or a freeze
made here; only bounds the service keeps itself (timeouts on its waits) can. It parses the
client-to-server half of the PostgreSQL protocol (message type and length) to find ``COMMIT``
(a simple query that is or ends with it, or a Parse of it); the servers must connect without
TLS (``sslmode=disable``).

Loopback only: it listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import struct
import sys

_SSL_REQUEST, _GSS_REQUEST, _CANCEL = 80877103, 80877104, 80877102


class _Link:
    """One client connection and its upstream."""

    def __init__(self, proxy: Proxy, client: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        self.proxy = proxy
        self.c_reader, self.c_writer = client
        self.u_writer: asyncio.StreamWriter | None = None
        self.dead = False  # caught by a blackhole: never forwards again
        self.cut = False  # its COMMIT was forwarded and the client dropped
        self.commit_pending = False  # a Parse of COMMIT went up: cut after the batch's Sync
        self.typed = False  # past the startup message: every message has a type byte
        self.buf = bytearray()

    def abort(self) -> None:
        for w in (self.c_writer, self.u_writer):
            if w is not None:
                with contextlib.suppress(Exception):
                    w.transport.abort()

    async def run(self) -> None:
        p = self.proxy
        try:
            if p.mode == "blackhole":
                self.dead = True
            if not self.dead:
                await p.moving()
            if self.dead:
                await self._discard(self.c_reader)
                return
            u_reader, self.u_writer = await asyncio.open_connection(p.up_host, p.up_port)
            await asyncio.gather(self._client_to_server(), self._server_to_client(u_reader))
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.abort()
            p.links.discard(self)

    async def _discard(self, reader: asyncio.StreamReader) -> None:
        while await reader.read(65536):
            pass

    async def _client_to_server(self) -> None:
        p, w = self.proxy, self.u_writer
        assert w is not None
        while True:
            data = await self.c_reader.read(65536)
            if not data:
                w.close()
                return
            await p.moving()
            if self.dead:
                continue
            self.buf += data
            out = self._complete_messages()
            if out:
                w.write(out)
                await w.drain()
            if self.cut:  # the reply to that COMMIT must never reach the client
                with contextlib.suppress(Exception):
                    self.c_writer.transport.abort()
                return

    def _complete_messages(self) -> bytes:
        """Whole messages from the buffer, to forward; stops after a COMMIT that is to be cut."""
        buf, out, i = self.buf, bytearray(), 0
        while True:
            if not self.typed:
                if len(buf) - i < 8:
                    break
                (length,) = struct.unpack_from("!I", buf, i)
                if len(buf) - i < length:
                    break
                (code,) = struct.unpack_from("!I", buf, i + 4)
                if code not in (_SSL_REQUEST, _GSS_REQUEST, _CANCEL):
                    self.typed = True  # the startup message
                out += buf[i : i + length]
                i += length
                continue
            if len(buf) - i < 5:
                break
            (length,) = struct.unpack_from("!I", buf, i + 1)
            if len(buf) - i < 1 + length:
                break
            kind = buf[i]
            msg = bytes(buf[i : i + 1 + length])
            out += msg
            i += 1 + length
            # A simple query that is, or ends with, COMMIT (the audit chain's append and the
            # COMMIT go as one: "EXECUTE ...; COMMIT").
            if kind == ord("Q") and _ends_with_commit(msg[5:]) and self.proxy.cut_this():
                self.cut = True
                break
            # The extended protocol (a psycopg pipeline sending a statement and the COMMIT in
            # one go): a Parse of COMMIT, then cut once the Sync that ends the batch went up.
            if kind == ord("P") and _parsed_query(msg) == b"COMMIT" and self.proxy.cut_this():
                self.commit_pending = True
            if kind == ord("S") and self.commit_pending:
                self.cut = True
                break
        del buf[:i]
        return bytes(out)

    async def _server_to_client(self, reader: asyncio.StreamReader) -> None:
        p = self.proxy
        while True:
            data = await reader.read(65536)
            if self.cut:
                # The COMMIT went up and the client was reset (see _client_to_server): wait,
                # bounded, for the server's ReadyForQuery so that it really commits, then hang up.
                got = data[-64:]
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(5):
                        while data and b"Z\x00\x00\x00\x05" not in got:
                            data = await reader.read(65536)
                            got = (got + data)[-64:]
                return
            if not data:
                self.c_writer.close()
                return
            await p.moving()
            if self.dead:
                continue
            self.c_writer.write(data)
            await self.c_writer.drain()


def _ends_with_commit(query: bytes) -> bool:
    return query.rstrip(b"\x00").strip().rstrip(b";").rsplit(b";", 1)[-1].strip().upper() == b"COMMIT"


def _parsed_query(msg: bytes) -> bytes:
    """The query text of a Parse message (type, length, statement name, query, …)."""
    name_end = msg.find(b"\x00", 5)
    query_end = msg.find(b"\x00", name_end + 1)
    return msg[name_end + 1 : query_end].strip().upper() if 0 < name_end < query_end else b""


class Proxy:
    def __init__(self, listen: int, up_host: str, up_port: int) -> None:
        self.listen, self.up_host, self.up_port = listen, up_host, up_port
        self.mode = "pass"
        self.cut_every = 0
        self.commits = 0
        self.cuts = 0
        self.links: set[_Link] = set()
        self._thawed = asyncio.Event()
        self._thawed.set()
        self._server: asyncio.Server | None = None

    async def moving(self) -> None:
        """Return when bytes may move (at once, except while frozen)."""
        if not self._thawed.is_set():
            await self._thawed.wait()

    def cut_this(self) -> bool:
        if self.mode != "cut" or self.cut_every <= 0:
            return False
        self.commits += 1
        if self.commits % self.cut_every == 0:
            self.cuts += 1
            return True
        return False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _Link(self, (reader, writer))
        self.links.add(link)
        await link.run()

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.listen, reuse_address=True)

    async def _close_listener(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def set_mode(self, mode: str, arg: int = 0) -> None:
        if self.mode == "freeze":
            self._thawed.set()
        self.mode = mode
        if mode == "refuse":
            await self._close_listener()
            for link in list(self.links):
                link.abort()
            return
        await self._listen()
        if mode == "blackhole":
            for link in self.links:
                link.dead = True
        elif mode == "freeze":
            self._thawed.clear()
        elif mode == "cut":
            self.cut_every, self.commits = max(1, arg), 0

    def abort_dead(self) -> int:
        dead = [link for link in self.links if link.dead]
        for link in dead:
            link.abort()
        return len(dead)

    def stats(self) -> dict[str, int | str]:
        return {"mode": self.mode, "open": len(self.links), "dead": sum(link.dead for link in self.links),
                "cuts": self.cuts}

    async def serve(self) -> None:
        await self._listen()
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        self._answer({"ok": True, "listening": self.listen})
        while True:
            line = (await reader.readline()).decode().strip()
            if not line or line == "quit":
                break
            words = line.split()
            try:
                if words[0] == "mode":
                    await self.set_mode(words[1], int(words[2]) if len(words) > 2 else 0)
                    self._answer({"ok": True, **self.stats()})
                elif words[0] == "abort-dead":
                    self._answer({"ok": True, "aborted": self.abort_dead()})
                elif words[0] == "stats":
                    self._answer({"ok": True, **self.stats()})
                else:
                    self._answer({"ok": False, "error": f"unknown command {words[0]!r}"})
            except (IndexError, ValueError) as exc:
                self._answer({"ok": False, "error": str(exc)})
        await self._close_listener()
        for link in list(self.links):
            link.abort()

    @staticmethod
    def _answer(obj: dict[str, object]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.proxy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", type=int, required=True, help="port on 127.0.0.1")
    parser.add_argument("--upstream", default="127.0.0.1:5432", help="host:port of PostgreSQL")
    args = parser.parse_args()
    host, _, port = args.upstream.rpartition(":")
    asyncio.run(Proxy(args.listen, host or "127.0.0.1", int(port)).serve())


if __name__ == "__main__":
    main()
