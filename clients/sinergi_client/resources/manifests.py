"""``/v1/manifests``: announced deportations, from the consulate's letter to each person located.

BP3MI registers the letter before the people arrive (``create``), marks at the border who came
(``mark_arrivals``, with the manifest's ETag); the home district reads its week (``week``) and
follows each arrived person home (``locate`` / ``not_located``, with the person's ETag). Pass
the manifest or person as read: its ETag is sent as ``If-Match``; a ``PreconditionFailedError``
(412) means it changed since, read it again. A bare id carries no ETag (pass ``etag=``), and
the server answers ``PreconditionRequiredError`` (428) without one.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import date
from functools import cached_property
from typing import Any, Literal, Unpack

from sinergi_client._base_client import AsyncPager, RequestOptions, SyncPage
from sinergi_client._resource import (
    AsyncResource,
    SyncResource,
    async_to_raw_response_wrapper,
    to_raw_response_wrapper,
)
from sinergi_client.models import (
    ArrivalMark,
    ArrivalsIn,
    EntryPoint,
    Manifest,
    ManifestCreate,
    ManifestPerson,
    ManifestPersonIn,
    ManifestSummary,
    ManifestView,
    OutcomeIn,
)

ManifestRef = Manifest | ManifestSummary | str | uuid.UUID
PersonRef = ManifestPerson | str | uuid.UUID
PersonIn = ManifestPersonIn | Mapping[str, Any]
Outcome = Literal["located", "not_located"]


def _id(manifest: ManifestRef) -> str:
    return str(manifest.id) if isinstance(manifest, ManifestSummary) else str(manifest)


def _person_id(person: PersonRef) -> uuid.UUID:
    return person.id if isinstance(person, ManifestPerson) else uuid.UUID(str(person))


def _person_path(person: PersonRef, manifest: ManifestRef | None) -> str:
    if isinstance(person, ManifestPerson):
        return f"/v1/manifests/{person.manifest_id}/persons/{person.id}"
    if manifest is None:
        raise TypeError("manifest= is needed with a person's bare id (a ManifestPerson knows its manifest)")
    return f"/v1/manifests/{_id(manifest)}/persons/{person}"


def _if_match(obj: object, etag: str | None) -> dict[str, str]:
    tag = etag or (obj.etag if isinstance(obj, ManifestSummary | ManifestPerson) else None)
    return {"If-Match": tag} if tag else {}


def _create_body(letter_ref: str, letter_date: date, expected_date: date, entry_point: EntryPoint,
                 persons: Sequence[PersonIn], note: str | None) -> dict[str, Any]:
    people = [p if isinstance(p, ManifestPersonIn) else ManifestPersonIn.model_validate(p) for p in persons]
    body = ManifestCreate(letter_ref=letter_ref, letter_date=letter_date, expected_date=expected_date,
                          entry_point=entry_point, persons=people)
    if note is not None:
        body.note = note
    return body.body()


def _arrivals(manifest: ManifestRef, arrived_on: date, arrived: Sequence[PersonRef], not_arrived: Sequence[PersonRef],
              etag: str | None) -> tuple[str, dict[str, Any], dict[str, str]]:
    marks = [*(ArrivalMark(person_id=_person_id(p), status="arrived") for p in arrived),
             *(ArrivalMark(person_id=_person_id(p), status="not_arrived") for p in not_arrived)]
    body = ArrivalsIn(arrived_on=arrived_on, persons=marks).body()
    return f"/v1/manifests/{_id(manifest)}/arrivals", body, _if_match(manifest, etag)


def _outcome(person: PersonRef, manifest: ManifestRef | None, outcome: Outcome, seen_on: date,
             village: str | None, seen_by: str | None, note: str | None,
             etag: str | None) -> tuple[str, dict[str, Any], dict[str, str]]:
    given = {k: v for k, v in (("village", village), ("seen_by", seen_by), ("note", note)) if v is not None}
    body = OutcomeIn.model_validate({"outcome": outcome, "seen_on": seen_on, **given}).body()
    return _person_path(person, manifest) + "/outcome", body, _if_match(person, etag)


def _week_params(view: ManifestView, district: str | None, limit: int | None, cursor: str | None) -> dict[str, Any]:
    return {"view": view, "district": district, "limit": limit, "cursor": cursor}


class Manifests(SyncResource):
    @cached_property
    def with_raw_response(self) -> ManifestsWithRawResponse:
        """The same calls, each returning an :class:`APIResponse` (headers, status, ``parse()``)."""
        return ManifestsWithRawResponse(self)

    def create(self, *, letter_ref: str, letter_date: date, expected_date: date, entry_point: EntryPoint,
               persons: Sequence[PersonIn], note: str | None = None, **options: Unpack[RequestOptions]) -> Manifest:
        """Register an announced deportation: the letter's reference (unique per agency) and date,
        the expected day, the border post and the people listed. A second letter with the same
        reference is a ``ConflictError``; a re-run under the same ``idempotency_key`` a replay."""
        body = _create_body(letter_ref, letter_date, expected_date, entry_point, persons, note)
        return self._client.post("/v1/manifests", Manifest, body=body, options=options)

    def list(self, *, limit: int | None = None, cursor: str | None = None,
             **options: Unpack[RequestOptions]) -> SyncPage[ManifestSummary]:
        """The manifests the caller may see, newest first."""
        return self._client.page("/v1/manifests", ManifestSummary, params={"limit": limit, "cursor": cursor},
                                 options=options)

    def get(self, manifest: ManifestRef, **options: Unpack[RequestOptions]) -> Manifest:
        """One manifest with the people the caller may see (a district: its own people)."""
        return self._client.get(f"/v1/manifests/{_id(manifest)}", Manifest, options=options)

    def week(self, view: ManifestView, *, district: str | None = None, limit: int | None = None,
             cursor: str | None = None, **options: Unpack[RequestOptions]) -> SyncPage[ManifestPerson]:
        """A list that drives the district's week, of the people the caller may see:
        ``expected_this_week``, ``arrived_not_located``, ``not_located_after_7_days``."""
        return self._client.page("/v1/manifests/persons", ManifestPerson,
                                 params=_week_params(view, district, limit, cursor), options=options)

    def person(self, person: PersonRef, *, manifest: ManifestRef | None = None,
               **options: Unpack[RequestOptions]) -> ManifestPerson:
        """One person of a manifest, with the ETag to record the outcome with."""
        return self._client.get(_person_path(person, manifest), ManifestPerson, options=options)

    def mark_arrivals(self, manifest: ManifestRef, *, arrived_on: date, arrived: Sequence[PersonRef] = (),
                      not_arrived: Sequence[PersonRef] = (), etag: str | None = None,
                      **options: Unpack[RequestOptions]) -> Manifest:
        """At the border post: who of the manifest came through on ``arrived_on`` and who did not.
        Each arrived person of known origin becomes a returnee on its district's notice."""
        path, body, headers = _arrivals(manifest, arrived_on, arrived, not_arrived, etag)
        return self._client.post(path, Manifest, body=body, headers=headers, options=options)

    def record_outcome(self, person: PersonRef, *, outcome: Outcome, seen_on: date, village: str | None = None,
                       seen_by: str | None = None, note: str | None = None, manifest: ManifestRef | None = None,
                       etag: str | None = None, **options: Unpack[RequestOptions]) -> ManifestPerson:
        """The home district followed an arrived person home (``If-Match``: the person's ETag)."""
        path, body, headers = _outcome(person, manifest, outcome, seen_on, village, seen_by, note, etag)
        return self._client.post(path, ManifestPerson, body=body, headers=headers, options=options)

    def locate(self, person: PersonRef, *, seen_by: str, seen_on: date, village: str | None = None,
               note: str | None = None, manifest: ManifestRef | None = None, etag: str | None = None,
               **options: Unpack[RequestOptions]) -> ManifestPerson:
        """Seen at home: who saw them, when, and the desa (required in Kalimantan Barat)."""
        return self.record_outcome(person, outcome="located", seen_on=seen_on, village=village, seen_by=seen_by,
                                   note=note, manifest=manifest, etag=etag, **options)

    def not_located(self, person: PersonRef, *, seen_on: date, note: str | None = None,
                    manifest: ManifestRef | None = None, etag: str | None = None,
                    **options: Unpack[RequestOptions]) -> ManifestPerson:
        """Looked for and not found (may later be located)."""
        return self.record_outcome(person, outcome="not_located", seen_on=seen_on, note=note, manifest=manifest,
                                   etag=etag, **options)


class AsyncManifests(AsyncResource):
    @cached_property
    def with_raw_response(self) -> AsyncManifestsWithRawResponse:
        """The same calls, each returning an :class:`APIResponse` (headers, status, ``parse()``)."""
        return AsyncManifestsWithRawResponse(self)

    async def create(self, *, letter_ref: str, letter_date: date, expected_date: date, entry_point: EntryPoint,
                     persons: Sequence[PersonIn], note: str | None = None,
                     **options: Unpack[RequestOptions]) -> Manifest:
        body = _create_body(letter_ref, letter_date, expected_date, entry_point, persons, note)
        return await self._client.post("/v1/manifests", Manifest, body=body, options=options)

    def list(self, *, limit: int | None = None, cursor: str | None = None,
             **options: Unpack[RequestOptions]) -> AsyncPager[ManifestSummary]:
        return self._client.page("/v1/manifests", ManifestSummary, params={"limit": limit, "cursor": cursor},
                                 options=options)

    async def get(self, manifest: ManifestRef, **options: Unpack[RequestOptions]) -> Manifest:
        return await self._client.get(f"/v1/manifests/{_id(manifest)}", Manifest, options=options)

    def week(self, view: ManifestView, *, district: str | None = None, limit: int | None = None,
             cursor: str | None = None, **options: Unpack[RequestOptions]) -> AsyncPager[ManifestPerson]:
        return self._client.page("/v1/manifests/persons", ManifestPerson,
                                 params=_week_params(view, district, limit, cursor), options=options)

    async def person(self, person: PersonRef, *, manifest: ManifestRef | None = None,
                     **options: Unpack[RequestOptions]) -> ManifestPerson:
        return await self._client.get(_person_path(person, manifest), ManifestPerson, options=options)

    async def mark_arrivals(self, manifest: ManifestRef, *, arrived_on: date, arrived: Sequence[PersonRef] = (),
                            not_arrived: Sequence[PersonRef] = (), etag: str | None = None,
                            **options: Unpack[RequestOptions]) -> Manifest:
        path, body, headers = _arrivals(manifest, arrived_on, arrived, not_arrived, etag)
        return await self._client.post(path, Manifest, body=body, headers=headers, options=options)

    async def record_outcome(self, person: PersonRef, *, outcome: Outcome, seen_on: date,
                             village: str | None = None, seen_by: str | None = None, note: str | None = None,
                             manifest: ManifestRef | None = None, etag: str | None = None,
                             **options: Unpack[RequestOptions]) -> ManifestPerson:
        path, body, headers = _outcome(person, manifest, outcome, seen_on, village, seen_by, note, etag)
        return await self._client.post(path, ManifestPerson, body=body, headers=headers, options=options)

    async def locate(self, person: PersonRef, *, seen_by: str, seen_on: date, village: str | None = None,
                     note: str | None = None, manifest: ManifestRef | None = None, etag: str | None = None,
                     **options: Unpack[RequestOptions]) -> ManifestPerson:
        return await self.record_outcome(person, outcome="located", seen_on=seen_on, village=village,
                                         seen_by=seen_by, note=note, manifest=manifest, etag=etag, **options)

    async def not_located(self, person: PersonRef, *, seen_on: date, note: str | None = None,
                          manifest: ManifestRef | None = None, etag: str | None = None,
                          **options: Unpack[RequestOptions]) -> ManifestPerson:
        return await self.record_outcome(person, outcome="not_located", seen_on=seen_on, note=note,
                                         manifest=manifest, etag=etag, **options)


class ManifestsWithRawResponse:
    def __init__(self, resource: Manifests) -> None:
        self.create = to_raw_response_wrapper(resource.create)
        self.list = to_raw_response_wrapper(resource.list)
        self.get = to_raw_response_wrapper(resource.get)
        self.week = to_raw_response_wrapper(resource.week)
        self.person = to_raw_response_wrapper(resource.person)
        self.mark_arrivals = to_raw_response_wrapper(resource.mark_arrivals)
        self.record_outcome = to_raw_response_wrapper(resource.record_outcome)
        self.locate = to_raw_response_wrapper(resource.locate)
        self.not_located = to_raw_response_wrapper(resource.not_located)


class AsyncManifestsWithRawResponse:
    def __init__(self, resource: AsyncManifests) -> None:
        self.create = async_to_raw_response_wrapper(resource.create)
        self.list = async_to_raw_response_wrapper(resource.list)
        self.get = async_to_raw_response_wrapper(resource.get)
        self.week = async_to_raw_response_wrapper(resource.week)
        self.person = async_to_raw_response_wrapper(resource.person)
        self.mark_arrivals = async_to_raw_response_wrapper(resource.mark_arrivals)
        self.record_outcome = async_to_raw_response_wrapper(resource.record_outcome)
        self.locate = async_to_raw_response_wrapper(resource.locate)
        self.not_located = async_to_raw_response_wrapper(resource.not_located)
