"""The national region reference: the shipped file obeys its rules and is what the build script
makes; the API serves names beside codes; returnees of every province can be recorded."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import pytest

from models import regions
from models.data import build_regions
from tests.conftest import assert_problem

DATA = Path(build_regions.__file__).parent
BEFORE = Path(__file__).parent / "data" / "kalbar_regions_before_national.csv"


def shipped() -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((DATA / "regions.csv").read_text("utf-8"))))


def test_every_code_has_its_parent_one_level_up():
    rows = shipped()
    codes = {r["code"]: r for r in rows}
    assert len(codes) == len(rows), "a code repeats"
    depth = {"province": 1, "district": 2, "subdistrict": 3, "village": 4}
    for r in rows:
        parts = r["code"].split(".")
        assert len(parts) == depth[r["level"]], r
        if r["level"] == "province":
            assert r["parent"] == "", r
            continue
        assert r["parent"] == ".".join(parts[:-1]), r
        assert r["parent"] in codes, r
        assert depth[codes[r["parent"]]["level"]] == depth[r["level"]] - 1, r
        assert r["name"].strip() == r["name"] and r["name"], r


def test_counts_by_level():
    counts = Counter(r["level"] for r in shipped())
    assert counts["province"] == 38
    assert counts["district"] == 514
    kalbar = Counter(r["level"] for r in shipped() if r["code"].startswith("61."))
    assert kalbar == {"district": 14, "subdistrict": 174, "village": 2145}
    # below the regency, Kalimantan Barat only
    assert {r["code"][:2] for r in shipped() if r["level"] in ("subdistrict", "village")} == {"61"}


@pytest.mark.parametrize("code, name", [
    ("61", "Kalimantan Barat"), ("61.07", "Kabupaten Bengkayang"), ("61.10", "Kabupaten Melawi"),
    ("61.07.07", "Jagoi Babang"), ("61.72", "Kota Singkawang"), ("35", "Jawa Timur"),
    ("35.78", "Kota Surabaya"), ("31", "Daerah Khusus Ibukota Jakarta"), ("96", "Papua Barat Daya"),
])
def test_known_names(code, name):
    assert regions.get(code) is not None and regions.get(code).name == name  # type: ignore[union-attr]


def test_every_code_shipped_before_is_still_there_with_its_name():
    """Records stored before the national reference keep valid codes (no mapping needed)."""
    before = list(csv.DictReader(BEFORE.read_text("utf-8").splitlines()))
    assert len(before) == 189
    for r in before:
        now = regions.get(r["code"])
        assert now is not None, r
        assert now.name == r["name"] and now.level == r["level"], (r, now)


def test_the_build_script_makes_the_shipped_file(tmp_path):
    """The file is the build's output: rebuilt from a package-shaped folder made of it, the
    same bytes; and the build refuses an orphan."""
    rows = shipped()
    data = tmp_path / "data"
    data.mkdir()

    def write(name: str, header: list[str], body: list[list[str]]) -> None:
        with (data / name).open("w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(body)

    by = {lvl: [r for r in rows if r["level"] == lvl] for lvl in ("province", "district", "subdistrict", "village")}
    write("provinces.csv", ["code", "name"], [[r["code"], r["name"]] for r in by["province"]])
    write("regencies.csv", ["code", "province_code", "name"], [[r["code"], r["parent"], r["name"]] for r in by["district"]])
    # a kecamatan of another province: the build leaves it out
    write("districts.csv", ["code", "regency_code", "name"],
          [[r["code"], r["parent"], r["name"]] for r in by["subdistrict"]] + [["35.78.01", "35.78", "Karang Pilang"]])
    write("villages.csv", ["code", "district_code", "name"], [[r["code"], r["parent"], r["name"]] for r in by["village"]])
    assert build_regions.render(build_regions.build(data)) == (DATA / "regions.csv").read_text("utf-8")

    write("villages.csv", ["code", "district_code", "name"], [["61.07.99.2001", "61.07.99", "Nowhere"]])
    with pytest.raises(ValueError, match="parent is missing"):
        build_regions.build(data)


def test_the_readme_names_the_source_version_and_licence():
    readme = (DATA / "README").read_text("utf-8")
    assert f"idn-area-data, version {build_regions.VERSION}" in readme
    assert "ODbL" in readme and "MIT" in readme


# --- the API ---------------------------------------------------------------------------------


async def test_regions_are_served_with_their_names(client, make_party):
    party = await make_party("DP3A-SAMBAS", "61.01", ["notices:read"])
    h = await party.headers()
    assert_problem(await client.get("/v1/regions"), 401)

    provinces = (await client.get("/v1/regions", headers=h)).json()
    assert {"code": "35", "name": "Jawa Timur", "level": "province", "parent": None} in provinces["items"]
    assert len(provinces["items"]) == 38 and provinces["next_cursor"] is None

    bky = (await client.get("/v1/regions", params={"parent": "61.07"}, headers=h)).json()["items"]
    assert [r["code"] for r in bky][:2] == ["61.07.01", "61.07.02"] and len(bky) == 17
    assert {"code": "61.07.07", "name": "Jagoi Babang", "level": "subdistrict", "parent": "61.07"} in bky

    # every desa of Bengkayang, page by page: each once, in code order
    seen, cursor = [], None
    while True:
        page = (await client.get("/v1/regions", params={"parent": "61.07", "level": "village", "limit": 50,
                                                        **({"cursor": cursor} if cursor else {})}, headers=h)).json()
        seen += [r["code"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    expected = sorted(c for c, r in regions.regions().items() if r.level == "village" and c.startswith("61.07."))
    assert seen == expected and len(seen) > 100

    found = (await client.get("/v1/regions", params={"q": "surabaya"}, headers=h)).json()["items"]
    assert [r["code"] for r in found] == ["35.78"]

    one = await client.get("/v1/regions/61.10", headers=h)
    assert one.status_code == 200
    body = one.json()
    assert body["name"] == "Kabupaten Melawi" and [p["code"] for p in body["path"]] == ["61"]
    assert body["children"] > 0 and body["complete_below"] is True
    assert (await client.get("/v1/regions/35.78", headers=h)).json()["complete_below"] is False
    assert_problem(await client.get("/v1/regions/99.99", headers=h), 404)
    assert_problem(await client.get("/v1/regions", params={"parent": "99"}, headers=h), 404)
    assert_problem(await client.get("/v1/regions", params={"cursor": "nonsense"}, headers=h), 400)
