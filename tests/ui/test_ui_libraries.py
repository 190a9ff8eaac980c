"""The console's Libraries page, end to end: create a library in the editor and see it
listed, inline syntax errors, a new version in the version list, and deleting a library
that a job still uses (the 409 answer lists the job; "Delete anyway" forces it)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from uikit import create_job, set_script

pytestmark = pytest.mark.browser


def test_create_a_library_and_see_it_listed(page: Any, api: httpx.Client, unique: str, screenshots: Path) -> None:
    name = f"greet-{unique}"
    page.goto("/#/libraries")
    expect(page.locator(".nav a[data-nav=libraries]")).to_have_attribute("aria-current", "page")
    page.click("#new-library")
    expect(page).to_have_url(re.compile(r"#/libraries/new$"))
    expect(page.locator("#library-title")).to_have_text("New library")

    page.fill("#library-name", name)
    expect(page.locator("#library-usage-hint")).to_contain_text(f"require('lib/{name}')")
    set_script(page, "exports.greet = (who) => 'hello ' + ;")
    expect(page.locator("#library-syntax")).to_contain_text("Syntax error, line 1")
    set_script(page, "export function greet(who) { return `hello ${who}`; }\n")
    expect(page.locator("#library-syntax")).to_have_text("Syntax OK")
    page.click("#save-library")

    expect(page).to_have_url(re.compile(rf"#/libraries/{name}$"))
    expect(page.locator("#library-title")).to_have_text(name)
    expect(page.locator("#library-version")).to_have_text("v1")
    stored = api.get(f"/api/v1/libraries/{name}").json()["data"]
    assert stored["version"] == 1 and stored["source"].startswith("export function greet")

    # A second save is a new version, listed first.
    set_script(page, "export function greet(who) { return `hi ${who}`; }\n")
    page.click("#save-library")
    expect(page.locator("#library-version")).to_have_text("v2")
    expect(page.locator("#library-versions li").first).to_contain_text("v2")
    expect(page.locator("#library-versions li")).to_have_count(2)
    page.screenshot(path=screenshots / "library-editor.png", full_page=True)

    # Opening version 1 shows its source; the list page shows the library at v2.
    page.get_by_role("button", name="Open version 1").click()
    expect(page.locator("#library-loaded")).to_contain_text("Showing version 1")
    expect(page.locator(".cm-content")).to_contain_text("hello")

    page.click("a.back")
    expect(page).to_have_url(re.compile(r"#/libraries$"))
    row = page.locator(f"#libraries-table tr[data-library='{name}']")
    expect(row).to_be_visible()
    expect(row).to_contain_text("v2")
    expect(row).to_contain_text(f"require('lib/{name}')")
    page.screenshot(path=screenshots / "libraries-list.png", full_page=True)


def test_deleting_a_used_library_shows_its_users(page: Any, api: httpx.Client, unique: str) -> None:
    name = f"used-{unique}"
    assert api.post("/api/v1/libraries", json={"name": name, "source": "exports.x = 1;"}).status_code == 201
    job = create_job(api, name=f"user-of-{unique}", cron="0 0 1 1 *", script=f"require('lib/{name}')")

    page.goto(f"/#/libraries/{name}")
    expect(page.locator("#library-users")).to_contain_text(f"user-of-{unique}")
    page.click("#delete-library")
    page.get_by_role("dialog").get_by_role("button", name="Delete", exact=True).click()
    dialog = page.locator("#library-in-use")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("1 job(s)")
    expect(dialog.get_by_role("link", name=f"user-of-{unique}")).to_have_attribute(
        "href", f"#/jobs/{job['jobId']}"
    )
    assert api.get(f"/api/v1/libraries/{name}").status_code == 200  # refused so far

    page.click("#delete-anyway")
    expect(page).to_have_url(re.compile(r"#/libraries$"))
    expect(page.locator(".toast").last).to_contain_text("Deleted library")
    assert api.get(f"/api/v1/libraries/{name}").status_code == 404
