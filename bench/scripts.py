"""Figure 5 — script runs end to end: fire → claim → QuickJS run → result stored.

* Traitor: ``runs`` enabled cron jobs (trivial script ``let x = 1 + 1;``) in a real
  SQLite store, all due at one whole second T, on a real engine with the real
  ``WorkerPool`` (``workers`` QuickJS worker processes) and the metrics middleware —
  the assembly of ``traitor.cli.main.build_engine`` minus the HTTP server. The rate
  is ``runs / (time the last result was committed − T)``: every run was read,
  claimed (one row each), run in a fresh QuickJS context under limits, and its
  final state written (group-committed batches). Statuses are checked in SQLite at
  the end.
* Reference: a plain in-process loop, ``quickjs.Context()`` + ``eval(script)`` per
  run, on one core, no limits, nothing stored: the cost floor of a fresh context.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

SCRIPT = "let x = 1 + 1;"


async def traitor(runs: int, workers: int = 2, lead_s: float = 2.0) -> dict[str, Any]:
    from bench import _traitor as T
    from traitor.runtime.pool import WorkerPool
    from traitor.store.sqlite import SqliteStore

    with tempfile.TemporaryDirectory(prefix="traitor-bench-") as tmp:
        path = Path(tmp) / "runs.db"
        at_s = math.ceil(time.time() + lead_s + runs * 20e-6)
        expr = time.strftime("%S %M * * * *", time.gmtime(at_s))
        await T.fill_sqlite(path, (T.timing_job(expr, i, script=SCRIPT) for i in range(runs)))
        store = SqliteStore(path)
        committed: list[tuple[float, int]] = []
        finish_runs = store.finish_runs

        async def timed_finish(batch: Any) -> None:  # when each batch of results is committed
            await finish_runs(batch)
            committed.append((time.time(), len(batch)))

        store.finish_runs = timed_finish  # type: ignore[method-assign]
        recorder = T.Recorder()
        pool = WorkerPool(workers=workers)
        engine = T.make_engine(store, pool, recorder)
        await engine.start()
        pids = pool.worker_pids()
        main0, workers0 = time.process_time(), sum(_cpu_of(pid) for pid in pids)
        if time.time() > at_s - 0.1:
            await engine.close(grace=0)
            return {"error": "setup took too long: the fire instant passed"}
        deadline = at_s + 60
        while time.time() < deadline and sum(n for _, n in committed) < runs:
            await asyncio.sleep(0.02)
        main_cpu = time.process_time() - main0
        workers_cpu = sum(_cpu_of(pid) for pid in pids) - workers0
        cpu = main_cpu + workers_cpu
        await engine.close(grace=1)
        done = sum(n for _, n in committed)
        last = max((t for t, _ in committed), default=math.nan)
        conn = sqlite3.connect(path)
        statuses = dict(conn.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall())
        conn.close()
    elapsed = last - at_s
    started = recorder.start_lateness(at_s * 1000, at_s * 1000 + 1)
    return {
        "system": "traitor",
        "runs": runs,
        "workers": workers,
        "stored": done,
        "statuses": statuses,
        "seconds": elapsed,
        "runs_per_s": done / elapsed if elapsed > 0 else None,
        "last_handed_to_runtime_ms": max(started, default=None),
        "first_finished_ms": (recorder.first_finished_s - at_s) * 1000 if recorder.finished else None,
        "last_finished_ms": (recorder.last_finished_s - at_s) * 1000 if recorder.finished else None,
        "last_committed_ms": elapsed * 1000,
        # CPU of the engine process and its workers per run: what the rate would be
        # bounded by on idle cores (load on the machine does not inflate it much).
        "cpu_us_per_run": cpu / done * 1e6 if done else None,
        "engine_cpu_us_per_run": main_cpu / done * 1e6 if done else None,
        "workers_cpu_us_per_run": workers_cpu / done * 1e6 if done else None,
    }


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc."""
    import os

    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def reference(runs: int) -> dict[str, Any]:
    import quickjs

    started = time.perf_counter()
    for _ in range(runs):
        ctx = quickjs.Context()
        ctx.eval(SCRIPT)
    elapsed = time.perf_counter() - started
    return {"system": "quickjs-loop", "runs": runs, "seconds": elapsed, "runs_per_s": runs / elapsed}
