"""Helpers of the cluster tests: a private ``redis-server`` and traitor node processes.

Not a ``conftest.py`` on purpose: a second module named ``conftest`` would shadow
``tests/conftest.py`` for test modules that do ``from conftest import ...``.
Fixtures defined here are imported by the test modules that use them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
PG_URL = os.environ.get("TRAITOR_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
#: Tests that need PostgreSQL fail when it is unreachable, unless TRAITOR_TEST_SKIP_PG=1 (as tests/store).
requires_pg = pytest.mark.skipif(os.environ.get("TRAITOR_TEST_SKIP_PG", "") == "1",
                                 reason="TRAITOR_TEST_SKIP_PG=1: no PostgreSQL")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A throw-away ``redis-server`` on a free loopback port (no persistence)."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> "RedisServer":
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / f"redis-{self.port}.log", "ab")
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


class NodeProcess:
    """One ``traitor -m multi`` node process."""

    def __init__(self, name: str, workdir: Path, redis_url: str, store_url: str, cluster: str,
                 extra: tuple[str, ...] = ()) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = workdir / name
        self.args = ["-m", "multi", "-r", redis_url, "--store", store_url, "-c", cluster, "-p", str(self.port),
                     "--data-dir", str(self.data_dir), "--workers", "1", "--node-id", name, "--timezone", "UTC",
                     *extra]
        self.log_path = self.data_dir / "node.out"
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self) -> "NodeProcess":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "traitor", *self.args], stdout=log,
                                     stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        return self

    def wait_ready(self, timeout: float = 30.0) -> "NodeProcess":
        from servers import wait_healthy

        assert self.proc is not None
        wait_healthy(self.proc, self.url, timeout, f"node {self.name}", self.output)
        return self

    def start(self, timeout: float = 30.0) -> "NodeProcess":
        return self.spawn().wait_ready(timeout)

    def send(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen process cannot handle SIGTERM
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait(10)
        return self.proc.returncode

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
