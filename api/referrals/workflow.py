"""The referral state machine: the one place that says which move is allowed, by whom.

Statuses are FHIR Task codes. The receiver moves the referral through its work; the sender may
only cancel it while it is open::

    requested --receive--> received --accept--> accepted --start--> in-progress --complete--> completed
                                   \\--reject--> rejected              |  ^      \\--fail--> failed
                                                                  hold  resume
                                                                      v  |
                                                                    on-hold
    any open state (requested, received, accepted, in-progress, on-hold) --cancel (sender)--> cancelled

A move by the wrong party (the sender accepting, the receiver cancelling) or from a state the
table does not list is a 409 and changes nothing. ``reject`` and ``fail`` need a note saying why.

Due times (:data:`DUE_AFTER`), counted from creation:

* ``normal``: 7 days, the time UU 21/2007 Art. 52 gives for services to a victim;
* ``high``: 72 hours;
* ``emergency``: 24 hours (a victim in danger or in need of urgent medical care).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from api.core.errors import Conflict
from api.core.scopes import Scope
from models import OPEN_STATUSES, ReferralStatus, Urgency


class Action(StrEnum):
    receive = "receive"
    accept = "accept"
    reject = "reject"
    start = "start"
    hold = "hold"
    resume = "resume"
    complete = "complete"
    fail = "fail"
    cancel = "cancel"


class Party(StrEnum):
    sender = "sender"
    receiver = "receiver"


@dataclass(frozen=True, slots=True)
class Move:
    party: Party
    sources: frozenset[ReferralStatus]
    target: ReferralStatus


S = ReferralStatus

TRANSITIONS: dict[Action, Move] = {
    Action.receive: Move(Party.receiver, frozenset({S.requested}), S.received),
    Action.accept: Move(Party.receiver, frozenset({S.received}), S.accepted),
    Action.reject: Move(Party.receiver, frozenset({S.received}), S.rejected),
    Action.start: Move(Party.receiver, frozenset({S.accepted}), S.in_progress),
    Action.hold: Move(Party.receiver, frozenset({S.in_progress}), S.on_hold),
    Action.resume: Move(Party.receiver, frozenset({S.on_hold}), S.in_progress),
    Action.complete: Move(Party.receiver, frozenset({S.in_progress}), S.completed),
    Action.fail: Move(Party.receiver, frozenset({S.in_progress}), S.failed),
    Action.cancel: Move(Party.sender, frozenset(OPEN_STATUSES), S.cancelled),
}

#: Moves that must say why.
NOTE_REQUIRED = frozenset({Action.reject, Action.fail})

#: The scope each party needs to move a referral.
SCOPE_OF: dict[Party, Scope] = {Party.receiver: Scope.referrals_respond, Party.sender: Scope.referrals_write}

DUE_AFTER: dict[Urgency, timedelta] = {
    Urgency.emergency: timedelta(hours=24),
    Urgency.high: timedelta(hours=72),
    Urgency.normal: timedelta(days=7),
}


class TransitionNotAllowed(Conflict):
    slug, title = "transition-not-allowed", "The referral cannot make this move"


def due_at(urgency: Urgency | str, created_at: datetime) -> datetime:
    return created_at + DUE_AFTER[Urgency(urgency)]


def is_open(status: ReferralStatus | str) -> bool:
    return ReferralStatus(status) in OPEN_STATUSES


def is_overdue(status: ReferralStatus | str, due: datetime, now: datetime) -> bool:
    return is_open(status) and due < now


def party_for(action: Action) -> Party:
    return TRANSITIONS[action].party


def required_scope(action: Action) -> Scope:
    return SCOPE_OF[party_for(action)]


def check_party(action: Action, party: Party | None) -> None:
    """409 unless ``party`` is the one who makes ``action``."""
    move = TRANSITIONS[action]
    if party != move.party:
        who = "the sender" if move.party is Party.sender else "the receiving agency"
        raise TransitionNotAllowed(f"Only {who} may {action.value} a referral", action=action.value)


def next_status(status: ReferralStatus | str, action: Action) -> ReferralStatus:
    """The status after ``action`` from ``status``; 409 when the table has no such move."""
    current = ReferralStatus(status)
    move = TRANSITIONS[action]
    if current not in move.sources:
        raise TransitionNotAllowed(
            f"A referral that is '{current.value}' does not allow '{action.value}'",
            action=action.value,
            current_status=current.value,
            allowed=allowed_actions(current, move.party),
        )
    return move.target


def allowed_actions(status: ReferralStatus | str, party: Party | None) -> list[str]:
    """The moves ``party`` may make from ``status`` (for replies that help the caller)."""
    current = ReferralStatus(status)
    return [a.value for a, m in TRANSITIONS.items() if current in m.sources and (party is None or m.party == party)]
