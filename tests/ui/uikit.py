"""Helpers of the web console's end-to-end tests (imported by the tests as ``uikit``)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

#: Debian's Chromium (TRAITOR_UI_CHROMIUM points elsewhere, e.g. on another distribution).
CHROMIUM = Path(os.environ.get("TRAITOR_UI_CHROMIUM", "/usr/bin/chromium"))
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
#: The token of the second server, the one that requires a token.
TOKEN = "ui-test-token-0123456789"
LAUNCH_ARGS = [
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Console messages that are not faults of the page (a 4xx answer the page shows to the user).
BENIGN_CONSOLE = ("Failed to load resource",)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A real ``traitor`` process on a free loopback port."""

    def __init__(self, data_dir: Path, *extra: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self.args = [sys.executable, "-m", "traitor", "-p", str(self.port), "--data-dir", str(data_dir),
                     "--workers", "1", "--timezone", "UTC", *extra]
        # The server must not pick up settings of the developer's shell.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TRAITOR_")}
        self.proc: subprocess.Popen[bytes] | None = None

    def launch(self) -> "Server":
        """Start the process and return at once (servers of a session start side by side)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT)
        return self

    def wait_ready(self, timeout: float = 45.0) -> "Server":
        assert self.proc is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with code {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the server did not answer /healthz within {timeout:g} s:\n{self.output()}")

    def start(self) -> "Server":
        return self.launch().wait_ready()

    def output(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-4000:]

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class External:
    """An already running server (``TRAITOR_UI_SERVER_URL``), for working on the console."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")


class PageErrors:
    """Uncaught exceptions and console errors of one page; a test ends with none."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def on_page_error(self, error: Any) -> None:
        self.errors.append(f"uncaught: {error}")

    def on_console(self, message: Any) -> None:
        if message.type == "error" and not message.text.startswith(BENIGN_CONSOLE):
            self.errors.append(f"console.error: {message.text}")


def new_page(browser: Any, base_url: str, **options: Any) -> tuple[Any, Any, PageErrors]:
    options.setdefault("viewport", {"width": 1360, "height": 900})
    options.setdefault("color_scheme", "light")
    context = browser.new_context(base_url=base_url, **options)
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors = PageErrors()
    page.on("pageerror", errors.on_page_error)
    page.on("console", errors.on_console)
    return context, page, errors


JOB_URL = re.compile(r"#/jobs/[0-9a-f-]{8,}$")


def set_script(page: Any, text: str) -> None:
    """Replace the CodeMirror document with ``text`` the way a user would (select all, type)."""
    content = page.locator(".cm-content")
    content.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(text)


def create_job(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"script": 'console.log("hi")', **fields}
    response = api.post("/api/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    return response.json()["data"]


def job_id_from_url(url: str) -> str:
    match = re.search(r"#/jobs/([0-9a-f-]+)$", url)
    assert match, f"not a job editor URL: {url}"
    return match.group(1)
