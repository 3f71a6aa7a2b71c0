"""A database of its own for a whole test module, loaded with the demo data.

The authorisation matrix and the schema fuzzing send hundreds of requests against the same
demo-like data; building a database per test would cost more than the requests. Each module
that uses this gets one fresh, migrated database per backend (SQLite: a copy of the session's
template; PostgreSQL: the session's database, emptied, as the function-scoped ``database_url``
fixture of the next test empties it again) and the demo agencies, returnees, notices and
referrals of :func:`api.cli.demo_data.load`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from api.cli import demo_data
from api.core.db import Database
from api.core.settings import Settings
from tests.conftest import Backend, _empty_pg


def fresh_database_url(backend: Backend, folder: Path) -> str:
    """A clean, migrated database (as the ``database_url`` fixture makes one, for a module)."""
    if backend.template is not None:
        path = folder / "sinergi.db"
        shutil.copyfile(backend.template, path)
        return f"sqlite+aiosqlite:///{path}"
    _empty_pg(backend.url)
    return backend.url


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
