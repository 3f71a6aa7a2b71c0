"""Service settings: environment variables with the ``SINERGI_`` prefix, or a ``.env`` file.

The default mode is ``production``, and it fails closed: without real keys
(``SINERGI_DATA_KEY``, ``SINERGI_INDEX_KEY``) the settings do not validate, so the service
refuses to start. Only ``SINERGI_MODE=development``, set explicitly (``make run`` and the test
suite do), may fall back to the well-known development keys, and the service says so loudly at
start-up. A deployment that forgets the mode therefore never runs on a key that is printed in
this repository (with it, anyone holding a copy of the database would read every NIK and sign
tokens of their own).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Development-only keys. They are public by being here; only development mode accepts them.
DEV_DATA_KEY = base64.urlsafe_b64encode(hashlib.sha256(b"sinergi development data key").digest()).decode()
DEV_INDEX_KEY = base64.urlsafe_b64encode(hashlib.sha256(b"sinergi development index key").digest()).decode()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SINERGI_", env_file=".env", extra="ignore")

    mode: Literal["development", "production"] = "production"
    database_url: str = "sqlite+aiosqlite:///./sinergi.db"
    db_pool_size: int = 20
    # SQLite: how long a transaction waits for the write lock another holds before the request
    # answers 503 /problems/busy (contention, not an outage).
    sqlite_busy_timeout: float = Field(default=30.0, gt=0, le=600, description="seconds")
    issuer: str = "http://127.0.0.1:8000"
    audience: str = "sinergi"
    access_token_ttl: int = Field(default=900, ge=60, le=86_400, description="seconds")
    # Key that encrypts personal data and the signing keys at rest (32 bytes, urlsafe base64).
    data_key: str | None = None
    # Key of the keyed blind index (HMAC) that matches NIK / passport / phone without decrypting.
    index_key: str | None = None
    audit_chain: str = Field(
        default="61",
        description="chain key for events of callers without a jurisdiction (the operator)",
    )
    max_body_bytes: int = 1024 * 1024
    # Addresses or networks of the reverse proxies in front of the service. Only a request from
    # one of them has its client address taken from X-Forwarded-For; every other request's is
    # the socket's. Empty (the default): X-Forwarded-For is never believed.
    # SINERGI_TRUSTED_PROXIES="10.0.0.5, 10.1.0.0/16" (or a JSON list).
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    log_level: str = "INFO"
    log_json: bool = True
    suppression_threshold: int = 5
    # Rate limits (api/http/ratelimit.py): requests per ``rate_window`` seconds; 0 turns one off.
    # The defaults are far above what a partner system, the demo or the benchmarks send.
    rate_window: int = Field(default=60, ge=1, le=3600, description="seconds")
    rate_client: int = Field(default=6000, ge=0, description="authenticated requests per client and window")
    rate_source: int = Field(
        default=600, ge=0, description="refused authentication attempts (no or bad token) per source and window"
    )
    # A client keeps its token for its lifetime; a failed token request is one audit entry each.
    rate_token: int = Field(default=300, ge=0, description="requests to /oauth/token and /oauth/revoke per source and window")
    # Denials of unauthenticated callers are audited one entry per (source, minute) plus a summary
    # (api/http/denials.py); past this many (source, client) pairs in one minute the rest share one.
    rate_audit_sources: int = Field(default=1000, ge=1, description="denial tallies per minute")
    # The console (officers' pages): sessions, sign-in lock-out.
    session_idle: int = Field(default=1800, ge=60, le=86_400, description="seconds a session lives unused")
    session_absolute: int = Field(default=43_200, ge=300, le=7 * 86_400, description="seconds a session lives at most")
    signin_lockout_after: int = Field(default=5, ge=1, le=100, description="failed sign-ins before an officer is locked")
    signin_lockout: int = Field(default=900, ge=60, le=86_400, description="seconds an officer stays locked")
    rate_signin: int = Field(default=20, ge=0, description="sign-in attempts per source and window")

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_list(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: list[str]) -> list[str]:
        try:
            return [str(ipaddress.ip_network(v, strict=False)) for v in value]
        except ValueError as exc:
            raise ValueError(f"SINERGI_TRUSTED_PROXIES: {exc}") from None

    @property
    def trusted_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(v) for v in self.trusted_proxies)

    @model_validator(mode="after")
    def _no_insecure_defaults(self) -> Settings:
        if self.mode != "development":
            missing = [n for n in ("data_key", "index_key") if not getattr(self, n)]
            if missing:
                names = ", ".join(f"SINERGI_{n.upper()}" for n in missing)
                raise ValueError(f"{self.mode} mode needs {names}; refusing to fall back to the development "
                                 "keys (set SINERGI_MODE=development to run on them, never in a deployment)")
            if self.data_key == DEV_DATA_KEY or self.index_key == DEV_INDEX_KEY:
                raise ValueError(f"{self.mode} mode refuses the development keys")
        for name in ("data_key", "index_key"):
            value = getattr(self, name)
            if value is not None and len(_b64(value)) != 32:
                raise ValueError(f"SINERGI_{name.upper()} must be 32 bytes in urlsafe base64")
        return self

    @property
    def development_keys(self) -> list[str]:
        """The settings (``SINERGI_DATA_KEY``, ``SINERGI_INDEX_KEY``) that are the published
        development keys; only development mode gets past validation with any."""
        return [f"SINERGI_{name.upper()}" for name, dev in (("data_key", DEV_DATA_KEY), ("index_key", DEV_INDEX_KEY))
                if getattr(self, name) in (None, dev)]

    @property
    def data_key_bytes(self) -> bytes:
        return _b64(self.data_key or DEV_DATA_KEY)

    @property
    def index_key_bytes(self) -> bytes:
        return _b64(self.index_key or DEV_INDEX_KEY)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _b64(value: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError:
        return b""


@lru_cache
def get_settings() -> Settings:
    return Settings()
