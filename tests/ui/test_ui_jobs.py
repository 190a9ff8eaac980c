"""The console's job flows, end to end: create timing and delay jobs in the editor,
see a job fire in the runs view, delete with confirmation, paginate and search the
list, switch a job on and off and run it now."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import expect


from uikit import JOB_URL, create_job, job_id_from_url, new_page, set_script

pytestmark = pytest.mark.browser


def test_create_timing_job_in_editor_and_see_it_fire(page: Any, api: httpx.Client, unique: str, screenshots: Path) -> None:
    name = f"every-second-{unique}"
    page.goto("/#/jobs/new")
    expect(page.locator("#editor-title")).to_have_text("New timing job")
    page.fill("#job-name", name)
    page.fill("#job-cron", "* * * * * *")
    expect(page.locator("#cron-desc")).to_contain_text("second", ignore_case=True)
    set_script(page, f'console.log("tick from {unique}");')
    expect(page.locator("#syntax-status")).to_have_text("Syntax OK")
    expect(page.locator("#job-enabled")).to_be_checked()
    page.click("#save-job-top")

    expect(page).to_have_url(JOB_URL)
    job_id = job_id_from_url(page.url)
    expect(page.locator("#editor-title")).to_have_text(name)
    expect(page.locator("#job-state")).to_have_text("enabled")
    job = api.get(f"/api/v1/jobs/{job_id}").json()["data"]
    assert job["cron"] == "* * * * * *" and job["state"] == 1 and job["execType"] == 0
    assert job["script"] == f'console.log("tick from {unique}");'

    try:
        # The runs view of this job refreshes itself: a success run appears within 10 s.
        page.click("#job-runs-link")
        expect(page).to_have_url(re.compile(r"#/runs\?job="))
        expect(page.locator("#runs-title")).to_have_text(f"Runs of {name}")
        success = page.locator("#runs-table tbody tr[data-status=success]").first
        expect(success).to_be_visible(timeout=10_000)
        page.screenshot(path=screenshots / "flow-timing-job-runs.png", full_page=True)

        # One run's page shows its captured console output.
        success.locator("a.run-link").click()
        expect(page.locator("#run-output")).to_contain_text(f"tick from {unique}")
        expect(page.locator("#run-output .lvl-log").first).to_be_visible()
    finally:
        api.post(f"/api/v1/jobs/{job_id}/disable")


def test_create_delay_job_with_the_date_time_picker(browser: Any, ui_server: Any, api: httpx.Client, unique: str) -> None:
    # A browser in Berlin: the picker's local time must become the right Unix instant.
    context, page, errors = new_page(browser, ui_server.url, timezone_id="Europe/Berlin")
    try:
        page.goto("/#/jobs/new?type=delay")
        expect(page.locator("#type-delay")).to_be_checked()
        expect(page.locator("#editor-title")).to_have_text("New delay job")
        expect(page.locator("#job-cron")).to_be_hidden()

        berlin = ZoneInfo("Europe/Berlin")
        when = (datetime.now(berlin) + timedelta(days=2)).replace(hour=9, minute=30, second=15, microsecond=0)
        page.fill("#job-name", f"delay-{unique}")
        page.fill("#job-exec-at", when.strftime("%Y-%m-%dT%H:%M:%S"))
        expected = int(when.timestamp())
        expect(page.locator("#exec-at-hint")).to_contain_text(f"Unix {expected}")
        page.click("#save-job-top")

        expect(page).to_have_url(JOB_URL)
        job = api.get(f"/api/v1/jobs/{job_id_from_url(page.url)}").json()["data"]
        assert job["execType"] == 1
        assert job["execAt"] == expected
        assert job["state"] == 1
        assert job["nextExecTime"] is not None
        # The picker shows the saved instant again, in the browser's time.
        expect(page.locator("#job-exec-at")).to_have_value(when.strftime("%Y-%m-%dT%H:%M:%S"))

        # A moment in the past is refused with the server's message next to the field.
        page.fill("#job-exec-at", (datetime.now(berlin) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"))
        page.click("#save-job-top")
        expect(page.locator("#job-exec-at-error")).to_contain_text("future")
        expect(page.locator("#form-error")).to_contain_text("execAt")
        assert api.get(f"/api/v1/jobs/{job['jobId']}").json()["data"]["execAt"] == expected
    finally:
        context.close()
    assert not errors.errors, errors.errors


def test_delete_job_asks_for_confirmation(page: Any, api: httpx.Client, unique: str) -> None:
    job = create_job(api, name=f"delete-me-{unique}", cron="0 0 * * *")
    page.goto(f"/#/jobs?q=delete-me-{unique}")
    row = page.locator(f"tr[data-job-id='{job['jobId']}']")
    expect(row).to_be_visible()

    # Escape cancels: nothing is deleted.
    row.get_by_role("button", name=f"Delete delete-me-{unique}").click()
    dialog = page.locator("dialog[open]")
    expect(dialog).to_contain_text(f"Delete “delete-me-{unique}”?")
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    assert api.get(f"/api/v1/jobs/{job['jobId']}").status_code == 200
    expect(row).to_be_visible()

    # Confirming deletes it.
    row.get_by_role("button", name=f"Delete delete-me-{unique}").click()
    page.locator("dialog[open]").get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0)
    expect(page.locator("#jobs-summary")).to_contain_text("No job matches")
    assert api.get(f"/api/v1/jobs/{job['jobId']}").status_code == 404


def test_delete_from_the_editor_with_enter(page: Any, api: httpx.Client, unique: str) -> None:
    job = create_job(api, name=f"editor-delete-{unique}", cron="0 0 * * *")
    page.goto(f"/#/jobs/{job['jobId']}")
    expect(page.locator("#editor-title")).to_have_text(f"editor-delete-{unique}")
    page.click("#delete-job")
    expect(page.locator("dialog[open]")).to_be_visible()
    page.keyboard.press("Enter")  # the focused button is the confirmation
    expect(page).to_have_url(re.compile(r"#/jobs$"))
    assert api.get(f"/api/v1/jobs/{job['jobId']}").status_code == 404


def test_jobs_list_paginates_searches_filters_and_sorts(page: Any, api: httpx.Client, unique: str, screenshots: Path) -> None:
    prefix = f"bulk-{unique}-"
    for i in range(120):
        fields: dict[str, Any] = {"name": f"{prefix}{i:03d}", "cron": f"{i % 60} 3 * * *"}
        if i % 10 == 0:
            fields = {"name": f"{prefix}{i:03d}", "execType": 1, "execAt": 4102444800}
        create_job(api, **fields)

    page.goto(f"/#/jobs?q={prefix}")
    summary = page.locator("#jobs-summary")
    expect(summary).to_have_text("Showing 1–50 of 120 jobs")
    rows = page.locator(".jobs-table tbody tr")
    expect(rows).to_have_count(50)
    first_page = set(rows.locator("a.job-link").all_inner_texts())

    page.get_by_role("button", name="Next page").click()
    expect(summary).to_have_text("Showing 51–100 of 120 jobs")
    expect(rows).to_have_count(50)
    second_page = set(rows.locator("a.job-link").all_inner_texts())
    assert not first_page & second_page
    assert "page=2" in page.url
    expect(page.locator("#job-page")).to_have_value("2")

    page.get_by_role("button", name="Last page").click()
    expect(summary).to_have_text("Showing 101–120 of 120 jobs")
    expect(rows).to_have_count(20)
    page.screenshot(path=screenshots / "flow-jobs-page-3.png", full_page=True)

    # Sorted by name: page 2 starts with the 51st name.
    page.select_option("#job-sort", "name")
    expect(summary).to_have_text("Showing 1–50 of 120 jobs")
    expect(rows.first.locator("a.job-link")).to_have_text(f"{prefix}000")
    page.fill("#job-page", "2")
    page.press("#job-page", "Enter")
    expect(summary).to_have_text("Showing 51–100 of 120 jobs")
    expect(rows.first.locator("a.job-link")).to_have_text(f"{prefix}050")
    page.get_by_role("button", name=re.compile("^Order")).click()
    expect(rows.first.locator("a.job-link")).to_have_text(f"{prefix}069")

    # Search narrows the list and goes back to page 1.
    page.fill("#job-search", f"{prefix}11")
    expect(summary).to_have_text("Showing 1–10 of 10 jobs")
    expect(rows).to_have_count(10)
    assert "page=" not in page.url

    # Type filter: every tenth job is a delay job.
    page.fill("#job-search", prefix)
    expect(summary).to_contain_text("of 120 jobs")
    page.select_option("#job-type", "delay")
    expect(summary).to_have_text("Showing 1–12 of 12 jobs")
    expect(page.locator(".jobs-table tbody .badge.type-delay")).to_have_count(12)
    page.select_option("#job-type", "")
    page.select_option("#job-state", "runnable")
    expect(summary).to_have_text("No job matches these filters.")

    # The filters live in the URL: a reload keeps them.
    page.select_option("#job-state", "stopped")
    page.select_option("#job-type", "timing")
    expect(summary).to_have_text("Showing 1–50 of 108 jobs")
    page.reload()
    expect(summary).to_have_text("Showing 1–50 of 108 jobs")
    expect(page.locator("#job-search")).to_have_value(prefix)
    expect(page.locator("#job-type")).to_have_value("timing")


def test_row_switch_and_run_now(page: Any, api: httpx.Client, unique: str) -> None:
    job = create_job(api, name=f"switch-{unique}", cron="0 0 1 1 *", script=f'console.info("manual {unique}")')
    page.goto(f"/#/jobs?q=switch-{unique}")
    row = page.locator(f"tr[data-job-id='{job['jobId']}']")
    switch = row.get_by_role("switch")
    expect(switch).not_to_be_checked()
    expect(row.locator(".col-next")).to_contain_text("stopped")

    switch.check()
    expect(page.locator(".toast")).to_contain_text("enabled")
    assert api.get(f"/api/v1/jobs/{job['jobId']}").json()["data"]["state"] == 1
    expect(row.locator(".col-next time")).to_be_visible()

    switch.uncheck()
    expect(page.locator(".toast").last).to_contain_text("stopped")
    assert api.get(f"/api/v1/jobs/{job['jobId']}").json()["data"]["state"] == 0

    row.get_by_role("button", name="Run now").click()
    expect(page.locator(".toast").last).to_contain_text("triggered")
    # The row shows the outcome of its newest run once it has finished.
    expect(row.locator(".col-last .badge")).to_have_text("success", timeout=10_000)
    runs = api.get(f"/api/v1/jobs/{job['jobId']}/runs").json()["data"]
    assert runs and runs[0]["trigger"] == "manual"


@pytest.fixture(scope="module", autouse=True)
def soon_delay_job(api: httpx.Client) -> dict[str, Any]:
    """A delay job due in 6 s, made when this module starts, so it has fired by its test."""
    at = int(time.time()) + 6
    return create_job(api, name=f"soon-{at}", execType=1, execAt=at, enabled=True, script='console.log("fired")')


def test_a_fired_delay_job_can_still_be_edited(page: Any, api: httpx.Client, soon_delay_job: dict[str, Any],
                                               unique: str) -> None:
    job = soon_delay_job
    deadline = time.monotonic() + 15
    while api.get(f"/api/v1/jobs/{job['jobId']}").json()["data"]["state"] != 0:
        assert time.monotonic() < deadline, "the delay job did not fire"
        time.sleep(0.25)
    page.goto(f"/#/jobs/{job['jobId']}")
    expect(page.locator("#editor-title")).to_have_text(job["name"])
    expect(page.locator("#job-enabled")).not_to_be_checked()
    expect(page.locator(".runs-card tbody .badge")).to_have_text("success")
    # Its execAt lies in the past now; renaming it must not trip the "5 s in the future" rule.
    page.fill("#job-name", f"renamed-{unique}")
    page.click("#save-job-top")
    expect(page.locator(".toast").last).to_contain_text("Saved")
    saved = api.get(f"/api/v1/jobs/{job['jobId']}").json()["data"]
    assert saved["name"] == f"renamed-{unique}" and saved["execAt"] == job["execAt"] and saved["state"] == 0


def test_user_text_is_shown_as_text_never_as_markup(page: Any, api: httpx.Client, unique: str) -> None:
    evil = f'<img src=x onerror="window.__pwned=1"><b>{unique}</b>'
    job = create_job(api, name=evil, description=evil, cron="0 0 * * *",
                     script=f'console.log({evil!r})')
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"/#/jobs?q={unique}")
    expect(page.locator(f"tr[data-job-id='{job['jobId']}'] a.job-link")).to_have_text(evil)
    page.goto(f"/#/jobs/{job['jobId']}")
    expect(page.locator("#editor-title")).to_have_text(evil)
    page.click("#debug-run")
    expect(page.locator("#debug-output .msg")).to_have_text(evil)
    assert page.locator("main img, main b").count() == 0
    assert page.evaluate("window.__pwned") is None and not dialogs
