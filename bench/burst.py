"""Figure 2 — a burst: ``jobs`` cron jobs due on the same second.

The jobs use 100 distinct 6-field expressions that all fire at one whole second T a
few seconds ahead (e.g. ``S M * * * *``, ``S M,X * * * *``, ``S M H * * *`` …), so the
scheduler cannot answer them all with one cached cron search. Reported: the time
from T until the first and the last fire was handed over (and the median).

* Traitor (engine as in figure 1, in-memory store, no-op runner): at ``on_fires``
  (wheel → dispatcher, the primary figure) and at the hand-off to the runtime
  (``on_run_started``). The ``sqlite`` variant runs the same burst on the real SQLite
  store, so the hand-off includes reading the 10,000 jobs and claiming 10,000 runs
  durably (one transaction).
* APScheduler 3.11 (``AsyncIOScheduler``, ``MemoryJobStore``, ``async`` no-op): when
  each job is handed to the executor (``AsyncIOExecutor.submit_job``, timed per job); ``misfire_grace_time=60`` so that nothing is dropped and
  the time to dispatch all of them is what is measured.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import burst_exprs, summary


def _spread(lateness_ms: list[float], jobs: int) -> dict[str, Any]:
    stats = summary(lateness_ms)
    return {
        "dispatched": len(lateness_ms),
        "complete": len(lateness_ms) >= jobs,
        "first_ms": min(lateness_ms) if lateness_ms else None,
        "median_ms": stats["p50"],
        "last_ms": stats["max"],
    }


async def traitor(jobs: int = 10_000, store: str = "memory", lead_s: float = 1.5) -> dict[str, Any]:
    from bench import _traitor as T

    at_s = math.ceil(time.time() + lead_s)
    exprs = [e for e, _ in burst_exprs(at_s)]
    job_list = [T.timing_job(exprs[i % len(exprs)], i) for i in range(jobs)]
    recorder = T.Recorder()
    tmp = None
    if store == "sqlite":
        from traitor.store.sqlite import SqliteStore

        tmp = tempfile.TemporaryDirectory(prefix="traitor-bench-")
        path = Path(tmp.name) / "burst.db"
        await T.fill_sqlite(path, job_list)
        backend: Any = SqliteStore(path)
    else:
        backend = T.MemStore(job_list)
    engine = T.make_engine(backend, T.NullRunner(), recorder)
    await engine.start()
    if time.time() > at_s - 0.2:
        await engine.close(grace=0)
        return {"error": f"setup took too long: the burst instant passed (lead {lead_s} s)"}
    at = at_s * 1000
    deadline = time.monotonic() + (at_s - time.time()) + 20
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        if time.time() > at_s + 0.2 and len(recorder.start_at) >= jobs:
            break
    await engine.close(grace=0)
    if tmp is not None:
        tmp.cleanup()
    fire = _spread(recorder.fire_lateness(at, at + 1), jobs)
    handoff = _spread(recorder.start_lateness(at, at + 1), jobs)
    return {
        "system": "traitor",
        "store": store,
        "jobs": jobs,
        "expressions": len(exprs),
        **fire,
        "runtime_handoff_first_ms": handoff["first_ms"],
        "runtime_handoff_median_ms": handoff["median_ms"],
        "runtime_handoff_last_ms": handoff["last_ms"],
        "runtime_handoffs": handoff["dispatched"],
    }


async def aps3(jobs: int = 10_000, lead_s: float | None = None) -> dict[str, Any]:
    from datetime import timezone

    from apscheduler.jobstores.memory import MemoryJobStore
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from bench.lateness import timed_executor

    async def noop() -> None:
        return None

    # add_job costs 0.1–0.5 ms here: leave enough time to load the jobs before T.
    lead = lead_s if lead_s is not None else 1.5 + jobs * 0.0006
    at_s = math.ceil(time.time() + lead)
    exprs = burst_exprs(at_s)
    scheduler = AsyncIOScheduler(
        jobstores={"default": MemoryJobStore()},
        job_defaults={"misfire_grace_time": 60, "coalesce": False, "max_instances": 1},
        timezone=timezone.utc,
    )
    stamps: list[tuple[float, list[Any]]] = []
    scheduler.add_executor(timed_executor(stamps), "default")
    for i in range(jobs):
        scheduler.add_job(noop, "cron", **exprs[i % len(exprs)][1])
    scheduler.start()
    if time.time() > at_s - 0.2:
        scheduler.shutdown(wait=False)
        return {"error": f"setup took too long: the burst instant passed (lead {lead:.1f} s)"}
    deadline = time.monotonic() + (at_s - time.time()) + 30
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        if sum(len(r) for _, r in stamps) >= jobs:
            break
    scheduler.shutdown(wait=False)
    at = at_s * 1000
    lateness = [stamp * 1000 - at for stamp, rts in stamps for rt in rts if rt.timestamp() == at_s]
    return {"system": "apscheduler3", "jobs": jobs, "expressions": len(exprs), **_spread(lateness, jobs)}
