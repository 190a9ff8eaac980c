"""Screenshots of every page, light and dark, desktop and phone, saved under
test-artifacts/screenshots/ on every run; plus the theme toggle and the layout on a phone."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from playwright.sync_api import expect

from uikit import create_job, new_page

pytestmark = pytest.mark.browser

FLAKY = """// Fails one second in three, so the charts have both colours.
const second = new Date().getSeconds();
console.log("checking the status page", { second });
if (second % 3 === 0) {
  console.warn("slow answer");
  throw new Error("status page answered 503");
}
console.info("all good");
"""


@pytest.fixture(scope="module")
def showcase(api: httpx.Client) -> Iterator[dict[str, Any]]:
    flaky = create_job(api, name="Ping the status page", description="Every second; fails one time in three",
                       cron="* * * * * *", script=FLAKY, enabled=True, timeout=5, retries=0)
    create_job(api, name="Nightly report", description="Mails the numbers of the day", cron="0 30 2 * * *",
               timezone="Europe/Paris", enabled=True)
    create_job(api, name="Weekly clean-up", cron="0 0 8 ? * MON", overlap="skip")
    create_job(api, name="Say happy new year", execType=1, execAt=4102444800, enabled=True,
               script='console.log("happy new year")')
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        runs = api.get("/api/v1/runs", params={"jobId": flaky["jobId"]}).json()
        if runs["total"] >= 4 and any(r["status"] != "success" for r in runs["data"]):
            break
        time.sleep(0.5)
    try:
        yield flaky
    finally:
        api.post(f"/api/v1/jobs/{flaky['jobId']}/disable")


def shoot(page: Any, folder: Path, name: str, *, full_page: bool = True, dark_full_page: bool | None = None) -> None:
    """Save the page in both themes (switching the emulated system preference in place)."""
    for theme in ("light", "dark"):
        page.emulate_media(color_scheme=theme)
        whole = full_page if theme == "light" or dark_full_page is None else dark_full_page
        page.screenshot(path=folder / f"{name}-{theme}.png", full_page=whole)
    page.emulate_media(color_scheme="light")


def test_screenshots_of_every_page(browser: Any, ui_server: Any, showcase: dict[str, Any], screenshots: Path) -> None:
    context, page, errors = new_page(browser, ui_server.url)
    try:
        page.goto("/#/dashboard")
        expect(page.locator("#stat-jobs")).not_to_have_text("0")
        expect(page.locator("#dash-chart svg rect").first).to_be_visible()
        expect(page.locator("#dash-next li a").first).to_be_visible()
        shoot(page, screenshots, "dashboard")

        page.goto("/#/jobs")
        expect(page.locator(".jobs-table tbody tr").first).to_be_visible()
        expect(page.locator(".col-last .badge").first).to_be_visible()
        shoot(page, screenshots, "jobs")

        page.goto(f"/#/jobs/{showcase['jobId']}")
        expect(page.locator("#editor-title")).to_have_text("Ping the status page")
        expect(page.locator("#cron-next li")).to_have_count(5)
        expect(page.locator(".runs-card tbody tr .badge").first).to_be_visible()
        shoot(page, screenshots, "editor")

        page.click("#debug-run")
        expect(page.locator("#debug-status .badge")).not_to_have_text("running")
        page.locator(".debug-card").scroll_into_view_if_needed()
        shoot(page, screenshots, "debug-console", full_page=False)

        page.goto("/#/runs")
        expect(page.locator("#runs-table tbody tr").first).to_be_visible()
        expect(page.locator("#chart-runs svg rect").first).to_be_visible()
        shoot(page, screenshots, "runs")

        page.locator("#runs-table tbody tr[data-status=error] a.run-link").first.click()
        expect(page.locator("#run-error")).to_contain_text("503")
        shoot(page, screenshots, "run-detail")
    finally:
        context.close()
    assert not errors.errors, errors.errors


def test_phone_layout_has_no_horizontal_overflow(browser: Any, ui_server: Any, showcase: dict[str, Any],
                                                  screenshots: Path) -> None:
    context, page, errors = new_page(browser, ui_server.url, viewport={"width": 390, "height": 844},
                                     is_mobile=True, has_touch=True)
    try:
        for name, route, ready in [
            ("dashboard", "/#/dashboard", "#dash-chart svg"),
            ("jobs", "/#/jobs", ".jobs-table tbody tr"),
            ("editor", f"/#/jobs/{showcase['jobId']}", "#cron-next li"),
            ("runs", "/#/runs", "#runs-table tbody tr"),
        ]:
            page.goto(route)
            expect(page.locator(ready).first).to_be_visible()
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{name}: the page is {overflow}px wider than a phone"
            shoot(page, screenshots, f"{name}-phone", dark_full_page=False)
    finally:
        context.close()
    assert not errors.errors, errors.errors


def test_theme_toggle_overrides_the_system_and_persists(page: Any) -> None:
    page.goto("/#/dashboard")
    background = "getComputedStyle(document.body).backgroundColor"
    light = page.evaluate(background)
    toggle = page.locator("#theme-toggle")
    expect(toggle).to_have_attribute("aria-label", "Switch to the dark theme")
    toggle.click()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    dark = page.evaluate(background)
    assert dark != light
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    assert page.evaluate(background) == dark
    page.keyboard.press("t")  # the keyboard shortcut
    expect(page.locator("html")).to_have_attribute("data-theme", "light")


def test_keyboard_shortcuts_navigate(page: Any) -> None:
    page.goto("/#/dashboard")
    expect(page.locator("h1")).to_have_text("Dashboard")
    page.keyboard.press("g")
    page.keyboard.press("j")
    expect(page.locator("h1")).to_have_text("Jobs")
    page.keyboard.press("/")
    expect(page.locator("#job-search")).to_be_focused()
    page.keyboard.press("Escape")
    # Leave the search field (the body's centre may be the field itself when the list is short).
    page.locator("h1").click()
    page.keyboard.press("n")
    expect(page.locator("#editor-title")).to_have_text("New timing job")
    expect(page.locator("#job-name")).to_be_focused()
