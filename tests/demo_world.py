"""Databases loaded with the demo data, for the tests that need "a demo world".

The authorisation matrix, the schema fuzzing, the console, the client and the examples send
hundreds of requests against demo-like data. Loading it (:func:`api.cli.demo_data.load`) takes
seconds, so each test process loads it once per backend, into a template database
(:class:`DemoTemplate`, the session's ``demo_template`` fixture), and every user gets a copy of
that: on SQLite a copy of the file, on PostgreSQL a database made with ``CREATE DATABASE ...
TEMPLATE`` and dropped again when the user is done. With it comes what the loader returned
(the clients' secrets and the officers' passwords: the database holds only their hashes, so
they open every copy), a copy of its own each time.

The demo is relative to the day it is loaded on (this week's arrivals, notices due): when the
day has changed since (in Kalimantan Barat or in UTC) the template is loaded again, and while
the service clock is frozen a copy is loaded on its own, at the frozen time.

The loader's own tests (running it twice, what it writes) call it themselves.
"""

from __future__ import annotations

import asyncio
import copy
import os
import shutil
import sqlite3
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import make_url

from api.cli import demo_data
from api.core import clock
from api.core.db import Database
from api.core.settings import Settings
from api.notices.schemas import today_in_kalbar
from models import base
from tests.conftest import Migrated

T = TypeVar("T")


def module_settings(url: str) -> Settings:
    return Settings(database_url=url, mode="development", db_pool_size=10)


async def load_demo(settings: Settings) -> dict[str, Any]:
    """Load the demo data with a database handle of its own (closed again), and return what
    the loader returns: ``{"clients": {code: {"client_id", "client_secret", "scopes"}}, ...}``."""
    db = Database(settings)
    try:
        return await demo_data.load(db)
    finally:
        await db.dispose()


def _run(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``work`` to the end in an event loop of its own, on a thread of its own: a copy may
    be asked for from a fixture that runs in the suite's event loop (no loop can run inside it)."""
    out: list[T] = []
    failed: list[BaseException] = []

    def main() -> None:
        try:
            out.append(asyncio.run(work()))
        except BaseException as exc:  # handed to the caller's thread
            failed.append(exc)

    thread = threading.Thread(target=main, name="demo-load")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return out[0]


def _days() -> tuple[date, date]:
    """The days the demo data is relative to: today in Kalimantan Barat and in UTC."""
    return today_in_kalbar(), clock.now().date()


@dataclass
class DemoCopy:
    """A database of its own with the demo data, and what the loader returned."""

    url: str
    demo: dict[str, Any]
    backend: str  # "sqlite" or "postgresql"

    @property
    def settings(self) -> Settings:
        return module_settings(self.url)


class DemoTemplate:
    """The demo data loaded once for a backend (in this test process); :meth:`copy` makes a
    database of it for each user. It starts from the ``migrated`` databases, not from those of
    the ``backend`` fixture (set up again each time the tests switch backends): on SQLite its
    files are in ``folder``, on PostgreSQL its databases are on the test server."""

    def __init__(self, backend: str, folder: Path, migrated: Migrated) -> None:
        self.backend = backend
        self.folder = folder
        self._migrated = migrated
        self._sqlite = backend == "sqlite"
        self._made = 0
        self._url = ""
        self._demo: dict[str, Any] = {}
        self._days: tuple[date, date] | None = None
        self._build()

    # --- databases ------------------------------------------------------------------------

    def _new_database(self, tag: str, folder: Path | None = None, template: str | None = None) -> str:
        """A copy of the migrated database, or of the database ``template`` (the URL of one of
        ``self``); on SQLite in ``folder`` (the template's own by default)."""
        self._made += 1
        if self._sqlite:
            path = (folder or self.folder) / f"{tag}-{self._made}.db"
            source = Path(make_url(template).database or "") if template else self._migrated.sqlite_file()
            shutil.copyfile(source, path)
            return f"sqlite+aiosqlite:///{path}"
        name = f"sinergi_test_{os.getpid()}_{tag}_{uuid.uuid4().hex[:12]}"  # as the session's own
        return self._migrated.pg_create(name, template=make_url(template).database if template else None)

    def _drop(self, url: str) -> None:
        if self._sqlite:
            path = Path(make_url(url).database or "")
            for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                p.unlink(missing_ok=True)
            return
        self._migrated.pg_drop(make_url(url).database or "")

    def _build(self) -> None:
        """Load the demo into a new template (the loader's handle is closed again, so that
        nothing holds the template open when it is copied), and drop the one before."""
        days = _days()
        url = self._new_database("demotpl")
        demo = _run(lambda: load_demo(module_settings(url)))
        if self._sqlite:
            # Everything into the file itself, so that the file alone is the whole database.
            path = make_url(url).database
            con = sqlite3.connect(path)
            try:
                con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                con.close()
            wal = Path(f"{path}-wal")
            assert not wal.exists() or wal.stat().st_size == 0, "the template's write-ahead log is not empty"
        old, self._url, self._demo, self._days = self._url, url, demo, days
        if old:
            self._drop(old)

    # --- what the users get ---------------------------------------------------------------

    @contextmanager
    def copy(self, folder: Path) -> Iterator[DemoCopy]:
        """A database of the demo for one user (in ``folder`` on SQLite), dropped afterwards on
        PostgreSQL; ``demo`` is a copy of what the loader returned, the user's own."""
        if base._frozen is not None:  # what clock.frozen sets (api/core/clock.py)
            # the clock is frozen: a demo of the frozen "now", loaded for this user only
            url = self._new_database("demo", folder)
            demo = _run(lambda: load_demo(module_settings(url)))
        else:
            if _days() != self._days:
                self._build()
            demo = copy.deepcopy(self._demo)
            url = self._new_database("demo", folder, template=self._url)
        try:
            yield DemoCopy(url, demo, self.backend)
        finally:
            if not self._sqlite:
                self._drop(url)

    def close(self) -> None:
        if self._url:
            self._drop(self._url)
            self._url = ""
