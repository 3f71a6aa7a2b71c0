"""What the OAuth endpoints take and reply (RFC 6749, RFC 7009, RFC 8414)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.core.scopes import Scope


class TokenReply(BaseModel):
    """RFC 6749 §5.1."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "access_token": "eyJhbGciOiJFUzI1NiIsImtpZCI6Ii4uLiJ9.eyJzdWIiOiIuLi4ifQ.c2ln", "token_type": "Bearer",
        "expires_in": 900, "scope": "returnees:read returnees:write"}]})

    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="seconds")
    scope: str = Field(description="the granted scopes, space-separated")


class Revoked(BaseModel):
    """RFC 7009 §2.2: an empty object, whether or not the token was live."""

    model_config = ConfigDict(extra="forbid")


class AuthorizationServerMetadata(BaseModel):
    """RFC 8414 §2: how an OAuth client finds the token endpoint and what it supports."""

    issuer: str
    token_endpoint: str
    jwks_uri: str
    revocation_endpoint: str
    grant_types_supported: list[Literal["client_credentials"]]
    token_endpoint_auth_methods_supported: list[Literal["client_secret_basic", "client_secret_post"]]
    revocation_endpoint_auth_methods_supported: list[Literal["client_secret_basic", "client_secret_post"]]
    scopes_supported: list[Scope]
    service_documentation: str


# The token endpoint's form (application/x-www-form-urlencoded), for the OpenAPI document.
TOKEN_FORM: dict[str, Any] = {
    "type": "object",
    "required": ["grant_type"],
    "properties": {
        "grant_type": {"type": "string", "enum": ["client_credentials"]},
        "scope": {"type": "string", "description": "space-separated scopes, a subset of the client's; omitted: "
                  "all of them", "examples": ["returnees:read returnees:write"]},
        "client_id": {"type": "string", "description": "client_secret_post only (else HTTP Basic)"},
        "client_secret": {"type": "string", "format": "password", "description": "client_secret_post only"},
    },
}
REVOKE_FORM: dict[str, Any] = {
    "type": "object",
    "required": ["token"],
    "properties": {
        "token": {"type": "string", "description": "the access token to revoke"},
        "token_type_hint": {"type": "string", "enum": ["access_token"]},
        "client_id": {"type": "string", "description": "client_secret_post only (else HTTP Basic)"},
        "client_secret": {"type": "string", "format": "password", "description": "client_secret_post only"},
    },
}
