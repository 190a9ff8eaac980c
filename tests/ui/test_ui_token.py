"""With a token configured, the console asks for it once (a small dialog), keeps it in
sessionStorage, sends it as a bearer token and as ``?token=`` on WebSockets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from uikit import TOKEN, Server, new_page, set_script

pytestmark = pytest.mark.browser


def test_token_dialog_then_bearer_and_websocket(browser: Any, token_server: Server, screenshots: Path) -> None:
    context, page, errors = new_page(browser, token_server.url)
    try:
        page.goto("/#/dashboard")
        dialog = page.locator("dialog[open]")
        expect(dialog).to_contain_text("This server needs an API token.")
        expect(dialog).to_have_count(1)  # one dialog for every request that got 401
        page.screenshot(path=screenshots / "flow-token-dialog.png")

        page.fill("dialog[open] input[type=password]", "wrong-token")
        page.keyboard.press("Enter")
        expect(page.locator("dialog[open]")).to_contain_text("The token was refused")

        page.fill("dialog[open] input[type=password]", TOKEN)
        page.keyboard.press("Enter")
        expect(page.locator("dialog[open]")).to_have_count(0)
        expect(page.locator("#stat-jobs")).to_have_text("0")
        assert page.evaluate("sessionStorage.getItem('traitor.token')") == TOKEN
        expect(page.locator("#token-button")).to_have_class("icon-button has-token")

        # The debug WebSocket carries the token as ?token=.
        page.goto("/#/jobs/new")
        set_script(page, 'console.log("with a token")')
        page.click("#debug-run")
        expect(page.locator("#debug-output .msg")).to_have_text("with a token")
        expect(page.locator("#debug-status .badge")).to_have_text("success")

        # A reload keeps the token for this tab.
        page.reload()
        expect(page.locator("#editor-title")).to_have_text("New timing job")
        expect(page.locator("dialog[open]")).to_have_count(0)
    finally:
        context.close()
    assert not errors.errors, errors.errors


def test_cancelling_the_token_dialog_shows_the_error(browser: Any, token_server: Server) -> None:
    context, page, errors = new_page(browser, token_server.url)
    try:
        page.goto("/#/jobs")
        expect(page.locator("dialog[open]")).to_be_visible()
        page.keyboard.press("Escape")
        expect(page.locator("dialog[open]")).to_have_count(0)
        expect(page.locator("#jobs-summary")).to_contain_text("missing bearer token")
    finally:
        context.close()
    assert not errors.errors, errors.errors
