"""A webhook receiver: verifies each delivery's signature (Standard Webhooks v1) and handles
each ``webhook-id`` once, however often Sinergi retries it.

    python examples/webhook_receiver.py subscribe https://receiver.example/hooks [--events referral.created,...]
        (prints the subscription and its secret, shown this once)
    SINERGI_WEBHOOK_SECRET=whsec_... python examples/webhook_receiver.py serve [--port 8080] [--store hooks.db]

``serve`` answers ``204`` to a delivery it verified (new or a repeat), ``400`` to one that does
not verify. The ids seen and the events are kept in a SQLite file, so a restart forgets nothing;
each new event is printed as a line of JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sinergi_client import Sinergi, Webhook, WebhookVerificationError
from sinergi_client.models import WEBHOOK_EVENT_TYPES


class Store:
    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS delivery (webhook_id TEXT PRIMARY KEY, event TEXT NOT NULL)")
        self._lock = threading.Lock()

    def add(self, webhook_id: str, event: Any) -> bool:
        """True the first time this webhook-id is seen."""
        with self._lock, self._db:
            cur = self._db.execute("INSERT OR IGNORE INTO delivery VALUES (?, ?)", (webhook_id, json.dumps(event)))
            return cur.rowcount == 1


def handler(verifier: Webhook, store: Store) -> type[BaseHTTPRequestHandler]:
    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            try:
                event = verifier.verify(body, dict(self.headers.items()))
            except (WebhookVerificationError, ValueError):
                self.send_response(400)
                self.end_headers()
                return
            if store.add(self.headers["webhook-id"], event):
                print(json.dumps(event), flush=True)  # a new event: handle it here
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Receiver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("subscribe")
    s.add_argument("url")
    s.add_argument("--events", default=",".join(WEBHOOK_EVENT_TYPES),
                   help="comma-separated event types (default: every type)")
    r = sub.add_parser("serve")
    r.add_argument("--host", default="127.0.0.1")
    r.add_argument("--port", type=int, default=8080)
    r.add_argument("--store", type=Path, default=Path("webhooks.db"))
    args = parser.parse_args()
    if args.command == "subscribe":
        with Sinergi() as client:
            events = [e for e in WEBHOOK_EVENT_TYPES if e in args.events.split(",")]
            created = client.webhooks.create(url=args.url, event_types=events)
        print(json.dumps({"id": str(created.id), "url": created.url, "secret": created.secret}))
        return
    server = ThreadingHTTPServer((args.host, args.port),
                                 handler(Webhook(os.environ["SINERGI_WEBHOOK_SECRET"]), Store(args.store)))
    server.serve_forever()


if __name__ == "__main__":
    main()
