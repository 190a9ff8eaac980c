"""Fixtures of the web console's end-to-end tests.

A real ``traitor`` process (``python -m traitor``) on a free port with its own data
directory, shared by the whole session, and Debian's Chromium driven headless by
Playwright's sync API. Without ``/usr/bin/chromium`` the browser tests FAIL with a
clear message, unless ``TRAITOR_SKIP_BROWSER=1`` (then they are skipped).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from uikit import CHROMIUM, LAUNCH_ARGS, SCREENSHOTS, TOKEN, External, Server, new_page


@pytest.fixture(scope="session")
def ui_tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="traitor-ui-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def ui_servers(request: pytest.FixtureRequest, ui_tmp: Path) -> Iterator[dict[str, Server]]:
    """Launch the servers this session needs side by side (each takes seconds to start)."""
    servers = {"main": Server(ui_tmp / "data").launch()}
    if any("token" in item.nodeid for item in request.session.items):
        servers["token"] = Server(ui_tmp / "token-data", "--token", TOKEN).launch()
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def _ready(server: Server, what: str) -> Server:
    try:
        return server.wait_ready()
    except RuntimeError as exc:
        pytest.fail(f"cannot start the traitor server {what}: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def ui_server(request: pytest.FixtureRequest) -> Server | External:
    """The server of the console tests (or TRAITOR_UI_SERVER_URL, to work on the console)."""
    if os.environ.get("TRAITOR_UI_SERVER_URL"):
        return External(os.environ["TRAITOR_UI_SERVER_URL"])
    return _ready(request.getfixturevalue("ui_servers")["main"], "for the UI tests")


@pytest.fixture(scope="session")
def token_server(ui_servers: dict[str, Server], ui_tmp: Path) -> Server:
    """A second server started with --token."""
    if "token" not in ui_servers:
        ui_servers["token"] = Server(ui_tmp / "token-data", "--token", TOKEN).launch()
    return _ready(ui_servers["token"], "with --token")


@pytest.fixture(scope="session")
def api(ui_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ui_server.url, timeout=10.0) as client:
        yield client


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture(scope="session")
def browser(ui_tmp: Path) -> Iterator[Any]:
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        if os.environ.get("TRAITOR_SKIP_BROWSER") == "1":
            pytest.skip(f"TRAITOR_SKIP_BROWSER=1 and no Chromium at {CHROMIUM}: browser tests skipped")
        pytest.fail(
            f"The web console's browser tests need Debian's Chromium at {CHROMIUM} "
            "(apt-get install -y chromium). Set TRAITOR_SKIP_BROWSER=1 to skip them instead.",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    xdg = ui_tmp / "xdg"
    env = {**os.environ, "XDG_CONFIG_HOME": str(xdg / "config"), "XDG_CACHE_HOME": str(xdg / "cache")}
    with sync_playwright() as playwright:
        # launch() uses a fresh temporary profile (user-data-dir) and disables the sandbox for root.
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS, env=env)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, ui_server: Server) -> Iterator[Any]:
    """A fresh browser context (light theme, desktop size) on the session's server."""
    context, page, errors = new_page(browser, ui_server.url)
    try:
        yield page
    finally:
        context.close()
    assert not errors.errors, "the page reported errors:\n" + "\n".join(errors.errors)


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:8]
