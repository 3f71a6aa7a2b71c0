"""The ``sinergi`` command."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from api.core.settings import get_settings

T = TypeVar("T")


def _run(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    from api.core.db import Database

    async def main() -> T:
        db = Database(get_settings())
        try:
            return await fn(db, *args)
        finally:
            await db.dispose()

    return asyncio.run(main())


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@click.group()
def main() -> None:
    """Sinergi: inter-agency data exchange for preventing and handling TPPO."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="server processes")
def serve(host: str, port: int, workers: int) -> None:
    """Run the API (uvicorn)."""
    import uvicorn

    settings = get_settings()
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
    )


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply the migrations (Alembic) to the configured database."""
    from api.core.migrate import upgrade

    upgrade(get_settings().database_url, revision)
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
    from api.core.unit import operator_unit
    from api.core.errors import Problem

    try:
        data = AgencyCreate(code=code, name=name, jurisdiction=jurisdiction, kind=kind)  # type: ignore[arg-type]
    except ValidationError as exc:
        _fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))

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
    from api.core.unit import operator_unit
    from api.core.errors import Problem

    try:
        data = ClientCreate(scopes=scopes, name=name)  # type: ignore[arg-type]
    except ValidationError as exc:
        _fail("; ".join(e["msg"] for e in exc.errors()))

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
    from api.core.unit import operator_unit
    from api.core.errors import Problem

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

    settings = get_settings()
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
def demo() -> None:
    """Load the demo agencies and records; print their client credentials."""
    from api.cli.demo_data import load

    creds = _run(load)
    click.echo(json.dumps(creds, indent=2))


if __name__ == "__main__":  # pragma: no cover
    main()
