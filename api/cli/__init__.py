"""The ``sinergi`` command."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import click
from pydantic import ValidationError

from api.core.errors import validation_errors
from api.core.settings import Settings, get_settings

T = TypeVar("T")


def _run(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    from api.core.db import Database

    async def main() -> T:
        db = Database(_settings())
        try:
            return await fn(db, *args)
        finally:
            await db.dispose()

    return asyncio.run(main())


def _errors(exc: ValidationError) -> str:
    """The API's ``{field, message}`` list (one converter: api.core.errors) as one line."""
    return "; ".join(f"{e['field']}: {e['message']}" if e["field"] else e["message"]
                     for e in validation_errors(list(exc.errors())))


def _fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _settings() -> Settings:
    """The settings, or exit naming what is wrong (no traceback): outside development mode the
    service refuses to run without real keys."""
    try:
        return get_settings()
    except ValidationError as exc:
        _fail("; ".join(e["message"] for e in validation_errors(list(exc.errors()))))


def _write_private(path: str, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (mode 0600): written to a new file
    made 0600 from the start in the same folder, then moved over ``path``, so neither an older
    file readable by others nor a symbolic link at ``path`` ever receives the secrets."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".sinergi-", suffix=".tmp")  # mkstemp: 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


@click.group()
def main() -> None:
    """Sinergi: inter-agency data exchange for preventing and handling TPPO."""


def _port_in_use(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on (another server holds it), else ``None``. The
    socket is bound the way uvicorn binds its own (``SO_REUSEADDR``), so a port left in
    TIME_WAIT by a server just stopped counts as free, as it is for uvicorn."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return f"{host} does not resolve: {exc}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as exc:
            return f"{host}:{port} is not free ({exc.strerror}); is Sinergi already running there?"
    return None


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="server processes")
@click.option("--check", is_flag=True, help="only check that the address is free (exit 2 if not), then exit")
def serve(host: str, port: int, workers: int, check: bool) -> None:
    """Run the API (uvicorn). Before anything else, the address must be free: a second
    ``make run`` stops here (``--check``), before it touches the database."""
    busy = _port_in_use(host, port)
    if busy is not None:
        _fail(busy)
    if check:
        return
    import uvicorn  # deferred, as the server's protocol below: only this command needs them

    from api.cli.server import PROTOCOL

    settings = _settings()
    if settings.development_keys:
        click.echo(
            f"WARNING: DEVELOPMENT KEYS IN USE for {', '.join(settings.development_keys)}: they are published "
            "in the source code, so anyone with a copy of the database can read its personal data and "
            "sign tokens. Never run like this with real records.",
            err=True,
        )
    # X-Forwarded-For / -Proto are believed only from the proxies the settings name (uvicorn
    # would otherwise trust 127.0.0.1 by default); the request middleware checks the address.
    trusted = settings.trusted_proxies
    uvicorn.run(
        "api.main:app",
        host=host,
        port=port,
        workers=workers,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or None,
        log_config=None,
        log_level=settings.log_level.lower(),
        access_log=False,
        # The server's bounds (api/http/server.py): head deadline and size, requests in flight.
        http=PROTOCOL,
        timeout_keep_alive=settings.keep_alive_timeout,
        h11_max_incomplete_event_size=settings.max_header_bytes,
    )


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply the migrations (Alembic) to the configured database."""
    from api.core.migrate import upgrade

    upgrade(_settings().database_url, revision)
    click.echo(f"database at {revision}")


@main.group()
def agency() -> None:
    """Agencies."""


@agency.command("add")
@click.argument("code")
@click.option("--name", required=True)
@click.option("--jurisdiction", required=True, help="Kemendagri region code, e.g. 61.07")
@click.option("--kind", default="other", show_default=True, help="e.g. police, task_force, social_services")
def agency_add(code: str, name: str, jurisdiction: str, kind: str) -> None:
    """Register an agency."""
    from api.agencies import service
    from api.agencies.schemas import AgencyCreate, AgencyPublic
    from api.core.errors import Problem
    from api.core.unit import operator_unit

    try:
        data = AgencyCreate(code=code, name=name, jurisdiction=jurisdiction, kind=kind)
    except ValidationError as exc:
        _fail(_errors(exc))

    async def go(db: Any) -> Any:
        async with operator_unit(db) as session:
            return AgencyPublic.model_validate(await service.create_agency(session, data))

    try:
        click.echo(_run(go).model_dump_json())
    except Problem as exc:
        _fail(exc.detail)


@main.group()
def client() -> None:
    """API clients."""


@client.command("create")
@click.option("--agency", "agency_code", required=True)
@click.option("--scopes", required=True, help='space-separated, e.g. "referrals:read referrals:respond"')
@click.option("--name", default="")
def client_create(agency_code: str, scopes: str, name: str) -> None:
    """Create an API client; prints its id and secret (shown once)."""
    from api.agencies import service
    from api.agencies.schemas import ClientCreate
    from api.core.errors import Problem
    from api.core.unit import operator_unit

    try:
        data = ClientCreate(scopes=scopes, name=name)
    except ValidationError as exc:
        _fail(_errors(exc))

    async def go(db: Any) -> Any:
        async with operator_unit(db) as session:
            return await service.create_client(session, agency_code, data)

    try:
        created = _run(go)
    except Problem as exc:
        _fail(exc.detail)
    click.echo(json.dumps({"client_id": created.client_id, "client_secret": created.client_secret}))


@client.command("disable")
@click.option("--agency", "agency_code", required=True)
@click.argument("client_id")
def client_disable(agency_code: str, client_id: str) -> None:
    """Disable a client; its tokens stop working at once."""
    from api.agencies import service
    from api.core.errors import Problem
    from api.core.unit import operator_unit

    async def go(db: Any) -> None:
        async with operator_unit(db) as session:
            await service.set_client_disabled(session, agency_code, client_id, True)

    try:
        _run(go)
    except Problem as exc:
        _fail(exc.detail)
    click.echo(f"{client_id} disabled")


@main.group()
def keys() -> None:
    """Token signing keys."""


@keys.command("rotate")
def keys_rotate() -> None:
    """Make a new signing key; the old one keeps verifying until its tokens expire."""
    from api.core.keys import rotate

    kid = _run(rotate)
    click.echo(json.dumps({"kid": kid}))


@main.group()
def audit() -> None:
    """The audit chain."""


@audit.command("verify")
@click.option("--chain", default=None, help="one chain (province code); default: every chain")
@click.option("--checkpoint", default=None,
              help="a signed checkpoint (GET /v1/audit/checkpoint), or @FILE holding one")
def audit_verify(chain: str | None, checkpoint: str | None) -> None:
    """Verify the audit chain; exit 1 naming the first bad entry if it is broken."""
    from api.core import audit as service
    from api.core.errors import Problem
    from api.core.keys import KeyStore

    settings = _settings()
    if checkpoint and checkpoint.startswith("@"):
        with open(checkpoint[1:], encoding="utf-8") as fh:
            checkpoint = fh.read().strip()

    async def go(db: Any) -> list[Any]:
        expect: dict[str, tuple[int, str]] = {}
        if checkpoint:
            cp = await service.read_checkpoint(KeyStore(db, settings.access_token_ttl), settings.issuer, checkpoint)
            expect[cp.chain] = (cp.seq, cp.hash)
        names = [chain] if chain else sorted(set(await service.chains(db)) | expect.keys())
        return [await service.verify(db, name, expect.get(name)) for name in names]

    try:
        results = _run(go)
    except Problem as exc:
        _fail(exc.detail)

    broken = False
    for r in results:
        if r.ok:
            click.echo(f"chain {r.chain}: ok, {r.checked} entries, head {r.head_seq} {r.head_hash}")
        else:
            broken = True
            click.echo(f"chain {r.chain}: BROKEN at entry {r.first_bad_seq}: {r.reason}", err=True)
    if not results:
        click.echo("no audit entries yet")
    sys.exit(1 if broken else 0)


@main.group()
def officers() -> None:
    """Officer accounts (people who sign in to the console)."""


@officers.command("create")
@click.option("--agency", "agency_code", required=True)
@click.option("--email", required=True)
@click.option("--scopes", required=True, help='space-separated, a subset of the agency\'s, e.g. "stats:read notices:read"')
@click.option("--name", default="")
def officers_create(agency_code: str, email: str, scopes: str, name: str) -> None:
    """Create an officer; prints the generated password (and the second factor's URI) once."""
    # deferred, as the other commands: `sinergi --help` should not load the service
    from api.officers import service
    from api.officers.schemas import OfficerCreate

    try:
        data = OfficerCreate(email=email, name=name, scopes=scopes.split())
    except ValidationError as exc:
        _fail(_errors(exc))
    created = _in_unit(lambda session: service.create_officer(session, agency_code, data))
    click.echo(created.model_dump_json())


def _in_unit(act: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``act(session)`` in one operator unit, or exit naming what is wrong (a problem's
    detail). The work itself is the service's, as the API's routes call it."""
    from api.core.errors import Problem  # deferred, as the other commands' imports
    from api.core.unit import operator_unit

    async def go(db: Any) -> T:
        async with operator_unit(db) as session:
            return await act(session)

    try:
        return _run(go)
    except Problem as exc:
        _fail(exc.detail)


def _on_officer(email: str, act: Callable[[Any, Any], Awaitable[T]]) -> T:
    """Run ``act(session, officer)`` on the officer of ``email`` in one operator unit."""
    from api.officers import service  # deferred, as the other commands' imports

    async def on(session: Any) -> T:
        return await act(session, await service.officer_by_email(session, email))

    return _in_unit(on)


@officers.command("list")
@click.option("--agency", "agency_code", required=True)
def officers_list(agency_code: str) -> None:
    """The agency's officers, one JSON object a line (never a hash or a secret)."""
    from api.officers import service  # deferred, as the other commands' imports

    listed = _in_unit(lambda session: service.all_officers(session, agency_code))
    for officer in listed:
        click.echo(officer.model_dump_json())


def _set_disabled(email: str, disabled: bool) -> None:
    from api.officers import service
    from api.officers.schemas import OfficerUpdate

    async def act(session: Any, officer: Any) -> Any:
        return await service.update_officer(session, officer.agency_code, officer.id, OfficerUpdate(disabled=disabled))

    _on_officer(email, act)
    click.echo(f"{email} {'disabled' if disabled else 'enabled'}")


@officers.command("disable")
@click.option("--email", required=True)
def officers_disable(email: str) -> None:
    """Disable an officer: no more sign-ins, and their open sessions end at once."""
    _set_disabled(email, True)


@officers.command("enable")
@click.option("--email", required=True)
def officers_enable(email: str) -> None:
    """Let a disabled officer sign in again."""
    _set_disabled(email, False)


@officers.command("reset-password")
@click.option("--email", required=True)
def officers_reset_password(email: str) -> None:
    """A new one-time password, printed once (the officer chooses their own at the next sign-in);
    a lock-out is lifted and the officer's sessions end."""
    from api.officers import service

    async def act(session: Any, officer: Any) -> Any:
        return await service.reset_password(session, officer.agency_code, officer.id)

    click.echo(_on_officer(email, act).model_dump_json())


@officers.command("reset-totp")
@click.option("--email", required=True)
@click.option("--at-sign-in", is_flag=True,
              help="remove the secret: the officer enrols one of their own at the next sign-in")
def officers_reset_totp(email: str, at_sign_in: bool) -> None:
    """A new second-factor secret, its otpauth:// URI printed once (or, with --at-sign-in, none:
    the officer enrols at the next sign-in); the officer's sessions end."""
    from api.officers import service
    from api.officers.schemas import TotpReset

    async def act(session: Any, officer: Any) -> Any:
        return await service.reset_totp(session, officer.agency_code, officer.id, TotpReset(enrol_at_sign_in=at_sign_in))

    click.echo(_on_officer(email, act).model_dump_json())


@main.command()
@click.option("--once", is_flag=True, help="one pass (fan-out and one batch), then exit")
def worker(once: bool) -> None:
    """Deliver webhooks (as many of these as needed: they never post one attempt twice)."""
    import signal

    from api.webhooks.worker import Worker

    async def go(db: Any) -> int:
        w = Worker(db)
        click.echo(f"webhook worker {w.name}", err=True)
        if once:
            try:
                return await w.run_once()
            finally:
                await w.close()
        loop = asyncio.get_running_loop()
        w.start()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(w.stop()))
        await w.wait()
        return 0

    done = _run(go)
    if once:
        click.echo(json.dumps({"done": done}))


@main.command()
def purge() -> None:
    """Delete expired idempotency records and revocations (run daily, e.g. from cron)."""
    from api.core import clock
    from api.core.unit import operator_unit
    from api.ops.service import purge_expired

    async def go(db: Any) -> dict[str, int]:
        async with operator_unit(db) as session:
            return await purge_expired(session, clock.now())

    click.echo(json.dumps(_run(go)))


@main.command()
@click.option("--output", "-o", default=None, metavar="FILE",
              help="write the credentials to FILE, readable by its owner only (0600), instead of printing them")
def demo(output: str | None) -> None:
    """Load the demo agencies and records; print (or write) their client credentials.

    Idempotent: records already loaded are left as they are (no new notices or referrals), and
    with ``--output`` the secrets of an earlier run's FILE that still open their clients are
    kept, so a second run changes nothing and the FILE stays valid. Only a client whose secret
    is not known (no FILE, or a FILE that no longer matches) gets a new one."""
    from api.cli.demo_data import load

    known, known_officers = _known_credentials(output)
    text = json.dumps(_run(load, known, known_officers), indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    _write_private(output, text)
    click.echo(f"demo clients and their secrets: {output} (readable by you only)", err=True)


def _known_credentials(path: str | None) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """The clients (``code -> {client_id, client_secret}``) and the officers' passwords
    (``email -> password``) of an earlier run's credentials file, or nothing when there is no
    such file or it is not one."""
    if path is None or not os.path.isfile(path):
        return {}, {}
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        clients, officers = data.get("clients", {}), data.get("officers", {})
    except (OSError, ValueError, AttributeError):
        return {}, {}
    if not isinstance(clients, dict):
        clients = {}
    if not isinstance(officers, dict):
        officers = {}
    return ({code: c for code, c in clients.items()
             if isinstance(c, dict) and isinstance(c.get("client_id"), str) and isinstance(c.get("client_secret"), str)},
            {email: o["password"] for email, o in officers.items()
             if isinstance(o, dict) and isinstance(o.get("password"), str)})


if __name__ == "__main__":  # pragma: no cover
    main()
