"""Test helpers: free ports and a real ``traitor`` server process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(proc: subprocess.Popen[bytes], url: str, timeout: float, name: str, output) -> None:
    """Return once ``url``/healthz answers 200; raise with the process output if it dies or stalls."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{output()[-4000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{name} did not start in {timeout}s:\n{output()[-4000:]}")


class ServerProcess:
    """A real ``traitor`` process on a free loopback port."""

    def __init__(self, data_dir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = ["-p", str(self.port), "--data-dir", str(data_dir), "--workers", "1", "--timezone", "UTC",
                     *args]
        self.env = {**os.environ, **(env or {})}
        self.log_path = data_dir / "server.out"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> "ServerProcess":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "traitor", *self.args], stdout=log,
                                     stderr=subprocess.STDOUT, env=self.env)
        wait_healthy(self.proc, self.url, timeout, "server", self.output)
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = 15, timeout: float = 20.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)
