"""Referral requests and replies (API.md, "Minimum fields: Referral").

Input is validated here; rules that need the database (the returnee exists and the sender may
see it, the receiving agency is registered, a returnee who is a child needs a guardian's
consent) are checked in :mod:`api.referrals.service`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from api.core import clock, crypto
from api.core.pagination import Keyset, Page
from api.core.params import Region
from api.core.text import SafeText
from api.referrals import workflow
from api.referrals.workflow import Action
from models import (
    ConsentMethod,
    ProcessingBasis,
    Referral,
    ReferralHistory,
    ReferralReason,
    ReferralStatus,
    Urgency,
)

LEGAL_BASIS_PATTERN = r"^[A-Z][A-Z0-9]*-[0-9]{1,4}-[0-9]{4}(:[0-9]+[A-Za-z]?(\([0-9]+\))?)?$"
ADULT_AGE = 18  # UU 35/2014 (child protection): a child is under 18


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


class SubjectIn(BaseModel):
    """A person who is not (yet) a returnee record. Keep it minimal: only what the receiver
    needs to find and help the person."""

    model_config = ConfigDict(extra="forbid")

    full_name: SafeText = Field(min_length=1, max_length=200)
    sex: Literal["F", "M"] | None = None
    birth_date: date | None = None
    is_child: bool | None = Field(default=None, description="under 18; derived from birth_date when omitted")
    district: Region | None = Field(default=None, description="region code where the person lives", examples=["61.07"])
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9][0-9 \-]{5,19}$",
                              description="stored encrypted; shown only with pii:read")

    @field_validator("birth_date")
    @classmethod
    def _past(cls, v: date | None) -> date | None:
        if v is not None and v > clock.now().date():
            raise ValueError("birth_date is in the future")
        return v

    def child_on(self, day: date) -> bool:
        if self.is_child:
            return True
        return self.birth_date is not None and age_on(self.birth_date, day) < ADULT_AGE


class ConsentIn(BaseModel):
    """The subject's consent (UU PDP 27/2022): who gave it, when and how; a child's through a
    guardian."""

    model_config = ConfigDict(extra="forbid")

    given: bool = False
    given_by: SafeText | None = Field(default=None, max_length=200)
    given_at: datetime | None = None
    method: ConsentMethod | None = None
    guardian: SafeText | None = Field(default=None, max_length=200, description="required when the subject is a child")

    @field_validator("given_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            v = v.replace(tzinfo=UTC)
        if v is not None and v > clock.now() + timedelta(minutes=5):
            raise ValueError("given_at is in the future")
        return v

    def missing(self) -> list[str]:
        if not self.given:
            return []
        return [n for n in ("given_by", "given_at", "method") if getattr(self, n) in (None, "")]


class ReferralCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "to_agency": "POLRES-BENGKAYANG", "sender_ref": "BP3MI-REF-2025-0042",
        "returnee_id": "0b5c9f3e-7a41-4f0e-9d1c-2a6f8e4b7c10", "reason": "suspected_tppo_victim",
        "legal_basis": "UU-21-2007:51", "urgency": "high", "note": "recruited with a false job offer",
        "consent": {"given": True, "given_by": "the subject", "given_at": "2025-07-01T09:00:00+07:00",
                    "method": "written"}}]})

    to_agency: str = Field(min_length=2, max_length=64, examples=["POLRES-BENGKAYANG"])
    sender_ref: str | None = Field(default=None, min_length=1, max_length=100,
                                   description="the sender's own case reference, unique per sender")
    returnee_id: uuid.UUID | None = Field(default=None, description="a returnee the sender may see")
    subject: SubjectIn | None = Field(default=None, validate_default=True,
                                      description="the person, when not a returnee record")
    reason: ReferralReason
    legal_basis: str = Field(pattern=LEGAL_BASIS_PATTERN, max_length=64, examples=["UU-21-2007:51"],
                             description="instrument-number-year:article, e.g. UU-21-2007:51")
    urgency: Urgency = Field(
        default=Urgency.normal,
        description="sets due_at from creation: emergency 24 hours, high 72 hours, "
        "normal 7 days (UU 21/2007 Art. 52)",
    )
    note: SafeText | None = Field(default=None, max_length=2000)
    consent: ConsentIn | None = Field(default=None, validate_default=True)
    processing_basis: ProcessingBasis | None = Field(
        default=None, validate_default=True,
        description="UU PDP 27/2022 Art. 20 basis; required when consent is not given",
    )

    @field_validator("subject")
    @classmethod
    def _one_subject(cls, v: SubjectIn | None, info: ValidationInfo) -> SubjectIn | None:
        has_returnee = info.data.get("returnee_id") is not None
        if v is None and not has_returnee:
            raise ValueError("give returnee_id or describe the person in subject")
        if v is not None and has_returnee:
            raise ValueError("give returnee_id or subject, not both")
        return v

    @field_validator("consent")
    @classmethod
    def _consent(cls, v: ConsentIn | None, info: ValidationInfo) -> ConsentIn | None:
        if v is None:
            return v
        missing = v.missing()
        if missing:
            raise ValueError(f"consent given needs {', '.join(missing)}")
        subject = info.data.get("subject")
        if v.given and isinstance(subject, SubjectIn) and subject.child_on(clock.now().date()) and not v.guardian:
            raise ValueError("the subject is a child: consent needs the guardian who gave it")
        return v

    @field_validator("processing_basis")
    @classmethod
    def _basis(cls, v: ProcessingBasis | None, info: ValidationInfo) -> ProcessingBasis | None:
        if "consent" not in info.data:  # the consent itself was invalid; that error says enough
            return v
        consent = info.data.get("consent")
        if v is None and not (isinstance(consent, ConsentIn) and consent.given):
            raise ValueError("without the subject's consent a processing_basis (UU PDP Art. 20) is required")
        return v


class TransitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "action": "accept", "note": "case officer assigned"}]})

    action: Action
    note: SafeText | None = Field(default=None, max_length=2000, validate_default=True,
                             description="required for reject and fail")

    @field_validator("note")
    @classmethod
    def _why(cls, v: str | None, info: ValidationInfo) -> str | None:
        action = info.data.get("action")
        if action in workflow.NOTE_REQUIRED and not (v and v.strip()):
            raise ValueError(f"'{action}' needs a note saying why")
        return v


# --- replies -----------------------------------------------------------------------------


class HistoryEntry(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: Annotated[str | None, Field(alias="from")]
    to: str
    action: str
    by: str
    at: datetime
    note: str | None = None

    @classmethod
    def of(cls, h: ReferralHistory) -> HistoryEntry:
        return cls(from_=h.from_status, to=h.to_status, action=h.action, by=h.by_agency, at=h.at, note=h.note)


class SubjectOut(BaseModel):
    full_name: str | None
    sex: str | None
    birth_date: date | None
    is_child: bool
    district: str | None
    phone: str | None = Field(description="null without pii:read (no part of it is shown)")
    phone_on_file: bool = Field(description="a phone number is held (shown only with pii:read)")


class ConsentOut(BaseModel):
    given: bool
    given_by: str | None = None
    given_at: datetime | None = None
    method: str | None = None
    guardian: str | None = None


class ReferralSummary(BaseModel):
    id: uuid.UUID
    sender_ref: str | None
    from_agency: str
    to_agency: str
    status: ReferralStatus
    returnee_id: uuid.UUID | None
    subject: SubjectOut | None
    reason: ReferralReason
    legal_basis: str
    urgency: Urgency
    note: str | None
    consent: ConsentOut
    consent_status: Literal["given", "not_given"]
    processing_basis: ProcessingBasis | None
    due_at: datetime
    overdue: bool
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    version: int

    @classmethod
    def fields_of(cls, r: Referral, now: datetime, show_pii: bool, data_key: bytes) -> dict[str, Any]:
        subject = None
        if r.returnee_id is None:
            phone, on_file = crypto.disclose(r.subject_phone_enc, pii=show_pii, context="referral.subject_phone",
                                             key=data_key)
            subject = SubjectOut(full_name=r.subject_name, sex=r.subject_sex, birth_date=r.subject_birth_date,
                                 is_child=r.subject_is_child, district=r.subject_region, phone=phone,
                                 phone_on_file=on_file)
        return dict(
            id=r.id, sender_ref=r.sender_ref, from_agency=r.from_agency, to_agency=r.to_agency,
            status=r.status, returnee_id=r.returnee_id, subject=subject, reason=r.reason,
            legal_basis=r.legal_basis, urgency=r.urgency, note=r.note,
            consent=ConsentOut(given=r.consent_given, given_by=r.consent_given_by, given_at=r.consent_given_at,
                               method=r.consent_method, guardian=r.consent_guardian),
            consent_status="given" if r.consent_given else "not_given",
            processing_basis=r.processing_basis, due_at=r.due_at,
            overdue=workflow.is_overdue(r.status, r.due_at, now),
            created_at=r.created_at, updated_at=r.updated_at, closed_at=r.closed_at, version=r.version,
        )

    @classmethod
    def of(cls, r: Referral, now: datetime, show_pii: bool, data_key: bytes) -> ReferralSummary:
        return cls(**cls.fields_of(r, now, show_pii, data_key))


class ReferralPublic(ReferralSummary):
    history: list[HistoryEntry]

    @classmethod
    def with_history(
        cls, r: Referral, history: list[ReferralHistory], now: datetime, show_pii: bool, data_key: bytes
    ) -> ReferralPublic:
        return cls(**cls.fields_of(r, now, show_pii, data_key), history=[HistoryEntry.of(h) for h in history])


class ReferralList(Page[ReferralSummary]):
    pass


SortOrder = Literal["due_at", "-due_at", "created_at", "-created_at", "updated_at", "-updated_at", "changes"]
# One cursor format per sort order, by (the sort column, id): a cursor opens only on the order
# that made it.
# ``changes`` (the sync order) is by change_pos alone: it is unique.
REFERRALS = {sort: Keyset(f"referrals:{sort}", (int,) if sort == "changes" else (datetime, uuid.UUID))
             for sort in get_args(SortOrder)}


class ReferredReturnee(BaseModel):
    """What the receiver of an open referral may read of the referred returnee: no NIK,
    passport or phone number."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    full_name: str
    sex: str
    birth_date: date | None
    origin_district: str
    origin_subdistrict: str | None
    returned_from_country: str
    returned_from_region: str | None
    return_type: str
    return_date: date
    entry_point: str | None
    trafficking_status: str
