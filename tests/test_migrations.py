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


def test_change_positions_are_backfilled_in_updated_at_order(tmp_path):
    """0008 numbers the records already stored by ``updated_at``, and the list heads start after them."""
    from alembic import command

    url = f"sqlite+aiosqlite:///{tmp_path / 'backfill.db'}"
    command.upgrade(alembic_config(url), "0006")
    eng = sa.create_engine(sync_url(url))
    with eng.begin() as conn:
        conn.execute(sa.text("INSERT INTO agency (code, name, kind, jurisdiction, created_at) "
                             "VALUES ('BP3MI-KALBAR', 'BP3MI', 'other', '61', '2025-01-01 00:00:00')"))
        for n, at in enumerate(["2025-03-02 00:00:00", "2025-03-01 00:00:00", "2025-03-03 00:00:00"]):
            pid, rid = f"{n:032x}", f"{n + 100:032x}"
            conn.execute(sa.text("INSERT INTO person (id, created_at) VALUES (:p, :at)"), {"p": pid, "at": at})
            conn.execute(sa.text(
                "INSERT INTO returnee (id, source_agency, person_id, version, content_hash, source_ref, full_name, sex, "
                "origin_district, returned_from_country, return_type, return_date, trafficking_status, "
                "control_methods, exploitation_types, created_at, updated_at) VALUES (:r, 'BP3MI-KALBAR', :p, 1, 'x', "
                ":ref, 'Siti', 'F', '61.07', 'MY', 'deported', '2025-03-01', 'unknown', '[]', '[]', :at, :at)"),
                {"r": rid, "p": pid, "ref": f"R-{n}", "at": at})
    upgrade(url)
    with eng.connect() as conn:
        order = conn.execute(sa.text("SELECT source_ref FROM returnee ORDER BY change_pos")).scalars().all()
        heads = dict(conn.execute(sa.text("SELECT key, pos FROM change_head")).all())
    eng.dispose()
    assert order == ["R-1", "R-0", "R-2"]
    assert heads == {"returnee": 3, "referral": 0, "notice": 0}


def test_the_register_starts_with_the_returnees_already_stored(tmp_path):
    """0012 sums each person of the stored returnees into the register: a person with two returns
    is a repeat return, deported or returned by the latest."""
    from alembic import command

    url = f"sqlite+aiosqlite:///{tmp_path / 'register.db'}"
    command.upgrade(alembic_config(url), "0008")
    eng = sa.create_engine(sync_url(url))
    with eng.begin() as conn:
        conn.execute(sa.text("INSERT INTO agency (code, name, kind, jurisdiction, created_at) "
                             "VALUES ('BP3MI-KALBAR', 'BP3MI', 'other', '61', '2025-01-01 00:00:00')"))
        for n, (person, day, kind, district) in enumerate([(1, "2025-01-05", "deported", "61.07"),
                                                           (1, "2025-06-05", "repatriated", "61.01"),
                                                           (2, "2025-03-01", "deported", "61.07")]):
            pid, rid = f"{person:032x}", f"{n + 100:032x}"
            conn.execute(sa.text("INSERT INTO person (id, created_at) SELECT :p, '2025-01-01 00:00:00' "
                                 "WHERE NOT EXISTS (SELECT 1 FROM person WHERE id = :p)"), {"p": pid})
            conn.execute(sa.text(
                "INSERT INTO returnee (id, source_agency, person_id, version, content_hash, source_ref, full_name, sex, "
                "origin_district, returned_from_country, return_type, return_date, trafficking_status, "
                "control_methods, exploitation_types, created_at, updated_at) VALUES (:r, 'BP3MI-KALBAR', :p, 1, 'x', "
                ":ref, 'Siti', 'F', :d, 'MY', :k, :day, 'unknown', '[]', '[]', :day, :day)"),
                {"r": rid, "p": pid, "ref": f"R-{n}", "d": district, "k": kind, "day": day})
    upgrade(url)
    with eng.connect() as conn:
        rows = conn.execute(sa.text("SELECT person_id, origin_district, returns, deportations, status, repeat_return "
                                    "FROM register_person ORDER BY person_id")).all()
    eng.dispose()
    assert [tuple(r[1:]) for r in rows] == [("61.01", 2, 1, "returned", 1), ("61.07", 1, 1, "deported", 0)]
