"""Figure 4 — arming rate and cold start.

* **Arming rate**: ``Engine.arm(job)`` called for ``jobs`` realistic Job objects (UUID
  ids, 1,000 distinct cron expressions from :func:`bench._common.cron_mix`, built
  before the clock starts), on an engine that is not started (nothing fires). This
  is the per-job path of the API (create/enable/update). ``arm_all`` (the batch
  path of a start-up, misfire planning included) is reported too, from an
  in-memory store holding the same jobs.
* **Cold start**: ``jobs`` enabled jobs in a real SQLite file (WAL, the store's own
  schema; rows are one template job as the store encodes it, with distinct UUID-shaped
  ids, names and the 1,000 cron expressions, generated inside SQLite to save time); a fresh process times ``Engine.start()`` with the
  real ``SqliteStore`` and the real ``WorkerPool`` (2 workers): store open, workers
  spawned, every job read, decoded, planned and armed, GC frozen. The file is in the
  OS page cache (it was just written): a warm-cache start. Before timing, every
  job's ``updated_at`` is set to now, so no fire counts as missed during the
  (unmeasured) time between writing the file and starting.
* Peer (APScheduler 3.11): ``add_job`` rate into a ``MemoryJobStore``, taken from
  the memory figure's runs (same jobs, same loop; see ``bench/memory.py``).
  APScheduler's memory store has no persistence, so it has no cold start to compare.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from bench._common import cron_mix

EXPRESSIONS = 1000


async def traitor_arm(jobs: int) -> dict[str, Any]:
    import gc

    from bench import _traitor as T
    from traitor.domain.timeutil import now_ms

    mix = [e for e, _ in cron_mix(EXPRESSIONS)]
    now = now_ms()
    job_list = [T.timing_job(mix[i % len(mix)], i, now=now) for i in range(jobs)]
    gc.collect()
    gc.freeze()  # as the engine does after loading: the job list is not what is measured
    engine = T.make_engine(T.MemStore(), T.NullRunner())
    arm = engine.arm
    started = time.perf_counter()
    for job in job_list:
        arm(job)
    arm_s = time.perf_counter() - started
    armed = engine.armed
    engine.wheel.clear()
    engine = T.make_engine(T.MemStore(job_list), T.NullRunner())
    started = time.perf_counter()
    count = await engine.arm_all()
    arm_all_s = time.perf_counter() - started
    return {
        "system": "traitor",
        "jobs": jobs,
        "armed": armed,
        "arm_per_s": jobs / arm_s,
        "arm_us": arm_s / jobs * 1e6,
        "arm_all_per_s": count / arm_all_s,
    }


async def build_db(path: str, jobs: int) -> dict[str, Any]:
    from bench import _traitor as T
    from traitor.domain.timeutil import now_ms

    mix = [e for e, _ in cron_mix(EXPRESSIONS)]
    started = time.perf_counter()
    count = await T.fill_sqlite_generated(Path(path), jobs, mix, T.timing_job(mix[0], 0, now=now_ms()))
    return {"jobs": count, "build_s": time.perf_counter() - started, "bytes": Path(path).stat().st_size}


async def cold_start(path: str, workers: int = 2) -> dict[str, Any]:
    from bench import _traitor as T
    from traitor.domain.timeutil import now_ms
    from traitor.runtime.pool import WorkerPool
    from traitor.store.sqlite import SqliteStore

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("UPDATE jobs SET updated_at = ?, last_exec_time = NULL", (now_ms(),))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    jobs = conn.execute("SELECT count(*) FROM jobs WHERE state = 1").fetchone()[0]
    conn.close()
    engine = T.make_engine(SqliteStore(path), WorkerPool(workers=workers))
    started, cpu = time.perf_counter(), time.process_time()
    await engine.start()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    armed = engine.armed
    closing = time.perf_counter()
    await engine.close(grace=0)
    return {
        "system": "traitor",
        "jobs": jobs,
        "armed": armed,
        "cold_start_s": elapsed,
        "cold_start_cpu_s": cpu,  # this process (all its threads); the workers start in parallel
        "cold_start_jobs_per_s": armed / elapsed,
        "close_s": time.perf_counter() - closing,
    }
