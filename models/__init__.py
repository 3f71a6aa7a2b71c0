"""Every table model, imported here so that ``SQLModel.metadata`` is complete when used."""

from models.agency import OVERSIGHT_KINDS, Agency, AgencyKind, ApiClient
from models.alert import (
    IdentifierKind,
    RecruiterIdentifier,
    RecruiterLink,
    RecruitmentAlert,
    RecruitmentModus,
    RecruitmentReport,
)
from models.audit import GENESIS_HASH, AuditEvent, AuditHead, AuditSubject, Outcome
from models.base import NAMING_CONVENTION, UTCDateTime, new_id, utcnow
from models.event import ChangeHead, Event, EventHead
from models.idempotency import IdempotencyRecord
from models.manifest import EntryPoint, Manifest, ManifestPerson, ManifestPersonStatus
from models.notice import FollowUpAction, Notice, NoticeFollowUp, NoticeReturnee, NoticeStatus
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
from models.register import Departure, DepartureBase, RegisterPerson, RegisterStatus
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
from models.webhook import DeliveryStatus, Webhook, WebhookAttempt, WebhookDelivery, WebhookStatus

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
    "Departure",
    "DepartureBase",
    "IdentifierKind",
    "RecruiterIdentifier",
    "RecruiterLink",
    "RecruitmentAlert",
    "RecruitmentModus",
    "RecruitmentReport",
    "RegisterPerson",
    "RegisterStatus",
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
    "EntryPoint",
    "Manifest",
    "ManifestPerson",
    "ManifestPersonStatus",
    "NoticeStatus",
    "Outcome",
    "RevokedToken",
    "SigningKey",
    "UTCDateTime",
    "DeliveryStatus",
    "Webhook",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookStatus",
    "Urgency",
    "new_id",
    "utcnow",
]
