"""The scopes of API.md, with what each allows."""

SCOPES: dict[str, str] = {
    "returnees:write": "push returnee records (BP3MI)",
    "returnees:read": "read returnee records in the jurisdiction",
    "pii:read": "see NIK, passport and phone numbers unmasked",
    "notices:write": "issue deportation notices",
    "notices:read": "read deportation notices addressed to the jurisdiction or issued by the agency",
    "notices:ack": "acknowledge notices and record follow-ups",
    "referrals:write": "refer cases to other agencies, cancel them",
    "referrals:read": "read referrals sent or received (all in the jurisdiction for oversight agencies)",
    "referrals:respond": "receive, accept, reject and work referrals addressed to the agency",
    "stats:read": "read aggregate statistics",
    "audit:read": "read and verify the audit chain",
    "events:read": "read the change feed",
    "webhooks:manage": "manage webhook subscriptions",
    "admin": "register agencies and their API clients",
}
