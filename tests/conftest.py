"""Test fixtures: every test runs on SQLite and on PostgreSQL, each database built by running
the migrations, against the real app (ASGI) or a real server process (``tests/e2e``).

* SQLite: the migrated template file is copied for each test (a clean database in ~1 ms).
* PostgreSQL: one database per test session (``sinergi_test_<pid>``, a copy of a migrated one),
  emptied between tests.
  Its URL comes from ``SINERGI_TEST_POSTGRES`` (default: the local ``test`` server). When the
  server is not reachable the PostgreSQL half is skipped, unless ``SINERGI_TEST_REQUIRE_POSTGRES``
  is set (CI sets it), in which case it fails.
"""

from __future__ import annotations

import base64
import gc
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

os.environ.setdefault("SINERGI_MODE", "development")  # the suite runs on the development keys
os.environ.setdefault("SINERGI_LOG_JSON", "false")
os.environ.setdefault("SINERGI_LOG_LEVEL", "WARNING")
# No audit spool unless a test gives one: `make` exports the workstation's (./sinergi-audit.spool)
# and every app and server of the suite would share that one file, so entries spooled by one
# test's outage were appended by another test's server to its own database's chain.
os.environ.pop("SINERGI_AUDIT_SPOOL", None)


def _route_building_done_once() -> None:
    """Each test makes its own app, and FastAPI builds every route's request state again for each
    new app on its first request: the endpoint's dependency tree (``get_dependant``, reading
    signatures and annotations) and its reply's model field, 7 % of the suite's CPU. Both are
    the same for the same endpoint whichever app includes it, so the test process builds each
    once (keyed by the very objects they are built from) and every app gets that one. Only the
    building is shared: each app still resolves its own dependencies, overrides and state at
    each request. A FastAPI without these functions is left as it is."""
    import fastapi.routing as routing

    build = getattr(routing, "_build_dependant_with_parameterless_dependencies", None)
    field = getattr(routing, "create_model_field", None)
    if build is None or field is None:
        return
    built: dict[tuple[Any, ...], tuple[Any, Any]] = {}

    def build_once(*, path: str, call: Any, dependencies: Any) -> Any:
        key = (path, id(call), *map(id, dependencies))
        if key not in built:
            built[key] = ((call, list(dependencies)), build(path=path, call=call, dependencies=dependencies))
        return built[key][1]

    fields: dict[tuple[Any, ...], tuple[Any, Any]] = {}

    def field_once(name: str, type_: Any, *args: Any, **kwargs: Any) -> Any:
        if args or set(kwargs) - {"mode"}:  # only the reply models' simple form is shared
            return field(name, type_, *args, **kwargs)
        key = (name, id(type_), kwargs.get("mode"))
        if key not in fields:
            fields[key] = (type_, field(name, type_, **kwargs))
        return fields[key][1]

    routing._build_dependant_with_parameterless_dependencies = build_once  # type: ignore[assignment]
    routing.create_model_field = field_once  # type: ignore[assignment]


_route_building_done_once()

from api.agencies import service as agencies  # noqa: E402
from api.agencies.schemas import AgencyCreate, ClientCreate  # noqa: E402
from api.app import create_app  # noqa: E402
from api.core.db import Database, sync_url  # noqa: E402
from api.core.migrate import upgrade  # noqa: E402
from api.core.settings import Settings  # noqa: E402
from api.core.unit import operator_unit  # noqa: E402
from models import AgencyKind  # noqa: E402
from tests.reply_shapes import CheckReplies  # noqa: E402

if TYPE_CHECKING:
    from tests.demo_world import DemoCopy, DemoTemplate

PG_ADMIN_URL = os.environ.get("SINERGI_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("SINERGI_TEST_REQUIRE_POSTGRES", "") not in ("", "0", "false")

# Tables kept between tests: the schema version and the signing keys (made once per database).
_KEEP = {"alembic_version", "signing_key"}


def _pg_reachable() -> bool:
    try:
        eng = sa.create_engine(sync_url(PG_ADMIN_URL), connect_args={"connect_timeout": 3})
        with eng.connect() as c:
            c.execute(sa.text("SELECT 1"))
        eng.dispose()
        return True
    except Exception:
        return False


@dataclass
class Backend:
    name: str
    url: str
    template: Path | None = None  # SQLite only


def _pg_url(name: str) -> str:
    url = make_url(sync_url(PG_ADMIN_URL)).set(database=name).set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


class Migrated:
    """The empty database the migrations build (with a signing key), built once per backend
    and test process and copied for each use: the ``backend`` fixture is set up again each
    time the tests switch backends, and the demo templates (tests/demo_world.py) start from
    it too. SQLite: a file, copied; PostgreSQL: a database on the test server that nothing
    connects to, the template of ``CREATE DATABASE``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._sqlite: Path | None = None
        self._pg: str | None = None
        self._admin: sa.Engine | None = None

    def sqlite_file(self) -> Path:
        """The migrated file (never opened by a test: copy it)."""
        if self._sqlite is None:
            path = self.folder / "template.db"
            url = f"sqlite+aiosqlite:///{path}"
            upgrade(url)
            _make_signing_key(url)
            self._sqlite = path
        return self._sqlite

    def _pg_admin(self, sql: str) -> None:
        if self._admin is None:
            self._admin = sa.create_engine(sync_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
        with self._admin.connect() as c:
            c.execute(sa.text(sql))

    def pg_create(self, name: str, template: str | None = None) -> str:
        """A new database ``name`` on the test server, a copy of ``template`` (by default the
        migrated one, no other connection to it may be open); its URL."""
        if template is None:
            if self._pg is None:
                clean = f"sinergi_test_{os.getpid()}_migrated_{uuid.uuid4().hex[:6]}"
                self._pg_admin(f'CREATE DATABASE "{clean}"')
                upgrade(_pg_url(clean))
                _make_signing_key(_pg_url(clean))
                self._pg = clean
            template = self._pg
        self._pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return _pg_url(name)

    def pg_drop(self, name: str) -> None:
        self._pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        if self._pg is not None:
            self.pg_drop(self._pg)
            self._pg = None
        if self._admin is not None:
            self._admin.dispose()


@pytest.fixture(scope="session")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Migrated]:
    built = Migrated(tmp_path_factory.mktemp("migrated"))
    try:
        yield built
    finally:
        built.close()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, migrated: Migrated) -> Iterator[Backend]:
    if request.param == "sqlite":
        path = migrated.sqlite_file()
        yield Backend("sqlite", f"sqlite+aiosqlite:///{path}", path)
        return
    if not _pg_reachable():
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required but not reachable at {PG_ADMIN_URL}")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}")
    name = f"sinergi_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = migrated.pg_create(name)
    try:
        yield Backend("postgresql", url)
    finally:
        migrated.pg_drop(name)


def _make_signing_key(url: str) -> None:
    """The signing key the service would make on its first start, stored directly: its
    ``keys.create`` audit entry is not part of the database a test starts from (on PostgreSQL
    the audit tables are emptied between tests, on SQLite they cannot be)."""
    from api.core.keys import generate_key

    key = generate_key(Settings(database_url=url, mode="development").data_key_bytes)
    eng = sa.create_engine(sync_url(url))
    with eng.begin() as c:
        c.execute(sa.insert(type(key).__table__).values(kid=key.kid, private_key_enc=key.private_key_enc,
                                                         public_jwk=key.public_jwk, created_at=key.created_at))
    eng.dispose()


# Emptying a database between tests: a DELETE of each table in one round trip, with the
# foreign keys' and the append-only tables' triggers not firing (``session_replication_role``,
# which the test server's superuser may set). A few milliseconds, where a TRUNCATE of every
# table took ≈ 0.35 s (a new file for each table and its indexes): a third of a second for
# each of the suite's PostgreSQL tests. TRUNCATE remains for a user who may not set the role.
_KEPT = ", ".join(f"'{t}'" for t in sorted(_KEEP))
_DELETE_ALL = f"""
DO $$
DECLARE t text;
BEGIN
    PERFORM set_config('session_replication_role', 'replica', true);
    FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename NOT IN ({_KEPT}) LOOP
        EXECUTE 'DELETE FROM ' || quote_ident(t);
    END LOOP;
END $$
"""


def _empty_pg(url: str) -> None:
    eng = sa.create_engine(sync_url(url))
    try:
        try:
            with eng.begin() as c:
                c.exec_driver_sql(_DELETE_ALL)
        except sa.exc.ProgrammingError:  # not allowed to set the role: the slow way
            with eng.begin() as c:
                tables = [
                    r[0]
                    for r in c.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
                    if r[0] not in _KEEP
                ]
                if tables:
                    c.execute(sa.text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE"))
    finally:
        eng.dispose()


@pytest.fixture(scope="session")
def demo_templates() -> dict[str, DemoTemplate]:
    """This test process's demo templates by backend, kept with the session: the ``backend``
    fixture is set up again each time the tests switch backends, a template not. (The run's
    controller drops them: see :func:`pytest_sessionfinish`.)"""
    return {}


@pytest.fixture(scope="session")
def demo_template(backend: Backend, demo_templates: dict[str, DemoTemplate], migrated: Migrated,
                  tmp_path_factory: pytest.TempPathFactory) -> DemoTemplate:
    """The demo data loaded once for this backend in the test run (tests/demo_world.py):
    ``with demo_template.copy(folder) as world:`` gives a database of it (``world.url``) and
    what the loader returned (``world.demo``)."""
    from tests.demo_world import (  # deferred: tests.demo_world builds on this module (a cycle)
        DemoTemplate,
        shared_folder,
    )

    if backend.name not in demo_templates:
        demo_templates[backend.name] = DemoTemplate(
            backend.name, tmp_path_factory.mktemp("demo"), migrated, shared=shared_folder(tmp_path_factory))
    return demo_templates[backend.name]


@pytest.fixture(scope="module")
def module_demo(demo_template: DemoTemplate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoCopy]:
    """A copy of the demo world for this test module (its ``world`` fixture builds on it)."""
    with demo_template.copy(tmp_path_factory.mktemp("demo-module")) as world:
        yield world


@pytest.fixture
def demo_copy(demo_template: DemoTemplate, tmp_path: Path) -> Iterator[DemoCopy]:
    """A copy of the demo world for this test: a test that asks for it (itself or through a
    fixture) runs on it, its ``database_url`` is the copy's."""
    with demo_template.copy(tmp_path) as world:
        yield world


@pytest.fixture
def database_url(request: pytest.FixtureRequest, backend: Backend, tmp_path: Path) -> str:
    """A clean, migrated database for this test; a copy of the demo world instead for a test
    that asks for ``demo_copy`` (which holds what the loader returned)."""
    if "demo_copy" in request.fixturenames:
        world: DemoCopy = request.getfixturevalue("demo_copy")
        return world.url
    if backend.template is not None:
        path = tmp_path / "sinergi.db"
        shutil.copyfile(backend.template, path)
        return f"sqlite+aiosqlite:///{path}"
    _empty_pg(backend.url)
    return backend.url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, mode="development", db_pool_size=10)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Any]:
    application = create_app(settings, configure_logging=False)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app over ASGI; every successful JSON reply is checked against its route's declared
    model (tests/reply_shapes.py), so a reply that drifts from the OpenAPI document fails."""
    checked = CheckReplies(app)
    transport = httpx.ASGITransport(app=checked, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
    assert not checked.mismatches, checked.mismatches


@pytest.fixture
def db(app: Any) -> Database:
    """The app's own database handle (for arranging data and inspecting what was stored)."""
    return app.state.services.db


@dataclass
class Party:
    """An agency with one API client, and a way to get tokens for it."""

    agency: str
    jurisdiction: str
    client_id: str
    client_secret: str
    scopes: list[str]
    http: httpx.AsyncClient

    async def token(self, scope: str | None = None) -> str:
        data = {"grant_type": "client_credentials"}
        if scope is not None:
            data["scope"] = scope
        r = await self.http.post("/oauth/token", data=data, auth=(self.client_id, self.client_secret))
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    async def headers(self, scope: str | None = None, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token(scope)}", **extra}

    def basic(self) -> dict[str, str]:
        raw = f"{self.client_id}:{self.client_secret}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


@pytest.fixture
def sinergi(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """Run the ``sinergi`` command against this test's database: ``sinergi("audit", "verify")``."""
    from click.testing import CliRunner

    from api.cli import main as cli
    from api.core.settings import get_settings

    monkeypatch.setenv("SINERGI_DATABASE_URL", database_url)
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(cli, list(args))
    get_settings.cache_clear()


MakeParty = Callable[..., Any]


@pytest.fixture
def make_party(db: Database, client: httpx.AsyncClient) -> MakeParty:
    """``await make_party("POLRES-BENGKAYANG", "61.07", ["referrals:read"], kind=...)``"""

    async def make(
        code: str, jurisdiction: str, scopes: list[str] | str, kind: AgencyKind = AgencyKind.other, name: str | None = None
    ) -> Party:
        scope_list = scopes.split() if isinstance(scopes, str) else list(scopes)
        async with operator_unit(db, "test") as session:
            from models import Agency

            if await session.get(Agency, code) is None:
                await agencies.create_agency(
                    session, AgencyCreate(code=code, name=name or code.title(), kind=kind, jurisdiction=jurisdiction)
                )
            created = await agencies.create_client(session, code, ClientCreate(scopes=scope_list))
        return Party(code, jurisdiction, created.client_id, created.client_secret, created.scopes, client)

    return make


def assert_problem(r: httpx.Response, status: int, type_suffix: str | None = None) -> dict[str, Any]:
    """The reply is an RFC 9457 problem with this status (and type)."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body = r.json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    if type_suffix:
        assert body["type"].endswith(type_suffix), body
    assert "Traceback" not in r.text
    return body


async def assert_not_stored(db: Database, backend: Backend, secrets: list[str], visible: str) -> None:
    """None of ``secrets`` is anywhere in the database in plain text (every table, and on
    SQLite the file and its write-ahead log). ``visible`` is a stored plain value, which proves
    the check can see stored text."""
    if backend.name == "sqlite":
        path = Path(db.settings.database_url.split("///", 1)[1])
        async with db.read() as conn:
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        wal = path.with_name(path.name + "-wal")
        raw = path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
        assert visible.encode() in raw
        for secret in secrets:
            assert secret.encode() not in raw, secret
        return
    async with db.read() as conn:
        tables = [r[0] for r in await conn.exec_driver_sql(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        text = ""
        for table in tables:
            text += " ".join(str(r[0]) for r in await conn.exec_driver_sql(f'SELECT t::text FROM "{table}" t'))
    assert visible in text
    for secret in secrets:
        assert secret not in text, secret


def pytest_sessionfinish(session: pytest.Session) -> None:
    """At the end of the run, in its controller (the process without ``workerinput``: the only
    one, or pytest-xdist's once its workers are done): drop the demo templates its processes
    shared on PostgreSQL (tests/demo_world.py)."""
    if hasattr(session.config, "workerinput"):
        return
    from tests.demo_world import drop_shared_templates, shared_folder

    factory = getattr(session.config, "_tmp_path_factory", None)  # pytest's own, as its tmp_path fixtures use
    shared = shared_folder(factory) if factory is not None else None
    if shared is None or not any(shared.glob("demo-*.database")):
        return
    admin = Migrated(shared)
    try:
        drop_shared_templates(shared, admin)
    finally:
        admin.close()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Once the suite is imported and collected, its objects (modules, routes, models: some
    300,000) are moved out of the cyclic collector's sight (``gc.freeze``), and collections are
    made rarer: each older-generation collection walked all of them, and the suite allocates new
    apps, sessions and replies fast enough for a collection every few hundred objects. The
    collector took a tenth of a worker's CPU (5.8 s of 50 in three test modules), 2 s after this.
    Cycles are still collected, later."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 1000)
