"""The migrations build exactly what the models describe, on both databases."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

import models  # noqa: F401  (every table on the metadata)
from api.core.db import sync_url
from api.core.migrate import alembic_config, head_revision, upgrade


def _diff(url: str) -> list:
    eng = sa.create_engine(sync_url(url))
    try:
        with eng.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
            return compare_metadata(ctx, SQLModel.metadata)
    finally:
        eng.dispose()


def test_models_and_migrations_agree(database_url):
    assert _diff(database_url) == []


def test_the_schema_is_at_head(database_url):
    eng = sa.create_engine(sync_url(database_url))
    with eng.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head_revision()
    eng.dispose()


def test_downgrade_to_base_and_up_again(tmp_path):
    from alembic import command

    url = f"sqlite+aiosqlite:///{tmp_path / 'roundtrip.db'}"
    upgrade(url)
    command.downgrade(alembic_config(url), "base")
    eng = sa.create_engine(sync_url(url))
    with eng.connect() as conn:
        left = set(sa.inspect(conn).get_table_names()) - {"alembic_version"}
        triggers = conn.execute(sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).all()
    assert left == set() and triggers == []
    upgrade(url)
    assert _diff(url) == []
    with eng.connect() as conn:
        triggers = {r[0] for r in conn.execute(sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))}
    eng.dispose()
    assert triggers == {"audit_event_no_update", "audit_event_no_delete"}
