"""Referrals: a case handed from one agency to another for action, and the moves it went through.

Statuses are FHIR Task codes (as Primero's referrals use them); the transitions between them
live in ``api/referrals/workflow.py`` only. The region columns (``from_region``, ``to_region``,
``subject_region``) are copied at creation so that oversight visibility is one indexed query
and does not change when an agency's jurisdiction is later edited.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import new_id, ts_column, utcnow
from models.columns import str_enum
from models.returnee import Sex


class ReferralStatus(StrEnum):
    """FHIR Task status codes used by referrals."""

    requested = "requested"
    received = "received"
    accepted = "accepted"
    rejected = "rejected"
    in_progress = "in-progress"
    on_hold = "on-hold"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


OPEN_STATUSES = frozenset(
    {
        ReferralStatus.requested,
        ReferralStatus.received,
        ReferralStatus.accepted,
        ReferralStatus.in_progress,
        ReferralStatus.on_hold,
    }
)


class ReferralReason(StrEnum):
    suspected_tppo_victim = "suspected_tppo_victim"
    health_rehabilitation = "health_rehabilitation"
    social_rehabilitation = "social_rehabilitation"
    repatriation = "repatriation"
    reintegration = "reintegration"
    legal_aid = "legal_aid"
    restitution = "restitution"
    other = "other"


class Urgency(StrEnum):
    emergency = "emergency"
    high = "high"
    normal = "normal"


class ConsentMethod(StrEnum):
    written = "written"
    verbal_witnessed = "verbal_witnessed"
    thumbprint = "thumbprint"
    electronic = "electronic"


class ProcessingBasis(StrEnum):
    """Lawful bases other than consent, UU PDP 27/2022 Art. 20(2) b-f."""

    contract = "contract"  # b: performing an agreement with the subject
    legal_obligation = "legal_obligation"  # c: the controller's legal obligation
    vital_interest = "vital_interest"  # d: protecting the subject's vital interests
    public_task = "public_task"  # e: public interest, public service or lawful authority
    legitimate_interest = "legitimate_interest"  # f: other legitimate interests


class Referral(SQLModel, table=True):
    __tablename__ = "referral"
    __table_args__ = (
        sa.UniqueConstraint("from_agency", "sender_ref"),
        sa.Index("ix_referral_to_agency_status", "to_agency", "status"),
        sa.Index("ix_referral_from_agency_status", "from_agency", "status"),
        sa.Index("ix_referral_status_due_at", "status", "due_at"),
        sa.Index("ix_referral_change_pos", "change_pos", unique=True),  # the sync order (sort=changes)
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    from_agency: str = Field(foreign_key="agency.code", max_length=64)
    to_agency: str = Field(foreign_key="agency.code", max_length=64)
    sender_ref: str | None = Field(default=None, max_length=100)
    status: ReferralStatus = Field(default=ReferralStatus.requested, sa_type=str_enum(ReferralStatus, 20))
    version: int = Field(default=1)

    # who the referral is about: a returnee record, or a person described inline (minimal PII)
    returnee_id: uuid.UUID | None = Field(default=None, foreign_key="returnee.id", index=True)
    subject_name: str | None = Field(default=None, max_length=200)
    subject_sex: Sex | None = Field(default=None, sa_type=str_enum(Sex, 1))
    subject_birth_date: date | None = None
    subject_is_child: bool = Field(default=False)
    subject_phone_enc: str | None = None

    # regions copied at creation: who oversees it (see api/referrals/service.py)
    from_region: str = Field(max_length=16, index=True)
    to_region: str = Field(max_length=16, index=True)
    subject_region: str | None = Field(default=None, max_length=16, index=True)

    reason: ReferralReason = Field(sa_type=str_enum(ReferralReason, 32))
    legal_basis: str = Field(max_length=64)
    urgency: Urgency = Field(sa_type=str_enum(Urgency, 16))
    note: str | None = Field(default=None, max_length=2000)

    consent_given: bool = Field(default=False)
    consent_given_by: str | None = Field(default=None, max_length=200)
    consent_given_at: datetime | None = Field(default=None, sa_column=ts_column(nullable=True))
    consent_method: ConsentMethod | None = Field(default=None, sa_type=str_enum(ConsentMethod, 32))
    consent_guardian: str | None = Field(default=None, max_length=200)
    processing_basis: ProcessingBasis | None = Field(default=None, sa_type=str_enum(ProcessingBasis, 32))

    due_at: datetime = Field(sa_column=ts_column(nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=ts_column(nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=ts_column(nullable=False, index=True))
    closed_at: datetime | None = Field(default=None, sa_column=ts_column(nullable=True))
    # Position of the referral's last change in commit order (api/core/changes.py).
    change_pos: int | None = Field(default=None, sa_type=sa.BigInteger)

    @property
    def region(self) -> str:
        """The region the referral's events are filed under: the subject's district if known,
        else the receiver's jurisdiction."""
        return self.subject_region or self.to_region


class ReferralHistory(SQLModel, table=True):
    """One move of a referral (its creation included), in order."""

    __tablename__ = "referral_history"
    __table_args__ = (sa.UniqueConstraint("referral_id", "seq"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    referral_id: uuid.UUID = Field(foreign_key="referral.id")
    seq: int
    from_status: ReferralStatus | None = Field(default=None, sa_type=str_enum(ReferralStatus, 20))
    to_status: ReferralStatus = Field(sa_type=str_enum(ReferralStatus, 20))
    # api.referrals.workflow.Action's values, and "request" for the creation
    action: str = Field(max_length=20)
    by_agency: str = Field(max_length=64)
    by_client: str | None = Field(default=None, max_length=64)
    at: datetime = Field(sa_column=ts_column(nullable=False))
    note: str | None = Field(default=None, max_length=2000)
