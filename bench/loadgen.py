"""A minimal HTTP/1.1 load generator: ``clients`` keep-alive connections, each sending the same
GET as soon as the previous answer is in, for a fixed time. Far cheaper per request than
httpx (a few tens of microseconds of the client's CPU), so on a small machine the client does
not take the CPU the servers are measured with."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class Result:
    seconds: float
    latencies: list[float] = field(default_factory=list)  # seconds, of the requests in the timed window
    statuses: dict[int, int] = field(default_factory=dict)
    total: int = 0  # every request answered, the warm-up's included (for CPU per request)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def pct(self, q: float) -> float:
        s = sorted(self.latencies)
        return s[min(len(s) - 1, int(round(q * (len(s) - 1))))] if s else float("nan")


async def _client(host: str, port: int, request: bytes, warm_until: float, end: float, out: Result) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while True:
            t0 = time.monotonic()
            if t0 >= end:
                return
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
                    break
            if length:
                await reader.readexactly(length)
            t1 = time.monotonic()
            out.total += 1
            if t0 >= warm_until and t1 <= end:
                out.latencies.append(t1 - t0)
                out.statuses[status] = out.statuses.get(status, 0) + 1
    finally:
        writer.close()


async def hammer(ports: int | list[int], path: str, headers: dict[str, str], *, clients: int = 32,
                 seconds: float = 8.0, warmup: float = 1.0, host: str = "127.0.0.1") -> Result:
    """``clients`` connections; with several ``ports`` (one server process each), client ``i``
    connects to ``ports[i % n]``, as a round-robin balancer in front of them would."""
    targets = [ports] if isinstance(ports, int) else ports

    def request(port: int) -> bytes:
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", *(f"{k}: {v}" for k, v in headers.items())]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    start = time.monotonic()
    warm_until, end = start + warmup, start + warmup + seconds
    out = Result(seconds)
    await asyncio.gather(*(_client(host, targets[i % len(targets)], request(targets[i % len(targets)]), warm_until,
                                   end, out) for i in range(clients)))
    return out
