"""Downloads people can open: the returnees by district and month, and the open and overdue
referrals by district, as CSV and XLSX (the overview's workbook holds both tables).

CSV: UTF-8 with a byte-order mark and ``;`` between fields. Excel in an Indonesian locale
(id-ID, whose decimal separator is the comma) splits a double-clicked CSV on ``;``, its list
separator, not on ``,``; the BOM makes it read UTF-8. (A ``sep=;`` first line would make Excel
ignore the BOM, so there is none.) Region codes and months are written as ``="61.10"``: Excel
and LibreOffice keep them as text, so Melawi's ``61.10`` does not become ``61.1`` nor
``2025-01`` a date. A program reading the file strips ``="…"``.

XLSX: codes and months are text cells (type string), counts numbers; a second sheet says what
the figures are and why some are empty.

Both: Indonesian headers, region names beside codes, every district x month of the period
present (0 where there were none), and a suppressed cell empty with its reason in ``Keterangan``.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font

from api.console.service import DistrictReferrals, Grid, region_name

HEADERS = ["Kode kabupaten/kota", "Kabupaten/Kota", "Bulan", "Jumlah pemulangan", "Keterangan"]
CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def filename(grid: Grid, ext: str) -> str:
    return f"pemulangan-per-kabupaten-{grid.period.first}_{grid.period.last}.{ext}"


def _suppressed(threshold: int, unit: str = "orang", who: str = "orangnya") -> str:
    """Why a cell is empty: its count was under ``threshold`` (1 up to ``threshold - 1``)."""
    return f"disamarkan: 1 sampai {threshold - 1} {unit} (sel kecil tidak diterbitkan agar {who} tidak dapat dikenali)"


def _rounding(base: int) -> str:
    return f"setiap angka dibulatkan ke kelipatan {base} (acak tak bias, tetap per sel)"


def _csv(headers: list[str], rows: Any) -> bytes:
    """The rows as this module's CSV: a byte-order mark, ``;`` between fields, CRLF lines."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _table(sheet: Any, headers: list[str], rows: Any, text_columns: tuple[int, ...] = (0,),
           widths: tuple[int, ...] = ()) -> None:
    """The rows on ``sheet`` under bold headers, the ``text_columns`` as text cells whatever
    they look like (codes, months), the header row frozen."""
    sheet.append(headers)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append(list(row))
    for cells in sheet.iter_rows(min_row=2):
        for i in text_columns:
            cells[i].data_type = "s"
            cells[i].number_format = "@"
    for column, width in zip("ABCDEFGHI", widths, strict=False):
        sheet.column_dimensions[column].width = width
    sheet.freeze_panes = "A2"


def _saved(book: Workbook) -> bytes:
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def suppressed_note(grid: Grid) -> str:
    return _suppressed(grid.threshold, who="korban")


def rows(grid: Grid) -> list[tuple[str, str, str, int | None, str]]:
    out = []
    for d in grid.districts:
        for m in grid.months:
            value = grid.cells[(d, m)]
            out.append((d, region_name(d), m, value, suppressed_note(grid) if value is None else ""))
    return out


def notes(grid: Grid, agency: str, made_at: datetime) -> list[tuple[str, str]]:
    return [
        ("Isi", "Jumlah pekerja migran yang dipulangkan, per kabupaten/kota asal dan bulan pemulangan"),
        ("Periode", f"{grid.period.first} sampai {grid.period.last}"),
        ("Lembaga", agency),
        ("Dibuat", made_at.strftime("%Y-%m-%d %H:%M UTC")),
        ("Pembulatan", _rounding(grid.rounding_base)),
        ("Sel kosong", suppressed_note(grid)),
        ("Sumber", "Sinergi, GET /v1/stats/returnees?group_by=district,month (angka yang sama)"),
    ]


def _text(value: str) -> str:
    return f'="{value}"'


def to_csv(grid: Grid) -> bytes:
    return _csv(HEADERS, ([_text(code), name, _text(month), "" if value is None else value, note]
                          for code, name, month, value, note in rows(grid)))


def to_xlsx(grid: Grid, agency: str, made_at: datetime, referrals: DistrictReferrals | None = None) -> bytes:
    """The overview's workbook: the returnees by district and month, the open and overdue
    referrals by district (when given) on a sheet of their own, and what the figures are."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Pemulangan"
    _table(sheet, HEADERS, rows(grid), text_columns=(0, 2), widths=(20, 28, 10, 20, 60))
    if referrals is not None:
        _referral_sheet(book, referrals)
    about = book.create_sheet("Keterangan")
    for key, text in notes(grid, agency, made_at):
        about.append([key, text])
    if referrals is not None:
        for key, text in referral_notes(referrals, agency, made_at):
            if key not in ("Lembaga", "Dibuat"):
                about.append([f"{REFERRAL_SHEET}: {key}", text])
    about.column_dimensions["A"].width = 20
    about.column_dimensions["B"].width = 100
    return _saved(book)


# --- the open and overdue referrals by district -------------------------------------------------

REFERRAL_SHEET = "Rujukan"
REFERRAL_HEADERS = ["Kode kabupaten/kota", "Kabupaten/Kota", "Rujukan terbuka", "Lewat tenggat", "Keterangan"]
UNKNOWN_DISTRICT = "(kabupaten/kota tidak diketahui)"


def referrals_filename(table: DistrictReferrals, ext: str) -> str:
    return f"rujukan-terbuka-per-kabupaten-{table.as_of:%Y-%m-%d}.{ext}"


def _referral_note(table: DistrictReferrals) -> str:
    return _suppressed(table.threshold, unit="rujukan")


def referral_rows(table: DistrictReferrals) -> list[tuple[str, str, int | None, int | None, str]]:
    """One row per district of the table (the district not known last, without a code); a
    suppressed open count hides its overdue count too, and the note says which is hidden."""
    out = []
    for d in table.districts:
        n, late = table.open[d], table.overdue[d]
        if n is None:
            note = _referral_note(table)
        elif late is None:
            note = "lewat tenggat " + _referral_note(table)
        else:
            note = ""
        out.append((d or "", region_name(d) if d else UNKNOWN_DISTRICT, n, late, note))
    return out


def referral_notes(table: DistrictReferrals, agency: str, made_at: datetime) -> list[tuple[str, str]]:
    return [
        ("Isi", "Rujukan yang masih terbuka (diajukan, diterima, disetujui, sedang ditangani, ditunda), kapan pun "
                "dibuat, per kabupaten/kota asal orang yang dirujuk; lewat tenggat: yang terbuka dan telah melewati "
                "tenggatnya pada saat dihitung"),
        ("Dihitung", table.as_of.strftime("%Y-%m-%d %H:%M UTC")),
        ("Lembaga", agency),
        ("Dibuat", made_at.strftime("%Y-%m-%d %H:%M UTC")),
        ("Jumlah", f"{_shown(table.total)} rujukan terbuka, {_shown(table.total_overdue)} lewat tenggat "
                   "(dibulatkan tersendiri, bukan jumlah baris)"),
        ("Pembulatan", _rounding(table.rounding_base)),
        ("Sel kosong", _referral_note(table)),
        ("Sumber", "Sinergi, GET /v1/stats/referrals?group_by=district&open=true (angka yang sama)"),
    ]


def _shown(value: int | None) -> str:
    return "disamarkan" if value is None else str(value)


def referrals_csv(table: DistrictReferrals) -> bytes:
    return _csv(REFERRAL_HEADERS, ([_text(code) if code else "", name, "" if n is None else n,
                                    "" if late is None else late, note]
                                   for code, name, n, late, note in referral_rows(table)))


def _referral_sheet(book: Workbook, table: DistrictReferrals) -> None:
    _table(book.create_sheet(REFERRAL_SHEET), REFERRAL_HEADERS, referral_rows(table), widths=(20, 32, 16, 14, 60))


def referrals_xlsx(table: DistrictReferrals, agency: str, made_at: datetime) -> bytes:
    book = Workbook()
    first = book.active
    assert first is not None
    book.remove(first)
    _referral_sheet(book, table)
    about = book.create_sheet("Keterangan")
    for key, text in referral_notes(table, agency, made_at):
        about.append([key, text])
    about.column_dimensions["A"].width = 14
    about.column_dimensions["B"].width = 100
    return _saved(book)


# --- the register of migrant workers by kecamatan ----------------------------------------------

REGISTER_HEADERS = ["Kode kecamatan", "Kecamatan", "Jumlah orang", "Pernah berangkat", "Di luar negeri",
                    "Sudah pulang", "Dideportasi", "Pulang lebih dari sekali", "Keterangan"]
REGISTER_FIELDS = ("persons", "departed", "abroad", "returned", "deported", "repeat_return")


def register_filename(district: str, made_at: datetime, ext: str) -> str:
    return f"register-pmi-per-kecamatan-{district}-{made_at.strftime('%Y-%m-%d')}.{ext}"


def _register_note(reg: dict[str, Any]) -> str:
    return _suppressed(reg["threshold"])


def register_rows(reg: dict[str, Any]) -> list[list[Any]]:
    out = []
    for row in reg["rows"]:
        values = [row.get(f) for f in REGISTER_FIELDS]
        note = _register_note(reg) if any(v is None for v in values) else ""
        code = row["subdistrict"]
        name = (row.get("name") or "") if code else "(kecamatan tidak diketahui)"
        out.append([str(code or ""), name, *values, note])
    return out


def register_csv(reg: dict[str, Any]) -> bytes:
    return _csv(REGISTER_HEADERS, ([_text(code), name, *["" if v is None else v for v in rest]]
                                   for code, name, *rest in register_rows(reg)))


def register_xlsx(reg: dict[str, Any], agency: str, made_at: datetime) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Register PMI"
    _table(sheet, REGISTER_HEADERS, register_rows(reg))
    about = book.create_sheet("Keterangan")
    for key, text in [
        ("Isi", "Orang dalam register pekerja migran, per kecamatan asal"),
        ("Kabupaten/Kota", f"{reg['district']} {region_name(reg['district'])}"),
        ("Lembaga", agency),
        ("Dibuat", made_at.strftime("%Y-%m-%d %H:%M UTC")),
        ("Pembulatan", _rounding(reg["rounding_base"])),
        ("Sel kosong", _register_note(reg)),
        ("Sumber", "Sinergi, GET /v1/register/counts?by=subdistrict (angka yang sama)"),
    ]:
        about.append([key, text])
    return _saved(book)
