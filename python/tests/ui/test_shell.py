"""The web UI in headless Chromium (Debian's, driven by Playwright): the shell loads, navigation
by lifecycle stage works, and the browser console stays clean."""

STAGES = {
    "data": "Datasets", "label": "Labeling", "experiments": "Experiments", "tune": "Tuning",
    "pipelines": "Pipelines", "models": "Models", "serving": "Serving", "monitoring": "Monitoring",
}
BUILT = {"experiments", "data", "models", "tune"}

from harness import wait_until


def test_shell_loads_and_navigates(page, sqlite_server):
    page.goto(sqlite_server.url + "/")
    page.wait_for_selector("main h1")
    assert page.title() == "Overview · Slipway"
    assert page.inner_text("main h1") == "The lifecycle"
    assert page.locator(".cards .card").count() == len(STAGES)
    wait_until(page, "document.getElementById('server-status').textContent === 'ready'")

    for stage, title in STAGES.items():
        page.click(f"nav a[data-stage={stage}]")
        wait_until(page, f"location.hash === '#/{stage}'")
        page.wait_for_selector(f"main h1:has-text('{title}')")
        assert ("not built yet" in page.inner_text("main")) == (stage not in BUILT), stage
        assert page.get_attribute(f"nav a[data-stage={stage}]", "class") == "active"
        assert page.title() == f"{title} · Slipway"

    # A built part of a stage that is not: Endpoints, listed under Serving.
    page.click("nav a[data-stage=serving]")
    page.click("main p.already a:has-text('Endpoints')")
    wait_until(page, "location.hash === '#/endpoints'")
    page.wait_for_selector("main h1:has-text('Endpoints')")
    assert "not built yet" not in page.inner_text("main")
    assert "active" in page.get_attribute("nav a[data-stage=endpoints]", "class").split()
    assert page.title() == "Endpoints · Slipway"

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
    from harness import Server

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
