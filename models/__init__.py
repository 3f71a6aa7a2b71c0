"""Every table model, imported here so that ``SQLModel.metadata`` is complete when used."""

from models.agency import OVERSIGHT_KINDS, Agency, AgencyKind, ApiClient
from models.audit import GENESIS_HASH, AuditEvent, AuditHead, AuditSubject, Outcome
from models.base import NAMING_CONVENTION, UTCDateTime, new_id, utcnow
from models.event import ChangeHead, Event, EventHead
from models.idempotency import IdempotencyRecord
from models.notice import FollowUpAction, Notice, NoticeFollowUp, NoticeReturnee
from models.officer import Officer, OfficerSession
from models.ratelimit import RateLimitCounter
from models.referral import (
    OPEN_STATUSES,
    ConsentMethod,
    ProcessingBasis,
    Referral,
    ReferralHistory,
    ReferralReason,
    ReferralStatus,
    Urgency,
)
from models.returnee import (
    ControlMethod,
    ExploitationType,
    Person,
    RecruiterRelationship,
    Returnee,
    ReturneeBase,
    ReturnType,
    Sex,
    TraffickingStatus,
)
from models.security import RevokedToken, SigningKey

__all__ = [
    "NAMING_CONVENTION",
    "OVERSIGHT_KINDS",
    "OPEN_STATUSES",
    "GENESIS_HASH",
    "Agency",
    "ChangeHead",
    "AgencyKind",
    "ApiClient",
    "AuditEvent",
    "AuditHead",
    "AuditSubject",
    "ConsentMethod",
    "ControlMethod",
    "Event",
    "ExploitationType",
    "FollowUpAction",
    "IdempotencyRecord",
    "Notice",
    "Officer",
    "OfficerSession",
    "NoticeFollowUp",
    "NoticeReturnee",
    "Person",
    "ProcessingBasis",
    "RateLimitCounter",
    "RecruiterRelationship",
    "Referral",
    "ReferralHistory",
    "ReferralReason",
    "ReferralStatus",
    "ReturnType",
    "Returnee",
    "ReturneeBase",
    "Sex",
    "TraffickingStatus",
    "EventHead",
    "Outcome",
    "RevokedToken",
    "SigningKey",
    "UTCDateTime",
    "Urgency",
    "new_id",
    "utcnow",
]
