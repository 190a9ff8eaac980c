"""Fixtures shared by the whole suite: a real engine with a real worker pool,
the FastAPI app on it, and a real server process."""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator, Iterator

import httpx
import pytest

from servers import ServerProcess


@pytest.fixture
async def engine_app(tmp_path: Path) -> AsyncIterator[object]:
    """The app on a started engine: SQLite in tmp_path, one script worker."""
    from traitor.api.app import ApiSettings, create_app
    from traitor.cli.config import parse_settings
    from traitor.cli.main import build_engine

    settings = parse_settings(["--data-dir", str(tmp_path), "--workers", "1", "--timezone", "UTC"], environ={})
    engine, _ = build_engine(settings)
    await engine.start()
    app = create_app(engine, ApiSettings(max_body_bytes=settings.max_body), manage_engine=False)
    try:
        yield app
    finally:
        await engine.close(2.0)


@pytest.fixture
async def client(engine_app: object) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=engine_app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://traitor.test") as http:
        yield http


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "data").start()
    try:
        yield proc
    finally:
        if proc.proc and proc.proc.poll() is None:
            proc.stop()
