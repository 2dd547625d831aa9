"""The live dashboard in a real headless Chromium (Debian's `chromium` + `chromium-driver`,
installed by `make browser`), against a real house: events published through the contract
change the figures on the page without a reload."""
from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
import pytest_asyncio
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from deploy.embedded import REPO_ROOT, free_port, terminate
from services.ops.dashboard import dashboard_url, start_dashboard, wait_dashboard
from shared import topics as T
from shared.timeutil import iso_week
from tests.support import factory as f
from tests.support.factory import DAY, HOUR, T0

pytestmark = pytest.mark.integration
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WEEK = iso_week(T0)


@pytest.fixture
def browser():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("no Debian chromium/chromium-driver: run `make browser` (apt-get install chromium chromium-driver)")
    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1366,1700", "--lang=en-GB"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


@pytest_asyncio.fixture
async def dashboard(house, tmp_path):
    port = free_port()
    log = tmp_path / "dashboard.log"
    env = {"KAFKA_BOOTSTRAP_SERVERS": house.bootstrap, "REDIS_URL": house.redis_url}
    proc = start_dashboard(env, port, log)
    url = dashboard_url(port)
    try:
        await asyncio.get_running_loop().run_in_executor(None, wait_dashboard, url, 60.0, proc)
        yield url
    finally:
        terminate(proc)
        print(f"dashboard log:\n{log.read_text(errors='replace')[-3000:]}" if log.exists() else "")


async def shows(driver, element_id: str, expected: str, timeout: float = 60.0) -> None:
    """Wait (without blocking the event loop) until an element's text is `expected`."""
    deadline = asyncio.get_running_loop().time() + timeout
    text = None
    while asyncio.get_running_loop().time() < deadline:
        try:
            text = driver.find_element(By.ID, element_id).text.strip()
        except WebDriverException:
            text = None
        if text == expected:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"#{element_id} shows {text!r}, expected {expected!r}\n{page_state(driver)}")


def page_state(driver) -> str:
    """What the page logged and what the server holds, for a failure message."""
    logs = driver.get_log("browser")
    state = driver.execute_script("return fetch('/api/state').then(r => r.text());")
    return f"browser console: {logs}\nserver state: {state}"


async def table_has(driver, table_id: str, needle: str, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        # textContent, not .text: the weekly table sits in a closed <details>
        if needle in (driver.find_element(By.ID, table_id).get_attribute("textContent") or ""):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"#{table_id} never showed {needle!r}: {driver.find_element(By.ID, table_id).text!r}\n"
                         + page_state(driver))


async def pair(client, observer, arrival_id: str, app: str, at):
    await client.publish(T.BORDER_ARRIVALS, f.arrival(arrival_id, at))
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.eoi(app, at + HOUR))
    await client.publish(T.ADMISSIONS_APPLICATIONS, f.vetted(app, at + HOUR))
    [req] = await observer.wait_for(T.LIAISON_UK_RETURN_REQUESTS, "ReturnRequested", arrival_id=arrival_id)
    return req["request_id"]


async def test_dashboard_figures_follow_the_events_live(house, client, observer, dashboard, browser, tmp_path):
    browser.get(dashboard)
    await table_has(browser, "feed", "Live")
    await shows(browser, "week", "no figures yet")
    # a mark on this very page: it is gone if anything reloads it
    browser.execute_script("window.sameLoad = 'still the first load';")

    await client.publish(T.OPS_CONTROL, f.cap_set(WEEK, 3, T0 - HOUR))
    await shows(browser, "week", WEEK)
    await shows(browser, "cap", "3")
    rid1 = await pair(client, observer, "A1", "P1", T0)
    await shows(browser, "pairs-formed", "1")
    await shows(browser, "cap-left", "2")
    await shows(browser, "ret-requested-week", "1")

    await client.publish(T.LIAISON_FR_DECISIONS, f.answer(rid1, T0 + DAY))
    await shows(browser, "ret-accepted", "1")  # before the execution, which comes on another topic
    await client.publish(T.TRANSFERS_MOVEMENTS, f.executed(rid1, T0 + 2 * DAY))
    await shows(browser, "cum-executed", "1")
    await shows(browser, "cum-offered", "1")
    await shows(browser, "adm-offered", "1")

    rid2 = await pair(client, observer, "A2", "P2", T0 + 2 * DAY)
    await client.publish(T.CASEWORK_UPDATES, f.casework("LegalChallengeFiled", "A2", T0 + 2 * DAY + 2 * HOUR,
                                                        challenge_id="J1", kind="judicial_review"))
    await observer.wait_for(T.OPS_ALERTS, "Alert", kind="removal_on_hold", subject_ref=rid2)
    await shows(browser, "ret-on-hold", "1")
    await shows(browser, "adm-paired", "1")
    await shows(browser, "pairs-formed", "2")

    await client.publish(T.BORDER_ARRIVALS, raw=b"{not json", key="A9")
    await table_has(browser, "letters", "not_json")
    await table_has(browser, "alerts", "removal_on_hold")
    await table_has(browser, "alerts", "dead_letter")
    await table_has(browser, "services", "oioo-matching")
    await shows(browser, "redis", "answers")
    await table_has(browser, "weeks", WEEK)
    assert browser.find_elements(By.CSS_SELECTOR, "#chart rect"), "the weekly chart drew no bars"

    assert browser.execute_script("return window.sameLoad;") == "still the first load", "the page was reloaded"
    # accessible structure: one h1, a heading per panel, header cells that say what they head
    assert len(browser.find_elements(By.TAG_NAME, "h1")) == 1
    assert len(browser.find_elements(By.TAG_NAME, "h2")) >= 7
    for th in browser.find_elements(By.CSS_SELECTOR, "thead th"):
        assert th.get_attribute("scope") == "col"
    assert browser.find_element(By.ID, "feed").get_attribute("aria-live") == "polite"

    shot = tmp_path / "dashboard.png"
    assert browser.save_screenshot(str(shot))
    keep = REPO_ROOT / ".run" / "dashboard.png"
    keep.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, keep)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_dashboard_says_so_when_the_broker_is_unreachable(browser, tmp_path):
    port = free_port()
    nobody = f"127.0.0.1:{free_port()}"  # nothing listens there
    proc = start_dashboard({"KAFKA_BOOTSTRAP_SERVERS": nobody}, port, tmp_path / "dashboard.log")
    try:
        await asyncio.get_running_loop().run_in_executor(None, wait_dashboard, dashboard_url(port), 60.0, proc)
        browser.get(dashboard_url(port))
        await shows(browser, "feed", "Feed: broker unreachable")
        await table_has(browser, "services", "Consumer groups not reachable.")
        assert proc.poll() is None, "the dashboard gave up instead of waiting for the broker"
    finally:
        terminate(proc)
