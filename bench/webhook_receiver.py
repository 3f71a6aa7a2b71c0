"""The webhook benchmark's receiver: a bare ASGI app (``uvicorn bench.webhook_receiver:app``)
that answers ``204`` to every POST and appends ``path webhook-id time`` to the file named by
``BENCH_WEBHOOK_LOG`` (opened for appending, so a receiver stopped and started again keeps one
log of everything it received)."""

from __future__ import annotations

import os
import time
from typing import Any

_FD = os.open(os.environ.get("BENCH_WEBHOOK_LOG", os.devnull), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    msg_id = dict(scope["headers"]).get(b"webhook-id", b"-").decode()
    os.write(_FD, f"{scope['path']} {msg_id} {time.time():.6f}\n".encode())
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})
