"""End to end in a real browser: `streamlit run app.py` on loopback, driven by headless Debian
Chromium through Playwright.

Opens a deep link first on a freshly started server (the `pages/` folder must give it the same
frame and gate as the home page), then every page, uploads a CSV on the Data page and runs a
simulation. Saves a screenshot of each page under test-artifacts/screenshots/ and logs each
page's first-render time to test-artifacts/first-render.txt.

Needs /usr/bin/chromium (or $CHROMIUM_PATH): without it the test is skipped, except in CI
(CI=true), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from walleta.catalog import PRICE_COLUMNS, load_catalog
from walleta.demo import build_demo
from walleta.store import open_store

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
SHOTS = ARTIFACTS / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# (url path, title shown, screenshot name)
PAGES = [
    ("", "Overview", "overview"),
    ("Customers", "Customers", "customers"),
    ("Features_and_models", "Features & models", "features-and-models"),
    ("Trends", "Trends", "trends"),
    ("Pricing_simulator", "Pricing simulator", "pricing-simulator"),
    ("Reconciliation", "Reconciliation", "reconciliation"),
    ("Data", "Data", "data"),
    ("Prices", "Prices", "prices"),
]
USAGE_CSV = ROOT / "data" / "samples" / "usage.csv"


def _chromium() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    message = (
        f"Chromium not found at {CHROMIUM}: install Debian's package (`apt-get install -y chromium`) "
        "or set CHROMIUM_PATH to run the browser test"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError(f"streamlit did not become healthy in {timeout}s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A freshly started `streamlit run app.py` on a demo database; yields its base URL."""
    _chromium()
    folder = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{folder / 'demo.db'}"
    store = open_store(url)
    build_demo(store, load_catalog())
    store.close()
    overrides = folder / "prices.override.csv"
    overrides.write_text(",".join(PRICE_COLUMNS) + "\n")
    port = _free_port()
    env = {
        **os.environ,
        "WALLETA_DATABASE_URL": url,
        "WALLETA_DEMO_DATABASE_URL": url,
        "WALLETA_PRICE_OVERRIDES": str(overrides),
    }
    env.pop("WALLETA_APP_PASSWORD", None)
    log = folder / "streamlit.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "streamlit", "run", "app.py",
                "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
                "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
            ],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, proc, log)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        server_log = log.read_text()
        assert "Traceback" not in server_log, server_log[-4000:]


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), headless=True, args=LAUNCH_ARGS)
        yield browser
        browser.close()


def wait_for_run(page, timeout: float = 30_000) -> None:
    """Wait until the script run finished (Streamlit's own e2e helper does the same) and every
    element has drawn (no loading skeleton left)."""
    page.wait_for_timeout(200)
    page.locator("[data-testid='stApp'][data-test-script-state='notRunning']").wait_for(state="attached", timeout=timeout)
    wait_for_drawn(page, timeout)


def wait_for_drawn(page, timeout: float = 30_000) -> None:
    """Wait until no element shows its loading skeleton (charts and grids load their code lazily)."""
    page.wait_for_function("() => document.querySelectorAll('[data-testid=stSkeleton]').length === 0", timeout=timeout)
    page.wait_for_timeout(100)


def open_and_time(page, url: str, title: str) -> float:
    """Go to `url`, wait for its title and the end of the script run; seconds to first render."""
    started = time.perf_counter()
    page.goto(url)
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=30_000)
    wait_for_run(page)
    return time.perf_counter() - started


def assert_no_error(page) -> None:
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.get_by_text("Something went wrong").count() == 0


def shoot(page, name: str) -> None:
    """A screenshot of the whole page: Streamlit scrolls inside its main block, so the window is
    made as tall as that block first."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    height = page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(int(height) + 40, 8000))})
    page.wait_for_timeout(300)
    wait_for_drawn(page)
    page.screenshot(path=str(SHOTS / f"{name}.png"))
    page.set_viewport_size(size)


def test_every_page_deep_link_upload_and_simulation(server, browser):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    timings: dict[str, float] = {}

    # 1. Deep link first, on the freshly started server: same frame (menu, source) as home.
    timings["Customers (deep link, fresh server)"] = open_and_time(page, f"{server}/Customers", "Customers")
    sidebar = page.get_by_test_id("stSidebar")
    assert sidebar.get_by_text("Walleta").first.is_visible()
    assert sidebar.get_by_role("link", name="Pricing simulator").is_visible()
    assert sidebar.get_by_text("Database").first.is_visible()
    assert_no_error(page)

    # 2. Every page, each opened fresh; time the first render and keep a screenshot.
    for path, title, shot in PAGES:
        label = title if path != "Customers" else "Customers (again)"
        timings[label] = open_and_time(page, f"{server}/{path}", title)
        assert_no_error(page)
        shoot(page, shot)

    # 3. A simulation: add two example designs, compare them with today, solve for a price.
    timings["Pricing simulator (run)"] = _simulate(page, server)
    shoot(page, "pricing-simulator-results")

    # 4. Upload a usage CSV into this session's memory store and see it imported.
    timings["Data (upload and import)"] = _upload(page, server)

    # 5. Menu navigation keeps the session (and the period chosen).
    page.goto(server)
    wait_for_run(page)
    page.get_by_test_id("stSidebar").get_by_role("link", name="Prices").click()
    page.get_by_role("heading", name="Prices", exact=True).wait_for()
    wait_for_run(page)
    assert_no_error(page)

    _log_timings(timings)
    page.close()


def _simulate(page, server: str) -> float:
    open_and_time(page, f"{server}/Pricing_simulator", "Pricing simulator")
    page.get_by_role("tab", name="Examples").click()
    examples = page.locator(".st-key-sim_examples")
    for name in ("Credits", "Pay as you go, cost plus 60%"):
        examples.locator("input").first.click()
        page.keyboard.type(name)
        page.keyboard.press("Enter")
        wait_for_run(page)
    page.keyboard.press("Escape")
    started = time.perf_counter()
    page.locator(".st-key-sim_add_examples button").click()
    page.get_by_role("heading", name="One design in detail").wait_for(timeout=30_000)
    wait_for_run(page)
    elapsed = time.perf_counter() - started
    assert page.get_by_text("Today (actual revenue)").count() >= 1
    page.get_by_role("tab", name="Target-margin solver").click()
    page.locator(".st-key-sim_solve button").click()
    page.get_by_text("Break-even").first.wait_for(timeout=30_000)
    wait_for_run(page)
    assert_no_error(page)
    return elapsed


def _upload(page, server: str) -> float:
    open_and_time(page, f"{server}/Data", "Data")
    page.get_by_text("Uploaded CSVs only", exact=True).click()
    wait_for_run(page)
    page.locator(".st-key-data_uploads input[type=file]").set_input_files(str(USAGE_CSV))
    wait_for_run(page)
    started = time.perf_counter()
    page.locator(".st-key-data_import button").click()
    page.get_by_text("Rows read").first.wait_for(timeout=30_000)
    wait_for_run(page)
    elapsed = time.perf_counter() - started
    assert page.get_by_text("usage.csv").first.is_visible()
    assert_no_error(page)
    shoot(page, "data-upload")
    # The other pages now read the uploaded file: the Overview shows its month.
    page.get_by_test_id("stSidebar").get_by_role("link", name="Overview").click()
    page.get_by_role("heading", name="Overview", exact=True).wait_for()
    wait_for_run(page)
    assert page.get_by_text("Uploaded CSVs only").first.is_visible()
    assert page.get_by_text("Oct 2025").first.is_visible()
    assert_no_error(page)
    shoot(page, "overview-uploaded")
    return elapsed


def _log_timings(timings: dict[str, float]) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    lines = [f"{name:<40} {seconds:6.2f} s" for name, seconds in timings.items()]
    (ARTIFACTS / "first-render.txt").write_text("First render per page (browser, demo data)\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))
