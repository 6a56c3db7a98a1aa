"""Browser fixtures: Debian's headless Chromium driven by Playwright, one page per test, with
every console error and page error collected in `page.problems`."""

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



