"""Figure 6 — the Web API of a real server process (embedded SQLite store).

* **Creates/s**: ``clients`` concurrent keep-alive connections, each sending
  ``POST /api/job?type=timing`` (a new stopped job: validated, written and committed
  before the response — ``synchronous=NORMAL``, the default) back to back for
  ``create_s`` seconds after a 0.5 s warm-up; completed 200s per second.
* **Server CPU per create**: the server process's CPU time (all threads, /proc) over
  the create phase divided by the creates answered in it; steady on a busy machine.
* **GET p99**: ``GET /api/job?id=…`` of random jobs created above, sent open-loop at
  ``get_rps`` requests/s for ``get_s`` seconds (a request's latency is counted from
  the instant it was *due*, so a stalled server is not hidden by a waiting client:
  no coordinated omission); p50/p99/max.
* Floor: a bare FastAPI app answering both routes with constants, same uvicorn,
  same client (``bench/_floor_app.py``): what the framework alone costs here.

Server: ``python -m traitor -p PORT --data-dir TMP --workers 1`` (as
``tests/servers.py`` starts it), 127.0.0.1 only. Client: ``bench/_http.py`` on uvloop,
in this process — it shares the machine's cores with the server.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import ROOT, summary
from bench._http import Connection

HOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _run(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


async def _wait_healthy(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text(errors='replace')[-1500:]}")
        try:
            conn = await Connection(HOST, port).open()
            status, _ = await conn.request("GET", "/healthz")
            conn.close()
            if status == 200:
                return
        except OSError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError(f"server not healthy in {timeout} s")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads), from /proc (Linux)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        # Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _creates(port: int, clients: int, seconds: float, warmup: float = 0.5,
                   server_pid: int | None = None) -> dict[str, Any]:
    start = time.perf_counter()
    measure_from = start + warmup
    end = measure_from + seconds
    done: list[float] = []
    errors: dict[int, int] = {}
    ids: list[str] = []
    answered = 0  # every 200 of the phase, warm-up included: the denominator of the server's CPU
    cpu_before = _cpu_seconds(server_pid) if server_pid else None

    async def client(n: int) -> None:
        nonlocal answered
        conn = await Connection(HOST, port).open()
        i = 0
        try:
            while time.perf_counter() < end:
                body = {"name": f"bench-{n}-{i}", "cron": "0 0 * * *", "script": "let x = 1 + 1;"}
                sent = time.perf_counter()
                status, payload = await conn.request("POST", "/api/job?type=timing", body)
                now = time.perf_counter()
                i += 1
                if status != 200:
                    errors[status] = errors.get(status, 0) + 1
                    continue
                answered += 1
                if measure_from <= sent and now <= end:
                    done.append(now - sent)
                if len(ids) < 5000:
                    ids.append(payload.split(b'"id":"', 1)[1].split(b'"', 1)[0].decode())
        finally:
            conn.close()

    await asyncio.gather(*(client(n) for n in range(clients)))
    cpu_us = None
    if cpu_before is not None and server_pid and answered:
        # Robust to a noisy machine, unlike creates/s: CPU time the server spent per create.
        cpu_us = (_cpu_seconds(server_pid) - cpu_before) * 1e6 / answered
    lat = summary([x * 1000 for x in done])
    return {"creates": len(done), "creates_per_s": len(done) / seconds, "errors": errors,
            "latency_p50_ms": lat["p50"], "latency_p99_ms": lat["p99"], "server_cpu_us_per_create": cpu_us,
            "ids": ids}


async def _gets(port: int, ids: list[str], rate: float, seconds: float, warmup: float = 0.5) -> dict[str, Any]:
    idle: list[Connection] = []
    latencies: list[float] = []
    errors: dict[str, int] = {}
    rng = random.Random(1)
    pending: set[asyncio.Task[None]] = set()
    interval = 1.0 / rate
    start = time.perf_counter()
    measure_from = start + warmup
    total = int((seconds + warmup) * rate)

    async def one(due: float) -> None:
        conn = idle.pop() if idle else Connection(HOST, port)
        try:
            status, _ = await conn.request("GET", f"/api/job?id={rng.choice(ids)}")
        except (OSError, asyncio.IncompleteReadError) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            conn.close()
            return
        done = time.perf_counter()
        idle.append(conn)
        if status != 200:
            errors[str(status)] = errors.get(str(status), 0) + 1
        elif due >= measure_from:
            latencies.append((done - due) * 1000)

    for i in range(total):
        due = start + i * interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.get_running_loop().create_task(one(due))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.wait(pending, timeout=30)
    for conn in idle:
        conn.close()
    lat = summary(latencies)
    return {"gets": len(latencies), "rate": rate, "p50_ms": lat["p50"], "p99_ms": lat["p99"], "max_ms": lat["max"],
            "errors": errors, "achieved_rps": len(latencies) / seconds}


def _serve(kind: str, port: int, data_dir: Path) -> subprocess.Popen[bytes]:
    log = open(data_dir / "server.out", "ab")
    args = ["-p", str(port), "--data-dir", str(data_dir), "--workers", "1", "--timezone", "UTC",
            "--log-level", "warning"]
    if kind == "traitor":
        cmd = [sys.executable, "-m", "traitor", *args]
    elif kind == "traitor-uvloop":  # experiment: the same server on uvloop (not how it ships)
        cmd = [sys.executable, "-c", "import sys, uvloop; uvloop.install(); from traitor.cli.main import main; "
               "sys.exit(main(sys.argv[1:]))", *args]
    else:
        cmd = [sys.executable, "-m", "uvicorn", "bench._floor_app:app", "--host", HOST, "--port", str(port),
               "--log-level", "warning", "--no-access-log"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)


def measure(kind: str, create_s: float, get_s: float, get_rps: float = 1000.0, clients: int = 32) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="traitor-bench-api-") as tmp:
        data_dir = Path(tmp)
        port = _free_port()
        proc = _serve(kind, port, data_dir)
        try:
            async def main() -> dict[str, Any]:
                await _wait_healthy(port, proc, data_dir / "server.out")
                spy = os.environ.get("BENCH_PYSPY")  # a path: profile the server with py-spy
                if spy:
                    subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "-r", "250", "-f", "raw",
                                      "-o", spy, "-p", str(proc.pid), "-d", str(int(create_s + get_s + 2))],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                created = await _creates(port, clients, create_s, server_pid=proc.pid)
                ids = created.pop("ids") or ["none"]
                gets = await _gets(port, ids, get_rps, get_s)
                return {"system": kind, "clients": clients, **created, "get": gets}

            return _run(main())
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
