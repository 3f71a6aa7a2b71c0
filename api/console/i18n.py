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
    "as_of": ("keadaan", "as of"),
    "unknown_district": ("(kabupaten/kota tidak diketahui)", "(district not known)"),
    "referrals_district_note": (
        "Rujukan yang masih terbuka sekarang (diajukan, diterima, disetujui, sedang ditangani, ditunda), kapan "
        "pun dibuat (tidak mengikuti periode di atas), per kabupaten/kota asal orang yang dirujuk; lewat tenggat: "
        "yang terbuka dan telah melewati tenggatnya sekarang. Setiap angka dibulatkan ke kelipatan {base}; * = 1 sampai {t_1} rujukan, "
        "disamarkan (angka yang sama dengan GET /v1/stats/referrals?group_by=district&open=true).",
        "Referrals open now (requested, received, accepted, in progress, on hold), whenever they were made (not "
        "the period above), by the district the person referred comes from; overdue: open and past their due time now. Every figure "
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
    # signing in: the steps after the password
    "step_expired": ("Langkah masuk ini sudah berakhir. Silakan masuk lagi.",
                     "This sign-in step has ended. Please sign in again."),
    "new_password_title": ("Buat kata sandi baru", "Choose a new password"),
    "new_password_intro": ("Kata sandi Anda diatur oleh pengelola akun. Buat kata sandi Anda sendiri (paling "
                           "sedikit 12 karakter) untuk melanjutkan.",
                           "Your password was set by an account manager. Choose your own (at least 12 "
                           "characters) to continue."),
    "current_password": ("Kata sandi sekarang", "Current password"),
    "new_password": ("Kata sandi baru (paling sedikit 12 karakter)", "New password (at least 12 characters)"),
    "confirm_password": ("Ulangi kata sandi baru", "Repeat the new password"),
    "continue": ("Lanjutkan", "Continue"),
    "totp_enrol_title": ("Daftarkan verifikasi dua langkah", "Enrol two-step verification"),
    "totp_enrol_intro": ("Lembaga Anda mewajibkan kode verifikasi saat masuk. Pindai kode QR ini dengan aplikasi "
                         "autentikator di ponsel Anda (misalnya FreeOTP, Google Authenticator, Microsoft "
                         "Authenticator), atau ketik kuncinya, lalu masukkan kode 6 angka yang ditampilkan aplikasi.",
                         "Your agency requires a verification code at sign-in. Scan this QR code with an "
                         "authenticator app on your phone (FreeOTP, Google Authenticator, Microsoft Authenticator...), "
                         "or type its key, then enter the 6-digit code the app shows."),
    "qr_label": ("Kode QR untuk aplikasi autentikator", "QR code for the authenticator app"),
    "totp_key": ("Kunci (ketik bila tidak dapat memindai)", "Key (type it if you cannot scan)"),
    "totp_code": ("Kode 6 angka dari aplikasi", "The 6-digit code from the app"),
    # the officer's own account
    "nav_security": ("Keamanan akun", "Account security"),
    "security_title": ("Keamanan akun", "Account security"),
    "change_password": ("Ganti kata sandi", "Change the password"),
    "totp_on": ("Verifikasi dua langkah (TOTP) aktif.", "Two-step verification (TOTP) is on."),
    "totp_off": ("Verifikasi dua langkah (TOTP) belum didaftarkan.", "Two-step verification (TOTP) is not enrolled."),
    "totp_start": ("Daftarkan aplikasi autentikator (baru)", "Enrol a (new) authenticator app"),
    "totp_confirm_intro": ("Pindai kode QR ini, lalu masukkan kata sandi Anda dan kode 6 angka untuk "
                           "mengaktifkannya. Sampai saat itu pendaftaran lama tetap berlaku.",
                           "Scan this QR code, then enter your password and the 6-digit code to activate it. "
                           "Until then the old enrolment stays in force."),
    "totp_confirm": ("Aktifkan", "Activate"),
    "ok_password_changed": ("Kata sandi telah diganti. Sesi lain dari akun ini telah diakhiri.",
                            "The password has been changed. Other sessions of this account have ended."),
    "ok_totp_enrolled": ("Verifikasi dua langkah telah didaftarkan. Sesi lain dari akun ini telah diakhiri.",
                         "Two-step verification has been enrolled. Other sessions of this account have ended."),
    "err_credentials": ("Kata sandi sekarang salah.", "The current password is wrong."),
    "err_locked": ("Akun dikunci sementara karena terlalu banyak percobaan gagal. Coba lagi nanti.",
                   "The account is locked for a while after too many failed attempts. Try again later."),
    "err_rate": ("Terlalu banyak percobaan dari alamat ini. Tunggu sebentar.",
                 "Too many attempts from this address. Please wait."),
    "err_password_invalid": ("Kata sandi baru paling sedikit 12 karakter dan kedua isian harus sama.",
                             "The new password needs at least 12 characters, and both fields must be the same."),
    "err_password_reused": ("Kata sandi baru harus berbeda dari yang lama.",
                            "The new password must differ from the old one."),
    "err_second_factor": ("Kode salah atau sudah kedaluwarsa. Masukkan kode yang sedang ditampilkan aplikasi.",
                          "The code is wrong or has expired. Enter the code the app shows now."),
    "err_expired": ("Pendaftaran ini sudah tidak berlaku. Mulai lagi.", "This enrolment is no longer valid. Start again."),
    # managing the agency's officers
    "nav_officers": ("Petugas", "Officers"),
    "officers_title": ("Petugas {agency}", "Officers of {agency}"),
    "officer_add": ("Tambah petugas", "Add an officer"),
    "officer_add_note": ("Kata sandi sementara dibuat otomatis dan ditampilkan sekali; petugas membuat kata sandinya "
                         "sendiri saat pertama masuk. Wewenang hanya dari yang dimiliki lembaga.",
                         "A one-time password is generated and shown once; the officer chooses their own at the "
                         "first sign-in. Permissions are those the agency holds."),
    "second_factor": ("Verifikasi dua langkah", "Two-step verification"),
    "enrolled": ("terdaftar", "enrolled"),
    "not_enrolled": ("belum terdaftar", "not enrolled"),
    "required_at_signin": ("wajib: didaftarkan saat masuk", "required: enrolled at sign-in"),
    "account": ("Akun", "Account"),
    "active": ("aktif", "active"),
    "disabled": ("dinonaktifkan", "disabled"),
    "locked_until": ("terkunci sampai {at}", "locked until {at}"),
    "must_change": ("kata sandi sementara", "one-time password"),
    "last_signin": ("Terakhir masuk (UTC)", "Last sign-in (UTC)"),
    "never": ("belum pernah", "never"),
    "actions": ("Tindakan", "Actions"),
    "you": ("(Anda)", "(you)"),
    "disable": ("Nonaktifkan", "Disable"),
    "enable": ("Aktifkan", "Enable"),
    "reset_password": ("Atur ulang kata sandi", "Reset the password"),
    "reset_totp_new": ("Buat kunci TOTP baru", "Issue a new TOTP key"),
    "reset_totp_signin": ("Daftar ulang TOTP saat masuk", "Enrol TOTP again at sign-in"),
    "secret_title": ("Simpan sekarang: hanya ditampilkan sekali", "Keep it now: shown only once"),
    "secret_for": ("Untuk {email}", "For {email}"),
    "one_time_password": ("Kata sandi sementara", "One-time password"),
    "one_time_note": ("Sampaikan kepada petugas melalui jalur yang aman. Petugas membuat kata sandinya sendiri saat "
                      "masuk berikutnya.", "Give it to the officer through a safe channel. The officer chooses their "
                      "own password at the next sign-in."),
    "totp_uri": ("URI otpauth (untuk aplikasi autentikator)", "otpauth URI (for the authenticator app)"),
    "back_to_officers": ("Kembali ke daftar petugas", "Back to the officers"),
    "ok_officer_disabled": ("Petugas dinonaktifkan; semua sesinya telah diakhiri.",
                            "The officer is disabled; all their sessions have ended."),
    "ok_officer_enabled": ("Petugas dapat masuk kembali.", "The officer can sign in again."),
    "ok_totp_at_signin": ("Kunci TOTP dihapus; petugas mendaftarkan yang baru saat masuk berikutnya.",
                          "The TOTP key is removed; the officer enrols a new one at the next sign-in."),
    "err_officer_exists": ("Sudah ada petugas dengan surel ini.", "An officer with this e-mail address exists."),
    "err_scopes_not_held": ("Lembaga tidak memiliki wewenang itu.", "The agency does not hold that permission."),
    "err_scopes_not_yours": ("Anda hanya dapat memberikan wewenang yang Anda miliki sendiri.",
                             "You can grant only permissions you hold yourself."),
    "err_own_account": ("Anda tidak dapat menonaktifkan akun Anda sendiri.", "You cannot disable your own account."),
    "err_officer_invalid": ("Isian tidak sah: periksa surel dan pilih paling sedikit satu wewenang.",
                            "The input is not valid: check the e-mail address and choose at least one permission."),
}

# What each scope lets an officer do, as the officers' page lists them.
SCOPES: dict[str, tuple[str, str]] = {
    "returnees:write": ("mengirim data pemulangan (BP3MI)", "push returnee records (BP3MI)"),
    "returnees:read": ("membaca data pemulangan di wilayahnya", "read returnee records in the jurisdiction"),
    "pii:read": ("melihat NIK, paspor dan nomor telepon", "see NIK, passport and phone numbers"),
    "notices:write": ("menerbitkan pemberitahuan deportasi", "issue deportation notices"),
    "notices:read": ("membaca pemberitahuan deportasi", "read deportation notices"),
    "notices:ack": ("mengonfirmasi pemberitahuan dan mencatat tindak lanjut", "acknowledge notices, record follow-ups"),
    "referrals:write": ("merujuk kasus ke lembaga lain", "refer cases to other agencies"),
    "referrals:read": ("membaca rujukan", "read referrals"),
    "referrals:respond": ("menangani rujukan yang diterima", "work the referrals received"),
    "stats:read": ("membaca statistik", "read statistics"),
    "register:write": ("mencatat keberangkatan pekerja migran", "record departures of migrant workers"),
    "register:read": ("membaca register pekerja migran", "read the register of migrant workers"),
    "alerts:write": ("melaporkan perekrutan ilegal", "report illegal recruitment"),
    "alerts:read": ("membaca peringatan perekrutan", "read recruitment alerts"),
    "audit:read": ("membaca dan memverifikasi jejak audit", "read and verify the audit trail"),
    "events:read": ("membaca umpan perubahan", "read the change feed"),
    "webhooks:manage": ("mengelola webhook", "manage webhooks"),
    "manifests:write": ("mendaftarkan manifes kedatangan", "register arrival manifests"),
    "manifests:read": ("membaca manifes kedatangan", "read arrival manifests"),
    "manifests:locate": ("mencatat orang yang sudah tiba ditemukan atau tidak", "record whether arrived people were located"),
    "officers:manage": ("mengelola akun petugas lembaga", "manage the agency's officer accounts"),
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
        if key in SCOPES:
            return SCOPES[key][index]
        words = WORDS.get(key)
        text = words[index] if words else key
        return text.format(**kw) if kw else text

    return t
