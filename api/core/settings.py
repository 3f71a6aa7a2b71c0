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
    db_pool_size: int = Field(default=20, ge=1)
    # Bounds on every wait for the database (README, "Bounds on waiting for the database"). A
    # bound hit is a 503 problem with Retry-After, never a request that hangs.
    db_pool_timeout: float = Field(default=10.0, gt=0, le=600,
                                   description="seconds a request waits for a free pooled connection")
    db_connect_timeout: int = Field(default=5, ge=2, le=600,
                                    description="seconds to open a connection to PostgreSQL (libpq's minimum is 2)")
    db_statement_timeout: float = Field(default=15.0, gt=0, le=3600,
                                        description="seconds PostgreSQL may work on one statement")
    db_reply_margin: float = Field(default=5.0, gt=0, le=600,
                                   description="seconds past the statement timeout the service waits for the "
                                               "database's reply before it gives the connection up as lost")
    db_idle_in_transaction_timeout: float = Field(
        default=60.0, gt=0, le=3600,
        description="seconds PostgreSQL keeps a session idle in a transaction (its client gone) before it ends it "
                    "and frees its locks")
    db_tcp_user_timeout: float = Field(
        default=30.0, gt=0, le=3600,
        description="seconds sent data may stay unacknowledged before the connection is dropped (TCP_USER_TIMEOUT; "
                    "keepalives probe an idle connection from a third of it), on both ends of PostgreSQL connections")
    db_ping_idle: float = Field(
        default=1.0, ge=0, le=3600,
        description="seconds a pooled PostgreSQL connection may sit idle and still be handed out without a ping "
                    "first (0: ping every time)")
    db_startup_wait: float = Field(default=120.0, ge=0, le=86_400,
                                   description="seconds a starting server waits for the database before it gives up")
    readyz_timeout: float = Field(default=3.0, gt=0, le=60, description="seconds /readyz takes at most")
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
    # A local append-only file where the audit entries of failed requests wait while the
    # database cannot take them (an outage): fsynced, and written into the chain when the
    # database is back (api.core.audit). None: such an entry is only logged.
    audit_spool: str | None = Field(default=None, description="path of the audit spool file")
    max_body_bytes: int = 1024 * 1024
    # Bounds of the server itself (`sinergi serve`): a client that sends slowly, or too many at
    # once, is cut off or refused instead of holding memory and connections for ever.
    header_timeout: float = Field(default=10.0, gt=0, le=600, description="seconds for a request's line and headers")
    max_header_bytes: int = Field(default=64 * 1024, ge=1024, le=1024 * 1024, description="bytes of line and headers")
    body_timeout: float = Field(default=30.0, gt=0, le=3600, description="seconds for the whole body, from its headers")
    keep_alive_timeout: int = Field(default=5, ge=1, le=600, description="seconds an idle connection is kept")
    max_concurrency: int = Field(default=256, ge=1, le=100_000, description="requests in flight per server process")
    # Addresses or networks of the reverse proxies in front of the service. Only a request from
    # one of them has its client address taken from X-Forwarded-For; every other request's is
    # the socket's. Empty (the default): X-Forwarded-For is never believed.
    # SINERGI_TRUSTED_PROXIES="10.0.0.5, 10.1.0.0/16" (or a JSON list).
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    log_level: str = "INFO"
    log_json: bool = True
    suppression_threshold: int = 5
    # Recruitment alerts (api/alerts): an identifier of a recruiter reported by this many distinct
    # agencies raises an alert to the police and task force over the places of the reports; the
    # public warning list shows a modus and place reported by this many.
    alert_threshold: int = Field(default=2, ge=1, le=100, description="independent reporting agencies")
    # Rate limits (api/http/ratelimit.py): requests per ``rate_window`` seconds; 0 turns one off.
    # The defaults are far above what a partner system, the demo or the benchmarks send.
    rate_window: int = Field(default=60, ge=1, le=3600, description="seconds")
    rate_client: int = Field(default=6000, ge=0, description="authenticated requests per client and window")
    rate_source: int = Field(
        default=600, ge=0, description="refused authentication attempts (no or bad token) per source and window"
    )
    # A client keeps its token for its lifetime; a failed token request is one audit entry each.
    rate_token: int = Field(default=300, ge=0, description="requests to /oauth/token and /oauth/revoke per source and window")
    # The public warning list (GET /v1/public/warnings, no token) per source and window.
    rate_public: int = Field(default=120, ge=0, description="requests to the public routes per source and window")
    # Denials of unauthenticated callers are audited one entry per (source, minute) plus a summary
    # (api/http/denials.py); past this many (source, client) pairs in one minute the rest share one.
    rate_audit_sources: int = Field(default=1000, ge=1, description="denial tallies per minute")
    # Webhooks (api/webhooks). The server delivers in-process unless ``webhook_worker`` is off
    # (then run ``sinergi worker``, as many as needed: they never deliver one attempt twice).
    webhook_worker: bool = True
    # Partner URLs whose addresses are not globally routable (loopback, private, link-local such
    # as 169.254.169.254) are refused at subscription and at every connection, unless allowed
    # here. Unset: allowed in development mode only (tests and `make run` post to 127.0.0.1).
    webhook_allow_private: bool | None = None
    webhook_timeout: float = Field(default=10.0, gt=0, le=60, description="seconds per attempt, connecting included")
    webhook_max_attempts: int = Field(default=12, ge=1, le=50, description="attempts of one delivery before it is "
                                      "given up and its subscription disabled")
    webhook_backoff: float = Field(default=5.0, gt=0, le=3600, description="seconds before the first retry; "
                                   "doubled at every further one (with jitter)")
    webhook_backoff_max: float = Field(default=6 * 3600.0, gt=0, description="seconds: the longest wait between attempts")
    webhook_poll: float = Field(default=1.0, gt=0, le=60, description="seconds between looks for new work when idle")
    webhook_batch: int = Field(default=100, ge=1, le=1000, description="deliveries claimed at once")
    webhook_concurrency: int = Field(default=8, ge=1, le=256, description="attempts in flight per worker")
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
    def db_reply_timeout(self) -> float:
        """How long the service waits for any one reply of PostgreSQL: the statement timeout
        (the server gives up by then and says so) plus the margin (the reply's way back)."""
        return self.db_statement_timeout + self.db_reply_margin

    @property
    def webhook_private_allowed(self) -> bool:
        """Whether webhook URLs may reach addresses that are not globally routable."""
        return self.mode == "development" if self.webhook_allow_private is None else self.webhook_allow_private

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
