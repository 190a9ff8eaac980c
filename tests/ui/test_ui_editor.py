"""The job editor: cron preview as you type, inline syntax errors, the debug console,
and editing a saved job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from uikit import create_job, set_script

pytestmark = pytest.mark.browser


def test_cron_preview_follows_the_expression_and_names_the_bad_field(page: Any, screenshots: Path) -> None:
    page.goto("/#/jobs/new")
    desc = page.locator("#cron-desc")
    fires = page.locator("#cron-next li")
    expect(desc).not_to_be_empty()
    expect(fires).to_have_count(5)
    before = desc.inner_text()
    first_before = fires.first.inner_text()

    page.fill("#job-cron", "0 0 8 ? * MON")  # the original's example: Mondays 08:00:00
    expect(desc).not_to_have_text(before)
    expect(fires).to_have_count(5)
    expect(fires.first).not_to_have_text(first_before)
    for text in fires.all_inner_texts():
        assert "08:00:00" in text, text
    expect(page.locator("#cron-zone")).to_contain_text("UTC")

    # The next fires are listed in the job's time zone.
    page.fill("#job-timezone", "Asia/Tokyo")
    expect(page.locator("#cron-zone")).to_contain_text("Asia/Tokyo")
    expect(fires).to_have_count(5)
    for text in fires.all_inner_texts():
        assert "08:00:00" in text and "GMT+9" in text, text

    # An invalid expression shows the server's error, naming the field, next to the input.
    page.fill("#job-cron", "61 * * * *")
    error = page.locator("#job-cron-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("minute")
    expect(page.locator("#job-cron")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#cron-preview")).to_be_hidden()
    page.screenshot(path=screenshots / "flow-cron-invalid.png")

    # Fixing it clears the error; a bad time zone is pointed at in its own field.
    page.fill("#job-timezone", "Mars/Olympus")
    page.fill("#job-cron", "@every 30s")
    expect(error).to_be_hidden()
    expect(page.locator("#job-cron")).not_to_have_attribute("aria-invalid", "true")
    expect(page.locator("#job-timezone-error")).to_contain_text("timezone")
    page.fill("#job-timezone", "")
    expect(page.locator("#job-timezone-error")).to_be_hidden()
    expect(page.locator("#cron-preview")).to_be_visible()
    expect(fires).to_have_count(5)


def test_syntax_errors_are_shown_inline(page: Any) -> None:
    page.goto("/#/jobs/new")
    expect(page.locator(".cm-content .tok-keyword").first).to_be_visible()  # highlighted JavaScript
    set_script(page, 'const x = 1;\nconsole.log("a" x);\n')
    status = page.locator("#syntax-status")
    expect(status).to_contain_text("Syntax error, line 2, column 17")
    expect(page.locator(".cm-lintRange-error")).to_have_count(1)
    expect(page.locator(".cm-gutter-lint .cm-lint-marker-error")).to_have_count(1)
    set_script(page, "async function main() { await 1 }\nawait main();\n")
    expect(status).to_have_text("Syntax OK")
    expect(page.locator(".cm-lintRange-error")).to_have_count(0)


def test_debug_console_streams_lines_then_status(page: Any, screenshots: Path) -> None:
    page.goto("/#/jobs/new")
    set_script(page, "\n".join([
        'console.log("first line");',
        'console.info("some info", 42);',
        'console.warn("careful");',
        'console.error("bad thing");',
        'console.log("last line");',
    ]))
    page.click("#debug-run")
    lines = page.locator("#debug-output li.line")
    expect(lines).to_have_count(5)
    expect(lines.nth(0)).to_contain_text("first line")
    expect(page.locator("#debug-output .lvl-info .msg")).to_have_text("some info 42")
    expect(page.locator("#debug-output .lvl-warn .msg")).to_have_text("careful")
    expect(page.locator("#debug-output .lvl-error .msg")).to_have_text("bad thing")
    status = page.locator("#debug-status")
    expect(status.locator(".badge")).to_have_text("success")
    expect(status).to_contain_text(" in ")
    colours = page.eval_on_selector_all(
        "#debug-output li.line .msg", "els => els.map(e => getComputedStyle(e).color)")
    assert len(set(colours)) >= 4, colours  # log, info, warn and error differ
    page.locator(".debug-card").screenshot(path=screenshots / "flow-debug-success.png")

    # A failing script: its lines, then the error with its message.
    set_script(page, 'console.log("before");\nthrow new Error("boom from the test");\n')
    page.keyboard.press("Control+Enter")
    expect(lines).to_have_count(1)
    expect(status.locator(".badge")).to_have_text("error")
    expect(status.locator("pre")).to_contain_text("boom from the test")

    # Nothing was stored: the debug runs left no job behind.
    expect(page.locator("#editor-title")).to_have_text("New timing job")


def test_debug_console_can_stop_a_long_script(page: Any) -> None:
    page.goto("/#/jobs/new")
    set_script(page, 'console.log("started");\nsetTimeout(() => console.log("never"), 20000);\n')
    page.click("#debug-run")
    expect(page.locator("#debug-output li.line")).to_have_count(1)
    expect(page.locator("#debug-stop")).to_be_enabled()
    page.click("#debug-stop")
    expect(page.locator("#debug-status .badge")).to_have_text("stopped")
    expect(page.locator("#debug-run")).to_be_enabled()


def test_edit_a_saved_job(page: Any, api: httpx.Client, unique: str) -> None:
    job = create_job(api, name=f"edit-{unique}", cron="0 0 * * *", script='console.log("v1")', retries=1)
    page.goto(f"/#/jobs/{job['jobId']}")
    expect(page.locator("#editor-title")).to_have_text(f"edit-{unique}")
    expect(page.locator("#job-cron")).to_have_value("0 0 * * *")
    expect(page.locator("#job-retries")).to_have_value("1")
    expect(page.locator(".cm-content")).to_contain_text('console.log("v1")')
    expect(page.locator("#job-enabled")).not_to_be_checked()

    page.fill("#job-name", f"edited-{unique}")
    page.fill("#job-cron", "*/10 * * * *")
    page.fill("#job-timeout", "5")
    page.fill("#job-memory", "32")
    page.select_option("#job-overlap", "skip")
    page.select_option("#job-misfire", "all")
    page.fill("#job-timezone", "Europe/Paris")
    set_script(page, 'console.log("v2")')
    expect(page.locator(".dirty-mark")).to_be_visible()
    page.keyboard.press("Control+S")
    expect(page.locator(".toast").last).to_contain_text("Saved")
    expect(page.locator(".dirty-mark")).to_be_hidden()

    saved = api.get(f"/api/v1/jobs/{job['jobId']}").json()["data"]
    assert saved["name"] == f"edited-{unique}"
    assert saved["cron"] == "*/10 * * * *"
    assert saved["timeout"] == 5 and saved["memoryLimit"] == 32
    assert saved["overlap"] == "skip" and saved["misfire"] == "all"
    assert saved["timezone"] == "Europe/Paris"
    assert saved["script"] == 'console.log("v2")'
    assert saved["state"] == 0

    # Enabling from the editor schedules it.
    page.locator("#job-enabled").check()
    page.click("#save-job-top")
    expect(page.locator("#job-state")).to_have_text("enabled")
    assert api.get(f"/api/v1/jobs/{job['jobId']}").json()["data"]["state"] == 1

    # A bad value is refused by the server and pointed at.
    page.fill("#job-timeout", "-3")
    page.click("#save-job-top")
    expect(page.locator("#form-error")).to_contain_text("timeout")
    expect(page.locator("#job-timeout-error")).to_be_visible()
    api.post(f"/api/v1/jobs/{job['jobId']}/disable")


def test_leaving_with_unsaved_changes_asks_first(page: Any, api: httpx.Client, unique: str) -> None:
    job = create_job(api, name=f"leave-{unique}", cron="0 0 * * *")
    page.goto(f"/#/jobs/{job['jobId']}")
    expect(page.locator("#editor-title")).to_have_text(f"leave-{unique}")
    page.fill("#job-name", "changed")
    page.get_by_role("link", name="Jobs", exact=True).click()
    dialog = page.locator("dialog[open]")
    expect(dialog).to_contain_text("Discard unsaved changes?")
    dialog.get_by_role("button", name="Cancel").click()
    expect(page.locator("#job-name")).to_have_value("changed")
    assert page.url.endswith(f"#/jobs/{job['jobId']}")
    page.get_by_role("link", name="Jobs", exact=True).click()
    page.locator("dialog[open]").get_by_role("button", name="Discard").click()
    expect(page.locator("#jobs-summary")).to_be_visible()
