"""The console in a real browser: headless Chromium (Debian's ``chromium`` + ``chromium-driver``,
driven by Selenium) against a real uvicorn server on the demo data; one browser for the
module, each test starting on a blank page without cookies.

Sign in, see the overview and its chart drawn (the chart's pixels are more than blank),
acknowledge a notice, download a file and read it back, sign out; a form with a wrong CSRF
token and an ended session are refused; the keyboard reaches the sign-in fields and the
button, with a visible focus; an officer whose agency switched the second factor on enrols it
at sign-in (the secret read from the page, the code computed as an authenticator app would). ``SINERGI_SCREENSHOTS=DIR`` keeps the overview's and the week's
screenshots there (``docs/screenshots`` in the README).
"""

from __future__ import annotations

import os
import shutil
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

from api.core.db import sync_url
from tests.console_world import later_code
from tests.demo_world import DemoCopy
from tests.live import serve

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402  (after the skip: selenium is a test extra)
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
ANALYST = "analis@dp3a.kalbarprov.go.id"
BKY = "petugas@dp3a.bengkayangkab.go.id"
TASK_FORCE = "sekretariat@gugustppo.bengkayangkab.go.id"  # no other test here signs in as the task force

# CI (.ci/run) installs the browser and sets SINERGI_TEST_REQUIRE_BROWSER: there a missing one fails.
REQUIRED = bool(os.environ.get("SINERGI_TEST_REQUIRE_BROWSER"))
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER) and not REQUIRED,
                                reason="chromium and chromium-driver are not installed (.ci/run installs them)")


@pytest.fixture(scope="module")
def site(module_demo: DemoCopy) -> Iterator[dict[str, Any]]:
    with serve(module_demo.url) as base:
        yield {"url": base, "db": module_demo.url, "officers": module_demo.demo["officers"]}


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless Chromium for the module's tests (starting one takes seconds); each test
    gets it without cookies, on a blank page, with a downloads folder of its own (:func:`browser`)."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tmp_path_factory.mktemp("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1400", "--lang=id-ID", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.prompt_for_download": False})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=options)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(chromium: Any, tmp_path: Path) -> Iterator[Any]:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    chromium.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    chromium.execute_cdp_cmd("Network.clearBrowserCookies", {})  # no session of an earlier test
    chromium.get("about:blank")
    chromium.downloads = downloads
    yield chromium
    chromium.execute_cdp_cmd("Network.clearBrowserCookies", {})


def _sign_in(driver: Any, site: dict[str, Any], email: str) -> None:
    driver.get(site["url"] + "/")
    assert "/console/masuk" in driver.current_url
    driver.find_element(By.ID, "email").send_keys(email)
    driver.find_element(By.ID, "password").send_keys(site["officers"][email]["password"])
    driver.find_element(By.ID, "submit").click()
    WebDriverWait(driver, 10).until(lambda d: d.current_url.endswith("/console"), driver.current_url)


def _pixels(png: bytes) -> tuple[int, int, list[tuple[int, ...]]]:
    """The pixels of an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, data, width = 8, b"", 0
    height = channels = 0
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        chunk = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and colour in (2, 6)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            data += chunk
        pos += 12 + length
    raw = zlib.decompress(data)
    stride = width * channels
    rows: list[bytearray] = []
    prev = bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    px = [tuple(r[x * channels:x * channels + 3]) for r in rows for x in range(width)]
    return width, height, px


def _keep(driver: Any, name: str) -> None:
    folder = os.environ.get("SINERGI_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / name))


def _wait_for_file(folder: Path, suffix: str) -> Path:
    for _ in range(100):
        done = [p for p in folder.iterdir() if p.name.endswith(suffix)]
        if done:
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no {suffix} downloaded: {list(folder.iterdir())}")


def test_overview_chart_and_download(site: dict[str, Any], browser: Any) -> None:
    _sign_in(browser, site, ANALYST)
    browser.get(site["url"] + "/console/ringkasan?dari=2025-01&sampai=2025-06")
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("Ringkasan")
    chart = browser.find_element(By.CSS_SELECTOR, "svg.chart")
    width, height, px = _pixels(chart.screenshot_as_png)
    coloured = sum(1 for p in px if max(p) - min(p) > 60)  # the bars (the background is white, the grid grey)
    assert width > 300 and height > 150
    assert coloured > 0.05 * len(px), f"the chart looks blank: {coloured} coloured pixels of {len(px)}"
    assert len(set(px)) > 5
    _keep(browser, "ringkasan-provinsi.png")
    rows = browser.find_elements(By.CSS_SELECTOR, "#grid tbody tr")
    assert len(rows) == 14
    by_district = browser.find_elements(By.CSS_SELECTOR, "#referrals-by-district tbody tr")
    assert len(by_district) >= 14 and "Rujukan per kabupaten/kota" in browser.page_source
    browser.execute_script("document.getElementById('register').scrollIntoView()")
    _keep(browser, "ringkasan-register.png")
    browser.find_element(By.ID, "dl-xlsx").click()
    book = load_workbook(_wait_for_file(browser.downloads, ".xlsx"))
    sheet = book["Pemulangan"]
    cells = list(sheet.iter_rows(min_row=2))
    assert len(cells) == 14 * 6 and all(r[0].data_type == "s" for r in cells)
    assert any(r[0].value == "61.10" for r in cells)
    assert _wait_for_file(browser.downloads, ".xlsx").name == "pemulangan-per-kabupaten-2025-01_2025-06.xlsx"
    assert "Rujukan" in book.sheetnames  # the open and overdue referrals by district, beside the returnees
    # the referrals open now (the demo's were made in the last weeks), whatever the period shown
    browser.execute_script("document.getElementById('referrals-district').scrollIntoView()")
    bengkayang = browser.find_element(By.CSS_SELECTOR, '#referrals-by-district tr[data-referral-district="61.07"]')
    assert "Kabupaten Bengkayang" in bengkayang.text
    assert int(bengkayang.find_element(By.CSS_SELECTOR, "td.open").text) > 0
    _keep(browser, "ringkasan-rujukan.png")
    browser.find_element(By.ID, "signout").click()
    WebDriverWait(browser, 10).until(lambda d: "/console/masuk" in d.current_url)
    browser.get(site["url"] + "/console/ringkasan")
    assert "/console/masuk" in browser.current_url  # signed out: the page is not shown


def test_acknowledge_a_notice_and_csrf_refused(site: dict[str, Any], browser: Any) -> None:
    _sign_in(browser, site, BKY)
    browser.get(site["url"] + "/console/pekan")
    _keep(browser, "pekan-kabupaten.png")
    before = len(browser.find_elements(By.CSS_SELECTOR, "button.ack"))
    assert before > 0
    # first a form whose CSRF token was tampered with: refused, nothing done
    browser.execute_script("document.querySelector('form[action$=\"/konfirmasi\"] input[name=csrf]').value = 'x'")
    browser.find_element(By.CSS_SELECTOR, "button.ack").click()
    WebDriverWait(browser, 10).until(lambda d: "Formulir kedaluwarsa" in d.page_source)
    assert "Formulir kedaluwarsa" in browser.find_element(By.TAG_NAME, "h1").text
    browser.get(site["url"] + "/console/pekan")
    assert len(browser.find_elements(By.CSS_SELECTOR, "button.ack")) == before
    # then the form as the page made it
    browser.find_element(By.CSS_SELECTOR, "button.ack").click()
    WebDriverWait(browser, 10).until(lambda d: "msg=ok_acknowledged" in d.current_url)
    assert "Pemberitahuan telah dikonfirmasi" in browser.find_element(By.ID, "message").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "button.ack")) == before - 1


def test_locate_an_arrived_person_in_the_week(site: dict[str, Any], browser: Any) -> None:
    _sign_in(browser, site, BKY)
    browser.get(site["url"] + "/console/pekan")
    for heading in ("Kedatangan minggu ini", "Sudah tiba, belum ditemukan", "Belum ditemukan lebih dari 7 hari"):
        assert heading in browser.page_source
    browser.execute_script("document.getElementById('expected_this_week').scrollIntoView()")
    _keep(browser, "pekan-kedatangan.png")
    rows = "#arrived_not_located tbody tr"
    before = len(browser.find_elements(By.CSS_SELECTOR, rows))
    form = next(f for f in browser.find_elements(By.CSS_SELECTOR, f"{rows} form.locate")
                if len(f.find_elements(By.CSS_SELECTOR, "select[name=village] option")) > 1)
    form.find_elements(By.CSS_SELECTOR, "select[name=village] option")[1].click()
    form.find_element(By.NAME, "seen_by").send_keys("Kepala Desa")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 10).until(lambda d: "msg=ok_located" in d.current_url)
    assert "ditemukan" in browser.find_element(By.ID, "message").text
    assert len(browser.find_elements(By.CSS_SELECTOR, rows)) == before - 1


def test_an_ended_session_is_refused(site: dict[str, Any], browser: Any) -> None:
    _sign_in(browser, site, BKY)
    engine = sa.create_engine(sync_url(site["db"]))
    try:
        with engine.begin() as conn:  # the session's time is up (as the idle or absolute limit would make it)
            conn.execute(sa.text("UPDATE officer_session SET expires_at = created_at"))
    finally:
        engine.dispose()
    browser.get(site["url"] + "/console/pekan")
    assert "/console/masuk" in browser.current_url and "expired=1" in browser.current_url
    assert "Sesi Anda berakhir" in browser.page_source


def test_the_keyboard_reaches_the_sign_in_form_with_a_visible_focus(site: dict[str, Any], browser: Any) -> None:
    browser.get(site["url"] + "/console/masuk")
    reached: list[str] = []
    browser.execute_script("document.activeElement.blur()")
    browser.find_element(By.TAG_NAME, "h1").click()  # the keyboard starts from the page's top
    for _ in range(8):
        browser.switch_to.active_element.send_keys(Keys.TAB)
        el = browser.switch_to.active_element
        ident = el.get_attribute("id") or el.tag_name
        reached.append(ident)
        if ident in ("email", "password", "submit"):
            outline = browser.execute_script("return getComputedStyle(arguments[0]).outlineStyle", el)
            assert outline not in ("none", ""), (ident, outline)
        if ident == "submit":
            break
    assert [i for i in reached if i in ("email", "password", "code", "submit")] == ["email", "password", "code",
                                                                                     "submit"], reached
    browser.switch_to.active_element.send_keys(Keys.SHIFT, Keys.TAB)
    assert browser.switch_to.active_element.get_attribute("id") == "code"


def test_an_existing_officer_enrols_the_second_factor_at_sign_in(site: dict[str, Any], browser: Any) -> None:
    engine = sa.create_engine(sync_url(site["db"]))
    try:
        with engine.begin() as conn:  # the task force starts requiring a second factor; its officer has none
            conn.execute(sa.text("UPDATE agency SET requires_totp = true WHERE code = 'GUGUS-TPPO-BENGKAYANG'"))
    finally:
        engine.dispose()
    browser.get(site["url"] + "/console/masuk")
    browser.find_element(By.ID, "email").send_keys(TASK_FORCE)
    browser.find_element(By.ID, "password").send_keys(site["officers"][TASK_FORCE]["password"])
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 10).until(lambda d: "/console/masuk/totp" in d.current_url, browser.current_url)
    assert "Daftarkan verifikasi dua langkah" in browser.find_element(By.TAG_NAME, "h1").text
    qr = browser.find_element(By.CSS_SELECTOR, "figure.qrcode svg.qr")
    width, height, px = _pixels(qr.screenshot_as_png)
    dark = sum(1 for p in px if max(p) < 80)
    assert width >= 150 and height >= 150 and 0.2 * len(px) < dark < 0.8 * len(px), (width, height, dark)
    _keep(browser, "daftar-totp.png")
    secret = browser.find_element(By.ID, "totp-secret").text.replace(" ", "")
    browser.get(site["url"] + "/console/pekan")  # half signed in: no page opens
    assert "/console/masuk" in browser.current_url and "/totp" not in browser.current_url
    browser.get(site["url"] + "/console/masuk/totp")
    assert browser.find_element(By.ID, "totp-secret").text.replace(" ", "") == secret  # the same secret
    browser.find_element(By.ID, "code").send_keys(pyotp.TOTP(secret).now())
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 10).until(lambda d: d.current_url.endswith("/console"), browser.current_url)
    assert "Sekretariat Gugus Tugas" in browser.find_element(By.TAG_NAME, "h1").text
    browser.find_element(By.ID, "signout").click()
    WebDriverWait(browser, 10).until(lambda d: "/console/masuk" in d.current_url)
    # from now on the code is asked beside the password (a code of a later step: each is accepted once)
    browser.find_element(By.ID, "email").send_keys(TASK_FORCE)
    browser.find_element(By.ID, "password").send_keys(site["officers"][TASK_FORCE]["password"])
    browser.find_element(By.ID, "code").send_keys(later_code(secret))
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 10).until(lambda d: d.current_url.endswith("/console"), browser.current_url)
