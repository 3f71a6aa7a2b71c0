"""The console's words: Bahasa Indonesia first, English as a switch (``?lang=en``, kept in a cookie)."""

from __future__ import annotations

from collections.abc import Callable

LANGS = ("id", "en")

WORDS: dict[str, tuple[str, str]] = {
    "app": ("Sinergi — Konsol Petugas", "Sinergi — Officers' console"),
    "signin": ("Masuk", "Sign in"),
    "signout": ("Keluar", "Sign out"),
    "email": ("Surel", "E-mail"),
    "password": ("Kata sandi", "Password"),
    "totp": ("Kode verifikasi (6 angka, bila diminta)", "Verification code (6 digits, if asked)"),
    "signin_failed": ("Surel, kata sandi atau kode salah.", "E-mail, password or code is wrong."),
    "signin_locked": ("Akun dikunci sementara karena terlalu banyak percobaan gagal. Coba lagi nanti.",
                      "The account is locked for a while after too many failed attempts. Try again later."),
    "signin_rate": ("Terlalu banyak percobaan dari alamat ini. Tunggu sebentar.",
                    "Too many attempts from this address. Please wait."),
    "csrf_bad": ("Formulir kedaluwarsa atau tidak sah. Muat ulang halaman dan coba lagi.",
                 "The form has expired or is not valid. Reload the page and try again."),
    "expired": ("Sesi Anda berakhir. Silakan masuk lagi.", "Your session has ended. Please sign in again."),
    "forbidden": ("Halaman ini tidak tersedia untuk akun Anda.", "This page is not available to your account."),
    "not_found": ("Tidak ditemukan.", "Not found."),
    "nav_home": ("Beranda", "Home"),
    "nav_overview": ("Ringkasan provinsi", "Province overview"),
    "nav_week": ("Pekan ini", "This week"),
    "nav_referrals": ("Rujukan diterima", "Referrals received"),
    "nav_audit": ("Jejak audit", "Audit trail"),
    "lang_switch": ("English", "Bahasa Indonesia"),
    "overview_title": ("Ringkasan: pekerja migran yang dipulangkan", "Overview: returned migrant workers"),
    "period": ("Periode", "Period"),
    "from": ("Dari", "From"),
    "to": ("Sampai", "To"),
    "show": ("Tampilkan", "Show"),
    "district": ("Kabupaten/Kota", "District"),
    "code": ("Kode", "Code"),
    "month": ("Bulan", "Month"),
    "total": ("Jumlah", "Total"),
    "returnees": ("Pemulangan", "Returnees"),
    "suspected": ("Terduga korban TPPO", "Suspected trafficking victims"),
    "unacked": ("Pemberitahuan belum dikonfirmasi", "Notices not yet acknowledged"),
    "referrals_by_agency": ("Rujukan per lembaga penerima", "Referrals by receiving agency"),
    "referrals_by_district": ("Rujukan per kabupaten/kota", "Referrals by district"),
    "open_referrals": ("Rujukan terbuka", "Open referrals"),
    "unknown_district": ("(kabupaten/kota tidak diketahui)", "(district not known)"),
    "referrals_district_note": (
        "Rujukan yang dibuat dalam periode ini dan masih terbuka (diajukan, diterima, disetujui, sedang "
        "ditangani, ditunda), per kabupaten/kota asal orang yang dirujuk; lewat tenggat: yang terbuka dan telah "
        "melewati tenggatnya sekarang. Setiap angka dibulatkan ke kelipatan {base}; * = 1 sampai {t_1} rujukan, "
        "disamarkan (angka yang sama dengan GET /v1/stats/referrals?group_by=district&open=true).",
        "Referrals made in this period and still open (requested, received, accepted, in progress, on hold), by "
        "the district the person referred comes from; overdue: open and past their due time now. Every figure "
        "is rounded to a multiple of {base}; * = 1 to {t_1} referrals, suppressed (the figures of "
        "GET /v1/stats/referrals?group_by=district&open=true)."),
    "agency": ("Lembaga", "Agency"),
    "status": ("Status", "Status"),
    "count": ("Jumlah", "Count"),
    "overdue": ("Lewat tenggat", "Overdue"),
    "suppressed": ("disamarkan", "suppressed"),
    "suppressed_note": (
        "Angka dibulatkan ke kelipatan {base}; sel bertanda * berisi 1 sampai {t_1} orang dan disamarkan agar "
        "tidak ada korban yang dapat dikenali (aturan yang sama dengan API).",
        "Figures are rounded to multiples of {base}; cells marked * hold 1 to {t_1} people and are suppressed so "
        "that no victim can be singled out (the same rule as the API)."),
    "chart_title": ("Pemulangan per bulan", "Returnees per month"),
    "download": ("Unduh", "Download"),
    "download_csv": ("Unduh CSV", "Download CSV"),
    "download_xlsx": ("Unduh Excel (XLSX)", "Download Excel (XLSX)"),
    "week_title": ("Pekan ini: {agency}", "This week: {agency}"),
    "to_acknowledge": ("Pemberitahuan untuk dikonfirmasi", "Notices to acknowledge"),
    "acknowledge": ("Konfirmasi", "Acknowledge"),
    "acknowledged": ("Sudah dikonfirmasi", "Acknowledged"),
    "follow_up": ("Catat tindak lanjut", "Record a follow-up"),
    "follow_up_action": ("Tindakan", "Action"),
    "note": ("Catatan", "Note"),
    "date": ("Tanggal", "Date"),
    "save": ("Simpan", "Save"),
    "none": ("Tidak ada.", "None."),
    "arrival": ("Tiba", "Arrival"),
    "entry_point": ("Pintu masuk", "Entry point"),
    "people": ("Orang", "People"),
    "issued_by": ("Diterbitkan oleh", "Issued by"),
    "referrals_due": ("Rujukan terbuka (tenggat terdekat dahulu)", "Open referrals (nearest due first)"),
    "due": ("Tenggat", "Due"),
    "urgency": ("Urgensi", "Urgency"),
    "reason": ("Alasan", "Reason"),
    "from_agency": ("Dari lembaga", "From agency"),
    "move": ("Ubah status", "Move"),
    "summary_due": ("{soon} jatuh tempo dalam 7 hari, {late} lewat tenggat",
                    "{soon} due within 7 days, {late} overdue"),
    "ok_acknowledged": ("Pemberitahuan telah dikonfirmasi.", "The notice has been acknowledged."),
    "ok_follow_up": ("Tindak lanjut dicatat.", "The follow-up has been recorded."),
    "ok_moved": ("Status rujukan diubah.", "The referral has been moved."),
    "err_stale": ("Data ini sudah diubah orang lain sejak halaman dimuat. Halaman telah dimuat ulang; periksa "
                  "lalu ulangi bila perlu.",
                  "Someone changed this since the page was loaded. The page has been reloaded; check and "
                  "repeat if needed."),
    "err_conflict": ("Tindakan tidak dapat dilakukan pada keadaan sekarang.", "The action is not possible now."),
    "err_invalid": ("Isian tidak sah atau belum lengkap (misalnya desa, siapa yang melihat, tanggal). Periksa "
                    "lalu ulangi.", "The input is not valid or not complete (e.g. the village, who saw them, the "
                    "date). Check and repeat."),
    "err_not_found": ("Data tidak ditemukan (atau di luar wilayah kewenangan Anda).",
                      "Not found (or outside your jurisdiction)."),
    "err_forbidden": ("Akun Anda tidak berwenang untuk tindakan ini.", "Your account may not do this."),
    "audit_title": ("Jejak audit", "Audit trail"),
    "search": ("Cari", "Search"),
    "actor": ("Pelaku (client id)", "Actor (client id)"),
    "action": ("Tindakan", "Action"),
    "resource_id": ("ID data", "Record id"),
    "officer": ("Petugas", "Officer"),
    "on_behalf_of": ("Atas nama (klaim)", "On behalf of (claimed)"),
    "outcome": ("Hasil", "Outcome"),
    "time": ("Waktu (UTC)", "Time (UTC)"),
    "verify": ("Verifikasi rantai", "Verify the chain"),
    "verify_ok": ("Rantai utuh: {checked} entri diperiksa, kepala #{seq}.",
                  "The chain is intact: {checked} entries checked, head #{seq}."),
    "verify_bad": ("Rantai RUSAK mulai entri #{seq}: {reason}", "The chain is BROKEN from entry #{seq}: {reason}"),
    "checkpoint": ("Unduh titik periksa bertanda tangan", "Download a signed checkpoint"),
    "checkpoint_verify": ("Verifikasi terhadap titik periksa", "Verify against a checkpoint"),
    "more": ("Berikutnya", "Next"),
    "home_title": ("Selamat datang, {name}", "Welcome, {name}"),
    "scopes": ("Wewenang", "Permissions"),
    "expected_this_week": ("Kedatangan minggu ini", "Arrivals expected this week"),
    "arrived_not_located": ("Sudah tiba, belum ditemukan", "Arrived, not yet located"),
    "not_located_after_7_days": ("Belum ditemukan lebih dari 7 hari", "Not located after 7 days"),
    "name": ("Nama", "Name"),
    "sex": ("L/P", "Sex"),
    "origin": ("Asal (kabupaten / kecamatan)", "Origin (district / sub-district)"),
    "expected_on": ("Perkiraan tiba", "Expected"),
    "arrived_on": ("Tiba", "Arrived"),
    "letter": ("Surat", "Letter"),
    "nik_on_file": ("NIK tercatat (disembunyikan)", "NIK on file (withheld)"),
    "located": ("ditemukan", "located"),
    "not_located": ("tidak ditemukan", "not located"),
    "arrived": ("tiba", "arrived"),
    "expected": ("belum tiba", "expected"),
    "village": ("Desa/kelurahan", "Village"),
    "seen_by": ("Dilihat oleh", "Seen by"),
    "seen_on": ("Tanggal", "Date"),
    "record_outcome": ("Catat hasil", "Record"),
    "ok_located": ("Orang tersebut dicatat telah ditemukan.", "The person is recorded as located."),
    "ok_not_located": ("Orang tersebut dicatat belum ditemukan.", "The person is recorded as not located."),
    "register_title": ("Register pekerja migran per kecamatan", "Register of migrant workers by sub-district"),
    "subdistrict": ("Kecamatan", "Sub-district"),
    "unknown_subdistrict": ("(kecamatan tidak diketahui)", "(sub-district not known)"),
    "persons": ("Jumlah orang", "Persons"),
    "departed": ("Pernah berangkat", "Ever departed"),
    "abroad": ("Di luar negeri", "Abroad"),
    "returned": ("Sudah pulang", "Returned"),
    "deported": ("Dideportasi", "Deported"),
    "repeat_return": ("Pulang lebih dari sekali", "Returned more than once"),
    "register_note": ("Setiap angka dibulatkan ke kelipatan {base}; * = 1 sampai {t_1} orang, disamarkan "
                      "(angka yang sama dengan GET /v1/register/counts).",
                      "Every figure is rounded to a multiple of {base}; * = 1 to {t_1} people, suppressed "
                      "(the figures of GET /v1/register/counts)."),
}

# The codes the API speaks (statuses, moves, reasons...), as a person reads them.
CODES: dict[str, tuple[str, str]] = {
    # referral statuses (FHIR Task)
    "requested": ("diajukan", "requested"), "received": ("diterima", "received"),
    "accepted": ("disetujui", "accepted"), "rejected": ("ditolak", "rejected"),
    "in-progress": ("sedang ditangani", "in progress"), "on-hold": ("ditunda", "on hold"),
    "completed": ("selesai", "completed"), "failed": ("gagal", "failed"), "cancelled": ("dibatalkan", "cancelled"),
    # moves
    "receive": ("terima", "receive"), "accept": ("setujui", "accept"), "reject": ("tolak (beri alasan)", "reject (say why)"),
    "start": ("mulai tangani", "start"), "hold": ("tunda", "hold"), "resume": ("lanjutkan", "resume"),
    "complete": ("selesaikan", "complete"), "fail": ("gagal (beri alasan)", "fail (say why)"), "cancel": ("batalkan", "cancel"),
    # urgency
    "emergency": ("darurat", "emergency"), "high": ("tinggi", "high"), "normal": ("biasa", "normal"),
    # reasons
    "suspected_tppo_victim": ("terduga korban TPPO", "suspected trafficking victim"),
    "health_rehabilitation": ("rehabilitasi kesehatan", "health rehabilitation"),
    "social_rehabilitation": ("rehabilitasi sosial", "social rehabilitation"),
    "repatriation": ("pemulangan", "repatriation"), "reintegration": ("reintegrasi", "reintegration"),
    "legal_aid": ("bantuan hukum", "legal aid"), "restitution": ("restitusi", "restitution"), "other": ("lainnya", "other"),
    # follow-up actions
    "home_visit": ("kunjungan rumah", "home visit"), "referral_made": ("dirujuk", "referral made"),
    "counselling": ("konseling", "counselling"),
    # audit outcomes
    "allowed": ("diizinkan", "allowed"), "denied": ("ditolak", "denied"),
}


def lang_of(value: str | None) -> str:
    return value if value in LANGS else "id"


def translator(lang: str) -> Callable[..., str]:
    index = LANGS.index(lang_of(lang))

    def t(key: str, **kw: object) -> str:
        if key in CODES and key not in WORDS:
            return CODES[key][index]
        words = WORDS.get(key)
        text = words[index] if words else key
        return text.format(**kw) if kw else text

    return t
