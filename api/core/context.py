"""What one request carries through its transaction: who calls, what it audits, what it emits.

A unit of work (:mod:`api.core.unit`) carries a :class:`RequestContext`; services record audit
entries and events there, and the unit writes them in the same transaction just before it
commits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from api.core.scopes import Scope
from models import OVERSIGHT_KINDS, AgencyKind, Outcome
from models.regions import covers


@dataclass(frozen=True, slots=True)
class Caller:
    client_id: str
    agency: str
    agency_kind: AgencyKind
    jurisdiction: str
    scopes: frozenset[str]
    token_id: str
    # the officer signed in to the console (api/officers) whose session this is; the agency's
    # machine calls have none
    officer: str | None = None

    def has(self, scope: Scope) -> bool:
        """Whether the caller holds ``scope`` (a :class:`api.core.scopes.Scope`: a misspelt
        scope is a type error, not a permission silently never granted)."""
        return scope in self.scopes

    @property
    def is_oversight(self) -> bool:
        return self.agency_kind in OVERSIGHT_KINDS

    def covers(self, region_code: str | None) -> bool:
        """Whether a region code lies in the caller's jurisdiction."""
        return covers(self.jurisdiction, region_code)


@dataclass(slots=True)
class AuditRecord:
    action: str
    outcome: Outcome = Outcome.allowed
    resource_type: str | None = None
    resource_id: str | None = None
    subjects: list[tuple[str, str]] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class PendingEvent:
    type: str
    data: dict[str, Any]
    region: str | None
    audience: tuple[str, ...]


@dataclass(slots=True)
class RequestContext:
    """``request_id`` is the server's own (never the caller's); ``caller_request_id`` is the
    caller's ``X-Request-ID``, kept beside it. ``ip`` is the client's address (the socket's,
    or a trusted proxy's ``X-Forwarded-For``). ``claimed_user``: the person a machine call says it is made for; ``client_id`` is a client proven without a token
    (by its secret at ``/oauth/token``; the operator's command line); ``claimed_client_id`` is
    one that is only claimed, and goes into an entry's detail, never its ``client_id``.
    ``audited``: an entry for this request has been written (or its writing was attempted)."""

    request_id: str | None = None
    ip: str | None = None
    route: str | None = None
    path_params: dict[str, Any] = field(default_factory=dict)
    caller: Caller | None = None
    scope_used: str | None = None
    claimed_client_id: str | None = None
    client_id: str | None = None
    caller_request_id: str | None = None
    # the person a partner system says is behind its machine call (header ``Sinergi-User-Id``,
    # as X-Road's ``X-Road-UserId``): claimed, not proven
    claimed_user: str | None = None
    audited: bool = False
    audit: list[AuditRecord] = field(default_factory=list)
    events: list[PendingEvent] = field(default_factory=list)
