"""The request and response models of the API (checked against the service's OpenAPI
document by the service's test suite).

Replies are read leniently (a field the server adds later is kept, not refused); requests are
strict (a misspelt field fails here, before it is sent).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel as _PydanticModel
from pydantic import ConfigDict, Field, PrivateAttr

__all__ = [
    "WEBHOOK_EVENT_TYPES", "AccessToken", "Agency", "AgencyCreate", "AgencyKind", "Alert", "ArrivalMark", "ArrivalsIn",
    "AuditEvent", "AuditHead", "AuditVerification", "BatchResult", "Checkpoint", "ClientCreate", "ClientCreated",
    "Consent", "ConsentIn", "DeliveryAttempt", "DepartureBatchResult", "DepartureRecord", "DepartureResult", "EntryPoint",
    "Event", "EventPage", "FieldError", "FollowUp", "FollowUpAction", "FollowUpCreate", "HistoryEntry",
    "IdentifierKind", "ItemResult", "Manifest", "ManifestCreate", "ManifestPerson", "ManifestPersonIn",
    "ManifestPersonStatus", "ManifestSummary", "ManifestView", "NamedBy", "NamedByIn", "Notice", "NoticeCreate",
    "NoticeReturnee", "NoticeSummary", "OutcomeIn", "Place", "Problem", "PublicWarning", "RecruiterIdentifier",
    "RecruitmentModus", "RecruitmentReport", "RecruitmentReportCreate", "Referral", "ReferralAction",
    "ReferralCreate", "ReferralReason", "ReferralStatus", "ReferralSummary", "ReferredReturnee", "Region",
    "RegionDetail", "RegionLevel", "RegisterCounts", "RegisterDeparture", "RegisterPerson", "RegisterPersonDetail",
    "RegisterReturn", "RegisterStatus", "Returnee", "ReturneeRecord", "Stats", "Subject", "SubjectIn",
    "TransitionIn", "Urgency", "Webhook", "WebhookCreate", "WebhookCreated", "WebhookDelivery", "WebhookEventType",
]

Sex = Literal["F", "M"]
ReturnType = Literal["deported", "repatriated", "self_returned"]
TraffickingStatus = Literal["possible", "actual", "not_victim", "unknown"]
ReferralReason = Literal[
    "suspected_tppo_victim", "health_rehabilitation", "social_rehabilitation", "repatriation",
    "reintegration", "legal_aid", "restitution", "other",
]
ReferralStatus = Literal[
    "requested", "received", "accepted", "rejected", "in-progress", "on-hold", "completed", "failed", "cancelled",
]
ReferralAction = Literal["receive", "accept", "reject", "start", "hold", "resume", "complete", "fail", "cancel"]
Urgency = Literal["emergency", "high", "normal"]
ProcessingBasis = Literal["contract", "legal_obligation", "vital_interest", "public_task", "legitimate_interest"]
ConsentMethod = Literal["written", "verbal_witnessed", "thumbprint", "electronic"]
FollowUpAction = Literal["home_visit", "reintegration", "referral_made", "counselling", "other"]
AgencyKind = Literal[
    "migrant_protection", "police", "women_child_protection", "social_services", "task_force", "inspectorate",
    "health", "operator", "other",
]
ControlMethod = Literal[
    "debt_bondage", "takes_earnings", "threats", "psychological_abuse", "physical_abuse", "sexual_abuse",
    "false_promises", "psychoactive_substances", "restricts_movement", "restricts_medical_care",
    "excessive_working_hours", "threat_to_family", "withholds_documents", "withholds_necessities", "other",
]
ExploitationType = Literal[
    "forced_labour", "sexual_exploitation", "domestic_servitude", "forced_marriage", "forced_begging",
    "forced_criminality", "organ_removal", "other",
]
RecruiterRelationship = Literal[
    "intimate_partner", "friend", "family", "neighbour", "agency", "employer", "other", "unknown",
]


class Reply(_PydanticModel):
    """A model the server sends. Keeps the ``ETag`` of the reply it came in, if it had one."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    _etag: str | None = PrivateAttr(default=None)

    @property
    def etag(self) -> str | None:
        return self._etag


class Request(_PydanticModel):
    """A body the client sends."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


# --- errors -------------------------------------------------------------------------------


class FieldError(Reply):
    field: str
    message: str


class Problem(Reply):
    """RFC 9457 problem details."""

    type: str | None = None
    title: str | None = None
    status: int | None = None
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None


# --- tokens -------------------------------------------------------------------------------


class AccessToken(Reply):
    access_token: str
    token_type: str
    expires_in: int
    scope: str | None = None


# --- agencies -----------------------------------------------------------------------------


class AgencyCreate(Request):
    code: str
    name: str
    kind: AgencyKind | None = None
    jurisdiction: str


class Agency(Reply):
    code: str
    name: str
    kind: AgencyKind
    jurisdiction: str
    created_at: datetime


class ClientCreate(Request):
    scopes: list[str]
    name: str | None = None


class ClientCreated(Reply):
    client_id: str
    client_secret: str
    agency: str
    scopes: list[str]


# --- returnees ----------------------------------------------------------------------------


class ReturneeRecord(Request):
    """One returnee record in a batch, keyed by the sender's ``source_ref``."""

    source_ref: str
    full_name: str
    sex: Sex
    birth_date: date | None = None
    origin_district: str
    origin_subdistrict: str | None = None
    address: str | None = None
    returned_from_country: str | None = None
    returned_from_region: str | None = None
    return_type: ReturnType
    return_date: date
    entry_point: str | None = None
    employer: str | None = None
    sector: str | None = None
    documented: bool | None = None
    trafficking_status: TraffickingStatus | None = None
    control_methods: list[ControlMethod] | None = None
    exploitation_types: list[ExploitationType] | None = None
    recruiter_relationship: RecruiterRelationship | None = None
    nik: str | None = None
    passport_number: str | None = None
    phone: str | None = None


class ItemResult(Reply):
    index: int
    source_ref: str | None
    id: uuid.UUID | None
    status: Literal["created", "updated", "unchanged", "rejected"]
    errors: list[FieldError] = []
    warnings: list[str] = []


class BatchResult(Reply):
    results: list[ItemResult]
    notices: list[dict[str, Any]] = []

    @property
    def rejected(self) -> list[ItemResult]:
        return [r for r in self.results if r.status == "rejected"]


class Returnee(Reply):
    id: uuid.UUID
    person_id: uuid.UUID
    source_ref: str
    source_agency: str
    version: int
    full_name: str
    sex: Sex
    birth_date: date | None
    origin_district: str
    origin_subdistrict: str | None
    address: str | None
    returned_from_country: str
    returned_from_region: str | None
    return_type: ReturnType
    return_date: date
    entry_point: str | None
    employer: str | None
    sector: str | None
    documented: bool | None
    trafficking_status: TraffickingStatus
    control_methods: list[ControlMethod]
    exploitation_types: list[ExploitationType]
    recruiter_relationship: RecruiterRelationship | None
    nik: str | None
    passport_number: str | None
    phone: str | None
    nik_on_file: bool
    passport_on_file: bool
    phone_on_file: bool
    pii_masked: bool
    created_at: datetime
    updated_at: datetime


# --- notices ------------------------------------------------------------------------------


class NoticeCreate(Request):
    district: str
    returnee_ids: list[uuid.UUID]
    summary: str | None = None
    arrival_date: date | None = None
    entry_point: str | None = None


class FollowUpCreate(Request):
    action: FollowUpAction
    occurred_on: date
    note: str | None = None


class FollowUp(Reply):
    id: uuid.UUID
    notice_id: uuid.UUID
    action: FollowUpAction
    note: str | None
    occurred_on: date
    recorded_by: str
    created_at: datetime


class NoticeReturnee(Reply):
    id: uuid.UUID
    name: str
    sex: Sex
    origin_subdistrict: str | None
    return_type: ReturnType
    return_date: date
    trafficking_status: TraffickingStatus


# ``waiting_for_agency``: addressed to a district of another province that has no agency in
# Sinergi yet; delivered (``delivered_at``) once one is registered there.
NoticeStatus = Literal["delivered", "waiting_for_agency"]


class NoticeSummary(Reply):
    id: uuid.UUID
    district: str
    issued_by: str
    summary: str | None
    arrival_date: date | None
    entry_point: str | None
    returnee_count: int
    created_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    status: NoticeStatus = "delivered"
    delivered_at: datetime | None = None


class Notice(NoticeSummary):
    returnee_ids: list[uuid.UUID]
    returnees: list[NoticeReturnee]
    follow_ups: list[FollowUp]


# --- referrals ----------------------------------------------------------------------------


class ConsentIn(Request):
    given: bool | None = None
    given_by: str | None = None
    given_at: datetime | None = None
    method: ConsentMethod | None = None
    guardian: str | None = None


class SubjectIn(Request):
    full_name: str
    sex: Sex | None = None
    birth_date: date | None = None
    is_child: bool | None = None
    district: str | None = None
    phone: str | None = None


class ReferralCreate(Request):
    to_agency: str
    reason: ReferralReason
    legal_basis: str
    urgency: Urgency | None = None
    returnee_id: uuid.UUID | None = None
    subject: SubjectIn | None = None
    sender_ref: str | None = None
    note: str | None = None
    consent: ConsentIn | None = None
    processing_basis: ProcessingBasis | None = None


class TransitionIn(Request):
    action: ReferralAction
    note: str | None = None


class Consent(Reply):
    given: bool
    given_by: str | None = None
    given_at: datetime | None = None
    method: str | None = None
    guardian: str | None = None


class Subject(Reply):
    full_name: str | None
    sex: str | None
    birth_date: date | None
    is_child: bool
    district: str | None
    phone: str | None
    phone_on_file: bool


class HistoryEntry(Reply):
    from_: str | None = Field(alias="from")
    to: str
    action: str
    by: str
    at: datetime
    note: str | None = None


class ReferralSummary(Reply):
    id: uuid.UUID
    sender_ref: str | None
    from_agency: str
    to_agency: str
    status: ReferralStatus
    returnee_id: uuid.UUID | None
    subject: Subject | None
    reason: ReferralReason
    legal_basis: str
    urgency: Urgency
    note: str | None
    consent: Consent
    consent_status: Literal["given", "not_given"]
    processing_basis: ProcessingBasis | None
    due_at: datetime
    overdue: bool
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    version: int

    @property
    def etag(self) -> str:
        """The strong ETag of the version read (the server's is the quoted version number)."""
        return self._etag or f'"{self.version}"'


class Referral(ReferralSummary):
    history: list[HistoryEntry]


class ReferredReturnee(Reply):
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


# --- statistics ---------------------------------------------------------------------------


class Stats(Reply):
    group_by: list[str]
    threshold: int
    rounding_base: int | None = None
    rows: list[dict[str, str | int | bool | None]]
    total: int | None = None


# --- audit --------------------------------------------------------------------------------


class AuditEvent(Reply):
    seq: int
    chain: str
    id: str
    occurred_at: datetime
    client_id: str | None
    agency: str | None
    action: str
    resource_type: str | None
    resource_id: str | None
    subjects: list[dict[str, str]]
    outcome: str
    request_id: str | None
    detail: dict[str, Any]
    hash: str
    prev_hash: str


class AuditHead(Reply):
    seq: int
    hash: str


class AuditVerification(Reply):
    ok: bool
    chain: str
    checked: int
    head: AuditHead
    first_bad_seq: int | None
    reason: str | None = None
    checkpoint: AuditHead | None = None


class Checkpoint(Reply):
    chain: str
    seq: int
    hash: str
    checkpoint: str


# --- events -------------------------------------------------------------------------------


class Event(Reply):
    id: str
    type: str
    occurred_at: datetime
    data: dict[str, Any]


class EventPage(Reply):
    items: list[Event]
    next_cursor: str


# --- webhooks -----------------------------------------------------------------------------


WebhookEventType = Literal[
    "returnee.created", "returnee.updated", "notice.created", "notice.acknowledged", "notice.follow_up_recorded",
    "referral.requested", "referral.status_changed", "notice.delivered", "manifest.created", "manifest.announced",
    "manifest.person_arrived", "manifest.person_not_arrived", "manifest.person_located", "manifest.person_not_located",
    "departure.created", "departure.updated", "register.repeat_return", "alert.raised", "alert.updated",
]
WEBHOOK_EVENT_TYPES: tuple[WebhookEventType, ...] = (
    "returnee.created", "returnee.updated", "notice.created", "notice.acknowledged", "notice.follow_up_recorded",
    "referral.requested", "referral.status_changed", "notice.delivered", "manifest.created", "manifest.announced",
    "manifest.person_arrived", "manifest.person_not_arrived", "manifest.person_located", "manifest.person_not_located",
    "departure.created", "departure.updated", "register.repeat_return", "alert.raised", "alert.updated",
)


class WebhookCreate(Request):
    url: str
    event_types: list[WebhookEventType]
    description: str | None = None


class Webhook(Reply):
    id: uuid.UUID
    agency: str
    url: str
    event_types: list[str]
    description: str
    status: Literal["active", "disabled"]
    disabled_reason: str | None
    disabled_at: datetime | None
    created_at: datetime
    updated_at: datetime


class WebhookCreated(Webhook):
    secret: str


class DeliveryAttempt(Reply):
    attempt: int
    started_at: datetime
    status_code: int | None
    latency_ms: int | None
    error: str | None
    next_attempt_at: datetime | None


class WebhookDelivery(Reply):
    id: str  # the webhook-id header of every attempt
    event_id: uuid.UUID
    event_type: str
    status: Literal["pending", "succeeded", "failed"]
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    log: list[DeliveryAttempt]


# --- regions ------------------------------------------------------------------------------


RegionLevel = Literal["province", "district", "subdistrict", "village"]


class Region(Reply):
    """A code of the region reference with its name: ``61.07`` is Kabupaten Bengkayang."""

    code: str
    name: str
    level: RegionLevel
    parent: str | None  # the code one level up; None for a province


class RegionDetail(Region):
    path: list[Region]  # the regions above it, province first
    children: int  # how many regions one level down the reference holds
    complete_below: bool  # every kecamatan and desa below it is in the reference (Kalimantan Barat)


# --- arrival manifests --------------------------------------------------------------------


EntryPoint = Literal["plbn_entikong", "plbn_aruk", "plbn_badau", "plbn_jagoi_babang", "plbn_sei_kelik"]
ManifestPersonStatus = Literal["expected", "arrived", "not_arrived", "located", "not_located"]
# The district's week: expected Monday to Sunday of this week (WIB); arrived in the last 7 days
# and not located yet; arrived 7 days ago or more and still not located.
ManifestView = Literal["expected_this_week", "arrived_not_located", "not_located_after_7_days"]


class ManifestPersonIn(Request):
    """One person as the consulate's letter lists them, identity as far as known;
    ``origin_district`` may be left out when the NIK says it."""

    full_name: str
    sex: Sex
    birth_date: date | None = None
    nik: str | None = None
    passport_number: str | None = None
    origin_district: str | None = None
    origin_subdistrict: str | None = None


class ManifestCreate(Request):
    letter_ref: str
    letter_date: date
    expected_date: date
    entry_point: EntryPoint
    note: str | None = None
    persons: list[ManifestPersonIn]


class ArrivalMark(Request):
    person_id: uuid.UUID
    status: Literal["arrived", "not_arrived"]


class ArrivalsIn(Request):
    arrived_on: date
    persons: list[ArrivalMark]


class OutcomeIn(Request):
    outcome: Literal["located", "not_located"]
    village: str | None = None
    seen_by: str | None = None
    seen_on: date
    note: str | None = None


class ManifestPerson(Reply):
    """A person of a manifest. NIK and passport only with ``pii:read`` (``*_on_file`` says
    whether one is held)."""

    id: uuid.UUID
    manifest_id: uuid.UUID
    position: int
    letter_ref: str
    expected_date: date
    entry_point: EntryPoint
    full_name: str
    sex: Sex
    birth_date: date | None
    nik: str | None
    passport_number: str | None
    nik_on_file: bool
    passport_on_file: bool
    pii_masked: bool
    origin_district: str | None
    origin_district_name: str | None
    origin_subdistrict: str | None
    status: ManifestPersonStatus
    arrived_on: date | None
    returnee_id: uuid.UUID | None
    notice_id: uuid.UUID | None
    located_village: str | None
    located_village_name: str | None
    seen_by: str | None
    seen_on: date | None
    outcome_note: str | None
    outcome_by: str | None
    outcome_at: datetime | None
    version: int
    updated_at: datetime

    @property
    def etag(self) -> str:
        """The strong ETag of the version read (the quoted version number): the outcome's ``If-Match``."""
        return self._etag or f'"{self.version}"'


class ManifestSummary(Reply):
    id: uuid.UUID
    created_by: str
    letter_ref: str
    letter_date: date
    expected_date: date
    entry_point: EntryPoint
    entry_point_name: str
    note: str | None
    person_count: int  # how many people the letter lists (all of them)
    version: int
    created_at: datetime
    updated_at: datetime

    @property
    def etag(self) -> str:
        """The strong ETag of the version read: the arrivals' ``If-Match``."""
        return self._etag or f'"{self.version}"'


class Manifest(ManifestSummary):
    persons: list[ManifestPerson]  # those the caller may see: all for the issuer and the province
    counts: dict[str, int]  # the people shown, by status


# --- the register of migrant workers ------------------------------------------------------


RegisterStatus = Literal["abroad", "returned", "deported"]


class DepartureRecord(Request):
    """One departure in a batch, keyed by the sender's ``source_ref``; ``procedural``: placed
    through the procedure of UU 18/2017 or not."""

    source_ref: str
    full_name: str
    sex: Sex
    birth_date: date | None = None
    nik: str | None = None
    origin_district: str
    origin_subdistrict: str | None = None
    origin_village: str | None = None
    destination_country: str
    destination_region: str | None = None
    employer: str | None = None
    sector: str | None = None
    departure_date: date
    procedural: bool


class DepartureResult(Reply):
    index: int
    source_ref: str | None
    id: uuid.UUID | None
    person_id: uuid.UUID | None
    status: Literal["created", "updated", "unchanged", "rejected"]
    errors: list[FieldError] = []


class DepartureBatchResult(Reply):
    results: list[DepartureResult]

    @property
    def rejected(self) -> list[DepartureResult]:
        return [r for r in self.results if r.status == "rejected"]


class RegisterPerson(Reply):
    """A person of the register, summed from their departures and returns. The NIK only with
    ``pii:read``."""

    person_id: uuid.UUID
    full_name: str
    sex: Sex
    birth_date: date | None
    nik: str | None
    nik_on_file: bool
    pii_masked: bool
    origin_district: str
    origin_subdistrict: str | None
    origin_village: str | None
    status: RegisterStatus
    departures: int
    procedural_departures: int
    returns: int
    deportations: int
    last_departure: date | None
    last_return: date | None
    last_return_type: ReturnType | None
    repeat_return: bool  # returned a second time or more
    updated_at: datetime


class RegisterDeparture(Reply):
    id: uuid.UUID
    source_agency: str
    source_ref: str
    departure_date: date
    procedural: bool
    destination_country: str
    destination_region: str | None
    employer: str | None
    sector: str | None
    origin_village: str | None


class RegisterReturn(Reply):
    id: uuid.UUID
    source_agency: str
    return_date: date
    return_type: ReturnType
    returned_from_country: str
    entry_point: str | None


class RegisterPersonDetail(RegisterPerson):
    departure_records: list[RegisterDeparture]
    return_records: list[RegisterReturn]


class RegisterCounts(Reply):
    """Persons by sub-district or village; every figure rounded to ``rounding_base`` and the
    small ones suppressed (``None``), as the statistics are."""

    by: Literal["subdistrict", "village"]
    district: str
    threshold: int
    rounding_base: int
    rows: list[dict[str, str | int | bool | None]]
    total: int | None


# --- recruitment reports and alerts -------------------------------------------------------


RecruitmentModus = Literal[
    "fake_job_offer_social_media", "visa_free_border_entry", "debt_bondage", "marriage_offer", "other",
]
IdentifierKind = Literal["phone", "social_media", "vehicle_plate"]


class RecruiterIdentifier(Request):
    """A recruiter's phone number, social-media handle or vehicle plate (stored only encrypted)."""

    kind: IdentifierKind
    value: str


class NamedByIn(Request):
    """A returnee who named the recruiter, and the recruiter's relation to them."""

    returnee_id: uuid.UUID
    relationship: RecruiterRelationship = "unknown"


class RecruitmentReportCreate(Request):
    modus: RecruitmentModus
    region: str
    route: list[str] = Field(default_factory=list)  # region codes of the route, in order
    places: list[str] = Field(default_factory=list)  # region codes of other places named
    place_note: str | None = None  # places in words (never published)
    destination_country: str | None = None
    observed_on: date | None = None
    identifiers: list[RecruiterIdentifier] = Field(default_factory=list)
    named_by: list[NamedByIn] = Field(default_factory=list)


class NamedBy(Reply):
    returnee_id: uuid.UUID
    relationship: RecruiterRelationship


class RecruitmentReport(Reply):
    """A report as its writer gets it back: the identifiers' kinds, never their values."""

    id: uuid.UUID
    reporting_agency: str
    modus: RecruitmentModus
    region: str
    route: list[str]
    places: list[str]
    place_note: str | None
    destination_country: str | None
    observed_on: date | None
    identifier_kinds: list[IdentifierKind]
    named_by: list[NamedBy]
    created_at: datetime


class Alert(Reply):
    """An identifier reported by enough independent agencies. Its value only with ``pii:read``."""

    id: uuid.UUID
    kind: IdentifierKind
    value: str | None
    value_on_file: bool
    sources: int  # distinct agencies that reported it
    reporting_agencies: list[str]
    modus: list[RecruitmentModus]
    regions: list[str]
    reports: int
    named_by: list[uuid.UUID]  # returnees who named the recruiter, of those the caller may read
    raised_at: datetime
    updated_at: datetime


class Place(Reply):
    code: str
    name: str | None


class PublicWarning(Reply):
    """A recruitment modus seen at a place, for the public: no person, no identifier, no free text."""

    modus: RecruitmentModus
    description: str  # the modus in words for the public (Bahasa Indonesia)
    region: Place
    route: list[Place]
    destination_countries: list[str]
    first_reported: str  # month, YYYY-MM
    last_reported: str
