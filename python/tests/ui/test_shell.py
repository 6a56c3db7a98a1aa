"""The web UI in headless Chromium (Debian's, driven by Playwright): the shell loads, navigation
by lifecycle stage works, and the browser console stays clean."""

import os
import shutil

import pytest
from playwright.sync_api import sync_playwright


def chromium_path() -> str:
    path = os.environ.get("SLIPWAY_TEST_CHROMIUM") or shutil.which("chromium")
    if not path:
        raise RuntimeError("browser tests need Chromium (apt-get install chromium); scripts/test installs it")
    return path


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=chromium_path(),
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.problems = []
    page.on("console", lambda m: m.type in ("error", "warning") and page.problems.append(f"console {m.type}: {m.text}"))
    page.on("pageerror", lambda e: page.problems.append(f"page error: {e}"))
    yield page
    context.close()


STAGES = {
    "data": "Datasets", "label": "Labeling", "experiments": "Experiments", "tune": "Tuning",
    "pipelines": "Pipelines", "models": "Models", "serving": "Serving", "monitoring": "Monitoring",
}


def test_shell_loads_and_navigates(page, sqlite_server):
    page.goto(sqlite_server.url + "/")
    page.wait_for_selector("main h1")
    assert page.title() == "Overview · Slipway"
    assert page.inner_text("main h1") == "The lifecycle"
    assert page.locator(".cards .card").count() == len(STAGES)
    page.wait_for_function("document.getElementById('server-status').textContent === 'ready'")

    for stage, title in STAGES.items():
        page.click(f"nav a[data-stage={stage}]")
        page.wait_for_function(f"location.hash === '#/{stage}'")
        page.wait_for_selector(f"main h1:has-text('{title}')")
        assert "not built yet" in page.inner_text("main")
        assert page.get_attribute(f"nav a[data-stage={stage}]", "class") == "active"
        assert page.title() == f"{title} · Slipway"

    page.click("nav a[data-stage=jobs]")
    page.wait_for_selector("main h1:has-text('Jobs')")
    assert "No jobs yet" in page.inner_text("main")

    page.click("nav a[data-stage=server]")
    page.wait_for_selector("dl.facts")
    facts = page.inner_text("dl.facts")
    assert "sqlite" in facts and "ready" in facts

    page.click("nav a[data-stage=overview]")
    page.wait_for_selector("main h1:has-text('The lifecycle')")
    assert page.problems == []


def test_jobs_page_lists_jobs(page, sqlite_server):
    from slipway import Slipway

    job = Slipway(sqlite_server.url).submit_job("diagnostic.sleep", {"seconds": 0})
    page.goto(sqlite_server.url + "/#/jobs")
    page.wait_for_selector("table tbody tr")
    row = page.inner_text("table tbody tr")
    assert job["id"][-12:] in row and "diagnostic.sleep" in row
    assert page.problems == []


def test_token_prompt_when_auth_is_on(page):
    from conftest import Server

    s = Server(token="s3cret")
    try:
        page.goto(s.url + "/#/jobs")
        page.wait_for_selector("form.token")
        page.fill("form.token input", "s3cret")
        page.click("form.token button")
        page.wait_for_selector("main h1:has-text('Jobs')")
        # 401s while signed out are expected traffic, not page errors.
        assert [p for p in page.problems if "401" not in p] == []
    finally:
        s.stop()
