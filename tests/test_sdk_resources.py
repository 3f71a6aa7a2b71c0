"""The partner client's newer namespaces against a real uvicorn server with the demo data: the
region reference, arrival manifests from letter to located, the register's departures and
persons, recruitment reports and the alerts they raise, the public warning list without a
token; sync and async."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone

import httpx
import pytest

from sinergi_client import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
    PreconditionRequiredError,
    Sinergi,
    UnprocessableEntityError,
)
from sinergi_client.models import DepartureRecord, ManifestPersonIn, RecruiterIdentifier
from tests.live import Live, live_world

BP3MI, POLRES, GUGUS = "BP3MI-KALBAR", "POLRES-BENGKAYANG", "GUGUS-TPPO-BENGKAYANG"
DP3A_BKY, DP3A_SAMBAS, DP3A_PROVINCE = "DP3A-BENGKAYANG", "DP3A-SAMBAS", "DP3A-KALBAR"
WIB = timezone(timedelta(hours=7))


@pytest.fixture(scope="module")
def live(module_demo) -> Iterator[Live]:
    with live_world(module_demo) as world:
        yield world


def today() -> date:
    """The day in Kalimantan Barat: the district's week is counted in West Indonesia Time."""
    return datetime.now(WIB).date()


def tag() -> str:
    return uuid.uuid4().hex[:8].upper()


def departure(ref: str, **extra: object) -> dict[str, object]:
    return {"source_ref": ref, "full_name": "Yakobus Ading", "sex": "M", "origin_district": "61.07",
            "origin_subdistrict": "61.07.07", "origin_village": "61.07.07.2001", "destination_country": "MY",
            "destination_region": "Sarawak", "departure_date": "2025-08-01", "procedural": False, **extra}


def test_region_names_beside_their_codes(live):
    with live.client(DP3A_SAMBAS) as c:  # any valid token reads the reference
        bengkayang = c.regions.get("61.07")
        assert bengkayang.name == "Kabupaten Bengkayang" and bengkayang.level == "district"
        assert [(r.code, r.name) for r in bengkayang.path] == [("61", "Kalimantan Barat")]
        assert bengkayang.parent == "61" and bengkayang.complete_below and bengkayang.children == 17
        assert c.regions.get("35.78").complete_below is False

        kecamatan = c.regions.list(parent="61.07")
        assert len(kecamatan.items) == 17 and not kecamatan.has_next_page()
        assert ("61.07.07", "Jagoi Babang", "subdistrict") in {(r.code, r.name, r.level) for r in kecamatan.items}
        provinces = c.regions.list()
        assert len(provinces.items) == 38 and all(r.level == "province" and r.parent is None for r in provinces.items)
        assert [r.code for r in c.regions.list(q="surabaya")] == ["35.78"]

        # every desa of Jagoi Babang, three at a time: each once, in code order, as one page has them
        walked = [r.code for r in c.regions.list(parent="61.07.07", limit=3)]
        whole = c.regions.list(parent="61.07.07", limit=500)
        assert walked == [r.code for r in whole.items] and len(walked) > 3 and walked == sorted(walked)
        assert all(r.level == "village" and r.parent == "61.07.07" for r in whole.items)

        with pytest.raises(NotFoundError):
            c.regions.get("99.99")
        with pytest.raises(NotFoundError):
            c.regions.list(parent="99")
    with Sinergi(live.url) as anonymous, pytest.raises(AuthenticationError):  # but a token it needs
        anonymous.regions.get("61.07")


def test_a_manifest_from_the_letter_to_a_person_located(live):
    day = today()
    letter = f"KJRI-KCH/SDK/{tag()}"
    persons = [
        {"full_name": "Yosef Apui", "sex": "M", "origin_district": "61.07", "origin_subdistrict": "61.07.07"},
        ManifestPersonIn(full_name="Markus Sidi", sex="M", origin_district="61.07"),
        {"full_name": "Siti Rahmah", "sex": "F", "origin_district": "61.01"},
    ]
    letter_args = {"letter_ref": letter, "letter_date": day, "expected_date": day, "entry_point": "plbn_jagoi_babang",
                   "persons": persons, "note": "Deportasi dari Serikin"}
    with live.client(BP3MI) as bp3mi, live.client(DP3A_BKY) as bky, live.client(DP3A_SAMBAS) as sambas:
        with pytest.raises(UnprocessableEntityError) as refused:  # changes nothing: the letter is still free
            bp3mi.manifests.create(**{**letter_args, "expected_date": day - timedelta(days=1)})
        assert refused.value.status_code == 422 and refused.value.errors
        key = f"letter-{letter}"
        created = bp3mi.manifests.with_raw_response.create(**letter_args, idempotency_key=key)
        manifest = created.parse()
        assert created.status_code == 201 and created.etag == manifest.etag == f'"{manifest.version}"'
        assert manifest.entry_point_name == "PLBN Jagoi Babang" and manifest.person_count == 3
        assert manifest.counts == {"expected": 3} and manifest.note == "Deportasi dari Serikin"
        again = bp3mi.manifests.with_raw_response.create(**letter_args, idempotency_key=key)
        assert again.idempotent_replayed and again.parse().id == manifest.id
        with pytest.raises(ConflictError):  # the same letter registered twice
            bp3mi.manifests.create(**letter_args)
        assert manifest.id in {m.id for m in bp3mi.manifests.list(limit=2)}  # every page

        # the district sees its own people, masked; Sambas sees its one, not Bengkayang's
        mine = bky.manifests.get(manifest)
        assert sorted(p.full_name for p in mine.persons) == ["Markus Sidi", "Yosef Apui"]
        assert all(p.pii_masked and p.nik is None for p in mine.persons)
        expected = [p.full_name for p in bky.manifests.week("expected_this_week", limit=2)
                    if p.manifest_id == manifest.id]
        assert sorted(expected) == ["Markus Sidi", "Yosef Apui"]
        assert [p.full_name for p in sambas.manifests.get(manifest.id).persons] == ["Siti Rahmah"]
        people = {p.full_name: p for p in manifest.persons}
        with pytest.raises(NotFoundError) as hidden:  # another district's person: as if it did not exist
            sambas.manifests.person(people["Yosef Apui"].id, manifest=manifest.id)
        assert hidden.value.status_code == 404 and hidden.value.type.endswith("/problems/not-found")

        # at the border, with the manifest's ETag
        marks = {"arrived_on": day, "arrived": [people["Yosef Apui"], str(people["Siti Rahmah"].id)],
                 "not_arrived": [people["Markus Sidi"].id]}
        with pytest.raises(PreconditionRequiredError):  # a bare id carries no ETag
            bp3mi.manifests.mark_arrivals(str(manifest.id), **marks)
        arrived = bp3mi.manifests.mark_arrivals(manifest, **marks)
        assert arrived.counts == {"arrived": 2, "not_arrived": 1} and arrived.etag != manifest.etag
        with pytest.raises(PreconditionFailedError):  # decided on the version before the arrivals
            bp3mi.manifests.mark_arrivals(manifest, **marks)

        # home: the district's list, then the person located with the person's ETag
        waiting = [p for p in bky.manifests.week("arrived_not_located", district="61.07")
                   if p.manifest_id == manifest.id]
        assert [p.full_name for p in waiting] == ["Yosef Apui"] and waiting[0].arrived_on == day
        yosef = waiting[0]
        assert yosef.returnee_id and yosef.notice_id
        assert bky.notices.get(yosef.notice_id).district == "61.07"
        with pytest.raises(UnprocessableEntityError) as elsewhere:  # a desa of Sambas
            bky.manifests.locate(yosef, village="61.01.01.2001", seen_by="Kepala Desa Jagoi", seen_on=day)
        assert [e.field for e in elsewhere.value.errors] == ["village"]
        located = bky.manifests.locate(yosef, village="61.07.07.2001", seen_by="Kepala Desa Jagoi", seen_on=day,
                                       note="Sudah di rumah")
        assert located.status == "located" and located.located_village == "61.07.07.2001"
        assert located.located_village_name and located.seen_by == "Kepala Desa Jagoi"
        assert located.outcome_by == DP3A_BKY and located.version > yosef.version
        with pytest.raises(PreconditionFailedError):  # the version read before the outcome
            bky.manifests.not_located(yosef, seen_on=day)
        raw = bky.manifests.with_raw_response.person(located)
        assert raw.etag == located.etag and raw.parse().status == "located"
        assert not [p for p in bky.manifests.week("arrived_not_located") if p.manifest_id == manifest.id]
        with pytest.raises(TypeError):  # a bare person id needs its manifest
            bky.manifests.person(str(yosef.id))


def test_departures_pushed_and_the_districts_persons(live):
    t = tag()
    with live.client(DP3A_BKY) as bky, live.client(DP3A_SAMBAS) as sambas, live.client(GUGUS) as gugus:
        records = [
            DepartureRecord.model_validate(departure(f"BKY-DESA-{t}-1")),
            departure(f"BKY-DESA-{t}-2", origin_district="61.01", origin_subdistrict=None, origin_village=None),
            departure(f"BKY-DESA-{t}-3", sex="X"),
        ]
        key = f"desa-{t}.csv:1"
        first = bky.register.with_raw_response.push_departures(records, idempotency_key=key)
        result = first.parse()
        assert [r.status for r in result.results] == ["created", "rejected", "rejected"]
        assert [(r.index, r.errors[0].field) for r in result.rejected] == [(1, "origin_district"), (2, "sex")]
        again = bky.register.with_raw_response.push_departures(records, idempotency_key=key)
        assert again.idempotent_replayed and not first.idempotent_replayed
        assert again.parse().results == result.results
        person_id = result.results[0].person_id
        assert person_id is not None

        unchanged = bky.register.push_departures(records[:1])
        assert [(r.status, r.person_id) for r in unchanged.results] == [("unchanged", person_id)]

        listed = list(bky.register.persons(region="61.07.07.2001", status="abroad", limit=20))
        assert all(p.origin_village == "61.07.07.2001" and p.status == "abroad" for p in listed)
        mine = next(p for p in listed if p.person_id == person_id)
        assert mine.full_name == "Yakobus Ading" and mine.departures == 1 and mine.procedural_departures == 0
        assert mine.returns == 0 and not mine.repeat_return and mine.last_departure == date(2025, 8, 1)
        assert mine.nik is None and not mine.nik_on_file
        detail = bky.register.person(mine)
        assert [(d.source_ref, d.destination_region) for d in detail.departure_records] == [
            (f"BKY-DESA-{t}-1", "Sarawak")]
        assert detail.return_records == [] and detail.person_id == person_id

        with pytest.raises(NotFoundError):  # a person of Bengkayang, read by Sambas
            sambas.register.person(person_id)
        assert person_id not in {p.person_id for p in sambas.register.persons(limit=500)}

        counts = gugus.register.counts(district="61.07", by="subdistrict")
        assert counts.by == "subdistrict" and counts.district == "61.07" and counts.rounding_base > 0
        coded = [r for r in counts.rows if r["subdistrict"] is not None]  # (people of no known kecamatan: None)
        assert coded and all(str(r["subdistrict"]).startswith("61.07.") and r["name"] for r in coded)
        for row in counts.rows:
            persons = row["persons"]
            assert (persons is None) == bool(row["suppressed"])
            assert persons is None or (isinstance(persons, int) and persons % counts.rounding_base == 0)


def test_an_identifier_reported_by_two_agencies_alerts_the_police(live):
    digits = f"{uuid.uuid4().int % 10**8:08d}"
    phone, as_written_by_the_district = f"+62 857 {digits[:4]} {digits[4:]}", f"0857-{digits[:4]}-{digits[4:]}"
    with live.client(BP3MI) as bp3mi, live.client(DP3A_BKY) as bky, live.client(POLRES) as polres:
        before = {a.id for a in polres.alerts.list(limit=500)}
        first = bp3mi.alerts.report(modus="marriage_offer", region="61.07.09", route=["61.07.09"],
                                    destination_country="MY", identifiers=[{"kind": "phone", "value": phone}],
                                    idempotency_key=f"report-{digits}")
        assert first.reporting_agency == BP3MI and first.identifier_kinds == ["phone"]
        assert digits[4:] not in first.model_dump_json()  # the identifier's value never comes back
        assert {a.id for a in polres.alerts.list(limit=500)} == before  # one source: no alert yet

        pushed = bp3mi.returnees.push([{"source_ref": f"ALERT-{digits}", "full_name": "Veronika Inang", "sex": "F",
                                        "origin_district": "61.07", "origin_subdistrict": "61.07.09",
                                        "return_type": "deported", "return_date": str(today())}])
        returnee = bky.returnees.get(pushed.results[0].id)  # in the district's view: it may name her
        second = bky.alerts.report(modus="marriage_offer", region="61.07.09",
                                   identifiers=[RecruiterIdentifier(kind="phone", value=as_written_by_the_district)],
                                   named_by=[str(returnee.id)])
        assert [(n.returnee_id, n.relationship) for n in second.named_by] == [(returnee.id, "unknown")]

        new = [a for a in polres.alerts.list(limit=2) if a.id not in before]  # every page
        assert len(new) == 1
        alert = new[0]
        assert alert.kind == "phone" and alert.sources == 2 and alert.reports == 2
        assert alert.reporting_agencies == sorted([BP3MI, DP3A_BKY]) and alert.modus == ["marriage_offer"]
        assert alert.regions == ["61.07.09"] and alert.named_by == [returnee.id]
        assert alert.value is None and alert.value_on_file  # the police hold no pii:read
        assert polres.alerts.get(alert).raised_at == alert.raised_at
        raised = [e for e in polres.events.feed(limit=500, stop_when_idle=True) if e.type == "alert.raised"]
        assert str(alert.id) in {e.data["id"] for e in raised}
        with pytest.raises(PermissionDeniedError):  # the district reports, the police read alerts
            bky.alerts.list()
        with pytest.raises(NotFoundError):
            polres.alerts.get(uuid.uuid4())


def test_public_warnings_are_read_without_a_token(live):
    note = f"dijemput di dermaga {tag()}"
    with live.client(BP3MI) as bp3mi, live.client(DP3A_BKY) as bky:
        for writer in (bp3mi, bky):  # two independent agencies: the modus at that place is published
            writer.alerts.report(modus="visa_free_border_entry", region="61.07.10", route=["61.07.10"],
                                 destination_country="BN", place_note=note)

    sent: list[httpx.Request] = []
    http = httpx.Client(event_hooks={"request": [sent.append]})
    with Sinergi(live.url, http_client=http) as anyone:
        raw = anyone.alerts.with_raw_response.warnings(limit=500)
        warnings = list(anyone.alerts.warnings(limit=1))  # page by page
    http.close()
    assert [w.model_dump() for w in warnings] == [w.model_dump() for w in raw.parse().items]
    assert sent and all("authorization" not in r.headers for r in sent)
    published = next(w for w in warnings if (w.modus, w.region.code) == ("visa_free_border_entry", "61.07.10"))
    assert published.region.name and published.description and "BN" in published.destination_countries
    assert [p.code for p in published.route] == ["61.07.10"]
    assert len(published.first_reported) == 7 and published.first_reported <= published.last_reported  # months
    assert note not in raw.http_response.text  # the words about places are never published

    with live.client(POLRES) as polres:  # a client with credentials fetches no token for it
        assert polres.alerts.warnings(limit=5).items
        assert polres.auth is not None and polres.auth.tokens_fetched == 0


def test_with_options_reaches_the_new_namespaces(live):
    with live.client(DP3A_SAMBAS) as c:
        tagged = c.with_options(default_headers={"X-Request-ID": "sdk-options-1"}, max_retries=0)
        raw = tagged.regions.with_raw_response.get("61.01")
        assert raw.headers["x-caller-request-id"] == "sdk-options-1" and raw.parse().name == "Kabupaten Sambas"
        assert "x-caller-request-id" not in c.regions.with_raw_response.get("61.01").headers
        assert tagged.max_retries == 0 and c.max_retries != 0


async def test_async_twins_of_the_new_namespaces(live):
    day, t = today(), tag()
    async with live.async_client(BP3MI) as bp3mi, live.async_client(DP3A_BKY) as bky, \
            live.async_client(POLRES) as polres:
        region = await bky.regions.get("61.07.07")
        assert region.name == "Jagoi Babang" and [r.code for r in region.path] == ["61", "61.07"]
        first = await bky.regions.list(parent="61.07.07", limit=2)
        assert len(first.items) == 2 and (await first.get_next_page()).items
        walked = [r.code async for r in bky.regions.list(parent="61.07.07", limit=4)]
        assert len(walked) == region.children and len(set(walked)) == len(walked)

        manifest = await bp3mi.manifests.create(
            letter_ref=f"KJRI-KCH/SDK-ASYNC/{t}", letter_date=day, expected_date=day, entry_point="plbn_aruk",
            persons=[{"full_name": "Benediktus Atok", "sex": "M", "origin_district": "61.07"}])
        arrived = await bp3mi.manifests.mark_arrivals(manifest, arrived_on=day, arrived=manifest.persons)
        (person,) = [p async for p in bky.manifests.week("arrived_not_located") if p.manifest_id == manifest.id]
        assert person.id == arrived.persons[0].id and person.status == "arrived"
        raw = await bky.manifests.with_raw_response.not_located(person, seen_on=day, note="Belum pulang")
        assert raw.parse().status == "not_located" and raw.etag == f'"{raw.parse().version}"'
        assert raw.parse().outcome_note == "Belum pulang"

        pushed = await bky.register.push_departures([departure(f"BKY-ASYNC-{t}")], idempotency_key=f"async-{t}")
        assert pushed.results[0].status == "created" and pushed.results[0].person_id
        detail = await bky.register.person(pushed.results[0].person_id)
        assert detail.status == "abroad" and detail.departure_records[0].source_ref == f"BKY-ASYNC-{t}"
        assert pushed.results[0].person_id in {p.person_id async for p in bky.register.persons(
            region="61.07.07.2001", limit=50)}

        alerts = await polres.alerts.list(limit=1)
        assert alerts.items and (await polres.alerts.get(alerts.items[0].id)).id == alerts.items[0].id
        warnings = [w async for w in polres.alerts.warnings(limit=2)]
        assert warnings and all(w.region.code.startswith("61") for w in warnings)
        with pytest.raises(NotFoundError):
            await bky.register.person(uuid.uuid4())
