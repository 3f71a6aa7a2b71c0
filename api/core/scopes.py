"""The scopes of API.md: one closed set, with what each allows.

A :class:`Scope` is a ``StrEnum``, so it is its own string on the wire (``"pii:read"``) and in
tokens, and a typo in the code is an ``AttributeError`` instead of a scope nobody holds.
"""

from __future__ import annotations

from enum import StrEnum


class Scope(StrEnum):
    returnees_write = "returnees:write"
    returnees_read = "returnees:read"
    pii_read = "pii:read"
    notices_write = "notices:write"
    notices_read = "notices:read"
    notices_ack = "notices:ack"
    referrals_write = "referrals:write"
    referrals_read = "referrals:read"
    referrals_respond = "referrals:respond"
    stats_read = "stats:read"
    register_write = "register:write"
    register_read = "register:read"
    alerts_write = "alerts:write"
    alerts_read = "alerts:read"
    audit_read = "audit:read"
    events_read = "events:read"
    webhooks_manage = "webhooks:manage"
    manifests_write = "manifests:write"
    manifests_read = "manifests:read"
    manifests_locate = "manifests:locate"
    officers_manage = "officers:manage"
    admin = "admin"

    @property
    def description(self) -> str:
        return DESCRIPTIONS[self]


DESCRIPTIONS: dict[Scope, str] = {
    Scope.returnees_write: "push returnee records (BP3MI)",
    Scope.returnees_read: "read returnee records in the jurisdiction",
    Scope.pii_read: "see NIK, passport and phone numbers unmasked",
    Scope.notices_write: "issue deportation notices",
    Scope.notices_read: "read deportation notices addressed to the jurisdiction or issued by the agency",
    Scope.notices_ack: "acknowledge notices and record follow-ups",
    Scope.referrals_write: "refer cases to other agencies, cancel them",
    Scope.referrals_read: "read referrals sent or received (all in the jurisdiction for oversight agencies)",
    Scope.referrals_respond: "receive, accept, reject and work referrals addressed to the agency",
    Scope.stats_read: "read aggregate statistics",
    Scope.register_write: "record departures of migrant workers (BP3MI's placements, a village's or district's records)",
    Scope.register_read: "read the register of migrant workers of the jurisdiction (persons, counts)",
    Scope.alerts_write: "report illegal recruitment (modus, places, the recruiter's identifiers)",
    Scope.alerts_read: "read recruitment alerts over the jurisdiction (police, task force)",
    Scope.audit_read: "read and verify the audit chain",
    Scope.events_read: "read the change feed",
    Scope.webhooks_manage: "manage webhook subscriptions",
    Scope.manifests_write: "register arrival manifests and mark who arrived at the border (BP3MI)",
    Scope.manifests_read: "read arrival manifests: their people of the jurisdiction, all of them for the issuer",
    Scope.manifests_locate: "record whether an arrived person of the district was located",
    Scope.officers_manage: "manage the agency's own officer accounts (people who sign in to the console): create, "
                           "list, change, disable, reset their password or second factor",
    Scope.admin: "register agencies and their API clients",
}
