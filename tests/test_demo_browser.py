"""The demo in a real browser: the system Chromium (headless) against a real uvicorn.

The landing page provisions two tenants through its form; their dashboards then run side by
side in two windows. A hostile note posted in one appears, as text, in that tenant's live feed
(over the WebSocket) and never in the other's. Screenshots of the landing page, both dashboards
and the two side by side are saved under the test's ``tmp_path``.

Needs Debian's ``chromium`` and ``chromium-driver`` (``scripts/test`` installs them). Without
them the test skips, except in CI (``CI`` set), where it fails.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest

from omnitenant_async import use_master_db
from omnitenant_async.testing import drop_test_tenant
from omnitenant_async.utils import get_tenant_model

from .conftest import Server

pytestmark = pytest.mark.e2e

# (tenant id, name): the name is hostile too; the landing page must show it as text.
LEFT = ("browser-left", "<i>Left</i> & Co")
RIGHT = ("browser-right", "Right Inc")
HOSTILE = '<script>alert(1)</script><img src=x onerror="window.__pwned=1;alert(2)">'
WAIT = 15  # seconds any one thing may take to show up

# Everything the page's own script inserts goes through textContent; these find what it shows.
TEXTS_JS = "return [...document.querySelectorAll(arguments[0])].map((e) => e.textContent);"
INJECTED_JS = """return {
  imgs: document.querySelectorAll("img, iframe").length,
  scripts: document.querySelectorAll("script").length,
  pwned: window.__pwned === undefined ? null : window.__pwned,
};"""
# Two screenshots side by side on one canvas, in the browser (no imaging library needed).
SIDE_BY_SIDE_JS = """
const [left, right, done] = arguments;
const load = (b64) => new Promise((ok, fail) => {
  const img = new Image(); img.onload = () => ok(img); img.onerror = fail;
  img.src = "data:image/png;base64," + b64;
});
Promise.all([load(left), load(right)]).then(([a, b]) => {
  const gap = 16, canvas = document.createElement("canvas");
  canvas.width = a.width + gap + b.width; canvas.height = Math.max(a.height, b.height);
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#111827"; ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(a, 0, 0); ctx.drawImage(b, a.width + gap, 0);
  done(canvas.toDataURL("image/png").split(",")[1]);
}, (err) => done("error: " + err));
"""


def unavailable(reason: str) -> NoReturn:
    """Skip on a developer's machine; in CI a missing browser is a failure, not a skip."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: the browser test must run here)")
    pytest.skip(f"{reason}; `scripts/test` installs it (apt-get install chromium chromium-driver)")


def find_chromium() -> tuple[str, str]:
    """The Chromium binary and its chromedriver (OMNITENANT_CHROMIUM/..._CHROMEDRIVER override)."""
    binary = os.environ.get("OMNITENANT_CHROMIUM") or next(
        filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None
    )
    driver = os.environ.get("OMNITENANT_CHROMEDRIVER") or shutil.which("chromedriver")
    if binary is None:
        unavailable("Chromium is not installed (no chromium on PATH)")
    if driver is None:
        unavailable("chromedriver is not installed (Debian package chromium-driver)")
    return binary, driver


def drop_tenants(*tenant_ids: str) -> None:
    """Drop what the test provisioned (rows, schemas, domains); ids never made are skipped."""
    with use_master_db():
        rows = list(get_tenant_model().objects.filter(tenant_id__in=tenant_ids))
    for row in rows:
        drop_test_tenant(row)


@pytest.fixture
def demo_server(django_db: None) -> Iterator[Server]:
    """The demo under uvicorn, with the in-memory channel layer (one process, nothing shared)."""
    server = Server("demo.asgi:application", env={"OMNITENANT_REDIS_URL": ""})
    try:
        yield server
    finally:
        server.stop()
        drop_tenants(LEFT[0], RIGHT[0])


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        unavailable("selenium is not installed in this venv (pip install -e '.[test]')")
    binary, driver_path = find_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in containers and CI
        "--disable-dev-shm-usage",
        "--no-proxy-server",  # *.localhost must reach our server, not a proxy
        "--disable-extensions",
        "--no-first-run",
        "--window-size=1280,900",
        "--force-device-scale-factor=1",
        "--lang=en-US",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(driver_path, log_output=str(tmp_path / "chromedriver.log"))
    try:
        driver = webdriver.Chrome(options=options, service=service)
    except Exception as err:  # a broken install: say so instead of a driver traceback
        why = " ".join(str(err).split("Stacktrace:")[0].split())
        unavailable(f"Chromium ({binary}) does not start under {driver_path}: {why}")
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: Any, condition: Any, what: str) -> Any:
    """Poll ``condition`` until it is truthy; an element of the page being left counts as no."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    ignored = (StaleElementReferenceException,)
    return WebDriverWait(driver, WAIT, poll_frequency=0.05, ignored_exceptions=ignored).until(
        condition, message=what
    )


def texts(driver: Any, selector: str) -> list[str]:
    return list(driver.execute_script(TEXTS_JS, selector))


def assert_nothing_injected(driver: Any) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    found = driver.execute_script(INJECTED_JS)
    assert found == {"imgs": 0, "scripts": 1, "pwned": None}, found
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert  # noqa: B018 (the property raises when there is no alert)


def browser_problems(driver: Any) -> list[str]:
    """CSP violations and uncaught errors the page logged (none if nothing was injected)."""
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if "Content Security Policy" in entry["message"] or "Uncaught" in entry["message"]
    ]


def create_tenant(driver: Any, tenant_id: str, name: str) -> None:
    from selenium.webdriver.common.by import By

    form = driver.find_element(By.CSS_SELECTOR, "#create form")
    form.find_element(By.NAME, "tenant_id").clear()
    form.find_element(By.NAME, "tenant_id").send_keys(tenant_id)
    form.find_element(By.NAME, "name").clear()
    form.find_element(By.NAME, "name").send_keys(name)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()


def open_dashboard(driver: Any, url: str, *, navigate: bool = True) -> None:
    """Open ``url`` (or wait for the navigation under way) until its feed is live."""
    from selenium.webdriver.common.by import By

    if navigate:
        driver.get(url)
    else:
        wait(driver, lambda d: d.current_url == url, f"did not navigate to {url}")
    status = driver.find_element(By.ID, "feed-status")
    wait(driver, lambda d: status.get_attribute("data-state") == "live", f"{url}: feed not live")
    # The server's hello names the tenant the socket belongs to.
    wait(driver, lambda d: texts(d, "#feed .text"), f"{url}: no hello on the feed")


def post_note(driver: Any, text: str) -> None:
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.CSS_SELECTOR, "#note-form input[name=text]")
    box.send_keys(text)
    driver.find_element(By.CSS_SELECTOR, "#note-form button[type=submit]").click()
    wait(driver, lambda d: box.get_attribute("value") == "", "the note form was not cleared")


def screenshot(driver: Any, path: Path) -> str:
    png = driver.get_screenshot_as_png()
    path.write_bytes(png)
    return base64.b64encode(png).decode()


def test_two_tenants_side_by_side(browser: Any, demo_server: Server, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    port = demo_server.port
    landing = f"http://localhost:{port}/"

    # -- The landing page: a bad id is a form error; two good ones are provisioned, timed. ----
    browser.get(landing)
    assert browser.find_element(By.TAG_NAME, "h1").text == "One deployment, many tenants"
    create_tenant(browser, "Not_A_Label!", "x")
    errors = wait(
        browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#create .errorlist"), "no error"
    )
    assert "is not a valid DNS label" in errors[0].text
    assert browser.find_elements(By.CSS_SELECTOR, ".messages li") == []  # nothing created
    for tenant_id, name in (LEFT, RIGHT):
        create_tenant(browser, tenant_id, name)
        message = wait(
            browser,
            lambda d, tid=tenant_id: [
                m.text for m in d.find_elements(By.CSS_SELECTOR, ".messages li") if tid in m.text
            ],
            f"no confirmation for {tenant_id}",
        )[0]
        assert re.fullmatch(
            rf"Tenant '{tenant_id}' provisioned in \d+ ms: (migrated|cloned)( \(.*\))?\.", message
        ), message
        row = browser.find_element(By.CSS_SELECTOR, f"tr[data-tenant='{tenant_id}']")
        assert row.get_attribute("class") == "created"
        assert row.find_element(By.CSS_SELECTOR, ".tenant-name").text == name  # as text
    assert browser.find_elements(By.CSS_SELECTOR, "i") == []  # the name's <i> stayed text
    screenshot(browser, tmp_path / "landing.png")

    # -- Two dashboards side by side: the left one opened from the landing page's link. -------
    left_url = f"http://{LEFT[0]}.localhost:{port}/"
    right_url = f"http://{RIGHT[0]}.localhost:{port}/"
    link = browser.find_element(By.CSS_SELECTOR, f"tr[data-tenant='{LEFT[0]}'] a.dashboard-link")
    assert link.get_attribute("href") == left_url
    left = browser.current_window_handle
    browser.set_window_rect(x=0, y=0, width=800, height=1000)
    link.click()
    open_dashboard(browser, left_url, navigate=False)
    browser.switch_to.new_window("window")
    right = browser.current_window_handle
    browser.set_window_rect(x=800, y=0, width=800, height=1000)
    open_dashboard(browser, right_url)
    for handle, (tenant_id, _) in ((left, LEFT), (right, RIGHT)):
        browser.switch_to.window(handle)
        assert texts(browser, "#feed .text") == [f"connected: the server says tenant {tenant_id}"]
        assert browser.find_element(By.ID, "who-tenant").text == tenant_id
        assert browser.find_element(By.ID, "who-schema").text == tenant_id
        assert browser.find_element(By.ID, "who-pid").text.isdigit()

    # -- A hostile note in the left tenant: live in its feed, as text, nothing injected. ------
    browser.switch_to.window(left)
    post_note(browser, HOSTILE)
    wait(browser, lambda d: texts(d, "#feed li[data-id] .text"), "the note never reached the feed")
    assert_nothing_injected(browser)
    assert texts(browser, "#feed li[data-id] .text") == [HOSTILE]  # literally, as text
    assert HOSTILE in texts(browser, "#notes .text")  # the notes list is updated live too
    # A note from another client (the JSON API) arrives on the open page as well.
    api = httpx.post(
        f"{demo_server.url}/notes/",
        json={"text": "posted through the API"},
        headers={"host": f"{LEFT[0]}.localhost:{port}"},
    )
    assert api.status_code == 201, api.text
    wait(browser, lambda d: "posted through the API" in texts(d, "#feed .text"), "API note")

    # -- The right tenant: its own note arrives, the left tenant's never do. ------------------
    browser.switch_to.window(right)
    post_note(browser, "only for the right tenant")
    wait(browser, lambda d: "only for the right tenant" in texts(d, "#feed .text"), "own note")
    seen = texts(browser, "#feed .text") + texts(browser, "#notes .text")
    assert HOSTILE not in seen and "posted through the API" not in seen
    assert "<img" not in browser.find_element(By.TAG_NAME, "body").text
    assert_nothing_injected(browser)
    right_png = screenshot(browser, tmp_path / "dashboard-right.png")

    browser.switch_to.window(left)
    assert "only for the right tenant" not in texts(browser, "#feed .text")
    left_png = screenshot(browser, tmp_path / "dashboard-left.png")
    # Reloaded, the server renders the note from the database: escaped, still plain text.
    browser.refresh()
    open_dashboard(browser, left_url, navigate=False)
    assert_nothing_injected(browser)
    assert HOSTILE in texts(browser, "#notes .text"), "the note is not on the page"
    for handle in (left, right):
        browser.switch_to.window(handle)
        assert browser_problems(browser) == []

    # -- One picture of the two, side by side. -------------------------------------------------
    browser.switch_to.new_window("tab")
    combined = browser.execute_async_script(SIDE_BY_SIDE_JS, left_png, right_png)
    assert not combined.startswith("error"), combined
    (tmp_path / "side-by-side.png").write_bytes(base64.b64decode(combined))
    for name in ("landing", "dashboard-left", "dashboard-right", "side-by-side"):
        assert (tmp_path / f"{name}.png").read_bytes().startswith(b"\x89PNG"), name
    assert "Traceback" not in demo_server.output(), demo_server.output()
