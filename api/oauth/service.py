"""OAuth2 client credentials: authenticating clients, issuing and revoking tokens."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import audit, clock, crypto, text, tokens
from api.core.keys import KeyStore
from api.core.settings import Settings
from api.core.unit import context_of
from models import Agency, ApiClient, Outcome, RevokedToken


class OAuthError(Exception):
    """An RFC 6749 §5.2 error."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status
        self.basic = False  # whether the client authenticated with HTTP Basic (the reply's challenge)


async def authenticate_client(
    session: AsyncSession, client_id: str | None, secret: str | None, action: str = "token.issue"
) -> tuple[ApiClient, Agency]:
    ctx = context_of(session)
    ctx.claimed_client_id = client_id  # the entry keeps it bounded, as a claim, until the secret matches
    # An id that cannot be one of ours (too long, control characters) is not looked up at all.
    plausible = text.is_identifier(client_id, 64)
    client = await session.get(ApiClient, client_id) if plausible else None
    if client is None or secret is None or not crypto.secret_matches(secret, client.secret_hash) or client.disabled_at:
        audit.record(session, action, outcome=Outcome.denied, resource_type="api_client",
                     resource_id=None if client is None else client.client_id, reason="invalid_client")
        raise OAuthError("invalid_client", "Client authentication failed", 401)
    ctx.client_id = client.client_id  # proven by its secret
    agency = await session.get(Agency, client.agency_code)
    assert agency is not None
    return client, agency


async def issue_token(
    session: AsyncSession, keys: KeyStore, settings: Settings, client: ApiClient, agency: Agency, scope: str | None
) -> dict[str, object]:
    allowed = client.scope_set
    wanted = set(scope.split()) if scope and scope.strip() else set(allowed)
    if not wanted <= allowed:
        audit.record(session, "token.issue", outcome=Outcome.denied, resource_type="api_client",
                     resource_id=client.client_id, reason="invalid_scope",
                     requested=sorted(wanted), not_allowed=sorted(wanted - allowed))
        raise OAuthError("invalid_scope", "The requested scope exceeds what this client is allowed")
    kid, signer = await keys.signing_key(session)
    token, claims = tokens.issue(
        signer=signer, kid=kid, issuer=settings.issuer, audience=settings.audience,
        client_id=client.client_id, agency=agency.code, jurisdiction=agency.jurisdiction,
        scopes=sorted(wanted), now=clock.now(), ttl=settings.access_token_ttl,
    )
    audit.record(session, "token.issue", resource_type="api_client", resource_id=client.client_id,
                 agency_code=agency.code, scope=" ".join(sorted(wanted)), jti=claims.jti, kid=kid)
    return {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": settings.access_token_ttl,
        "scope": " ".join(sorted(wanted)),
    }


async def revoke_token(session: AsyncSession, keys: KeyStore, settings: Settings, client: ApiClient, token: str) -> None:
    """RFC 7009: revoke a token of this client. Unknown or foreign tokens are ignored (200)."""
    try:
        kid = tokens.peek_kid(token)
        key = await keys.verifier(kid, session)
        claims = (tokens.verify(token, key, issuer=settings.issuer, audience=settings.audience, now=clock.now(),
                               max_lifetime=settings.access_token_ttl) if key else None)
    except tokens.InvalidToken:
        claims = None
    if claims is None or claims.client_id != client.client_id:
        audit.record(session, "token.revoke", resource_type="api_client", resource_id=client.client_id,
                     outcome=Outcome.failed, reason="not a live token of this client")
        return
    if await session.get(RevokedToken, claims.jti) is None:
        session.add(RevokedToken(jti=claims.jti, client_id=client.client_id,
                                 expires_at=datetime.fromtimestamp(claims.expires_at, UTC)))
    audit.record(session, "token.revoke", resource_type="api_client", resource_id=client.client_id, jti=claims.jti)
