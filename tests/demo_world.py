"""Databases loaded with the demo data, for the tests that need "a demo world".

The authorisation matrix, the schema fuzzing, the console, the client and the examples send
hundreds of requests against demo-like data. Loading it (:func:`api.cli.demo_data.load`) takes
seconds (tens of them on a slow machine), so a test run loads it once per backend, into a
template database (:class:`DemoTemplate`, the session's ``demo_template`` fixture), and every
user gets a copy of that: on SQLite a copy of the file, on PostgreSQL a database made with
``CREATE DATABASE ... TEMPLATE`` and dropped again when the user is done. With it comes what the
loader returned (the clients' secrets and the officers' passwords: the database holds only their
hashes, so they open every copy), a copy of its own each time.

The test processes of one run (``make test`` runs four, pytest-xdist's workers) share the
template: the first to need it loads it while the others wait on a file lock, in the folder
the run's processes share (:func:`shared_folder`), where it leaves the template's URL and the
loader's answer for the others. The run's controller drops the shared PostgreSQL templates at
its end (:func:`drop_shared_templates`, from ``pytest_sessionfinish``).

The demo is relative to the day it is loaded on (this week's arrivals, notices due): when the
day has changed since (in Kalimantan Barat or in UTC) the template is loaded again, and while
the service clock is frozen a copy is loaded on its own, at the frozen time.

The loader's own tests (running it twice, what it writes) call it themselves.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import os
import pickle
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

from filelock import FileLock
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


def shared_folder(tmp_path_factory: Any) -> Path:
    """The folder the test processes of this run share: under pytest-xdist each worker's base
    temporary folder is one in the controller's (``popen-gw0``, ...), which is the shared one;
    a run of one process shares its own."""
    base: Path = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _shared_name(shared: Path, key: str) -> str:
    """The PostgreSQL name of the run's shared template ``key``: the same in every process of
    the run (made of the shared folder's path), another in every other run."""
    run = hashlib.sha256(str(shared.resolve()).encode()).hexdigest()[:12]
    return f"sinergi_test_shared_{run}_{key.replace('-', '_')}"


def drop_shared_templates(shared: Path, migrated: Migrated) -> None:
    """Drop the run's shared PostgreSQL templates (each named in a ``demo-*.database`` file
    before it was made); the controller calls this once every process of the run is done."""
    for mark in sorted(shared.glob("demo-*.database")):
        migrated.pg_drop(mark.read_text().strip())
        mark.unlink()


class DemoTemplate:
    """The demo data loaded once for a backend (in this test run: the first process to need it
    loads it, the others of the run take it); :meth:`copy` makes a database of it for each user.
    It starts from the ``migrated`` databases, not from those of the ``backend`` fixture (set up
    again each time the tests switch backends): on SQLite the template is a file in ``shared``
    and the copies are in the users' folders (``folder`` by default), on PostgreSQL they are
    databases on the test server."""

    def __init__(self, backend: str, folder: Path, migrated: Migrated, shared: Path | None = None) -> None:
        self.backend = backend
        self.folder = folder
        self.shared = shared or folder
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
        """Take the run's template of today's demo, loading it first if no process of the run
        has (under the run's lock for it: one process loads, the others wait and take it)."""
        days = _days()
        key = f"{self.backend}-{days[0]:%Y%m%d}-{days[1]:%Y%m%d}"
        made = self.shared / f"demo-{key}.pickle"
        with FileLock(self.shared / f"demo-{key}.lock"):
            if not made.exists():
                part = made.with_suffix(".part")
                part.write_bytes(pickle.dumps(self._load_template(key)))
                part.replace(made)  # whole or not there, for a process that looks
            url, demo = pickle.loads(made.read_bytes())
        self._url, self._demo, self._days = url, demo, days

    def _load_template(self, key: str) -> tuple[str, dict[str, Any]]:
        """Make the run's template ``key`` and load the demo into it (the loader's handle is
        closed again, so that nothing holds the template open when it is copied): its URL and
        the loader's answer."""
        if self._sqlite:
            path = self.shared / f"demo-{key}.db"
            shutil.copyfile(self._migrated.sqlite_file(), path)
            url = f"sqlite+aiosqlite:///{path}"
        else:
            name = _shared_name(self.shared, key)
            (self.shared / f"demo-{key}.database").write_text(name)  # named before it exists: dropped at the end whatever happens
            self._migrated.pg_drop(name)  # a failed load's, left by a process of this run
            url = self._migrated.pg_create(name)
        demo = _run(lambda: load_demo(module_settings(url)))
        if self._sqlite:
            # Everything into the file itself, so that the file alone is the whole database.
            con = sqlite3.connect(path)
            try:
                con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                con.close()
            wal = Path(f"{path}-wal")
            assert not wal.exists() or wal.stat().st_size == 0, "the template's write-ahead log is not empty"
        return url, demo

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

