"""Figure 3 — memory per armed cron job: RSS delta / jobs, one fresh process per system.

The jobs use 1,000 distinct realistic cron expressions (hourly, daily, every n
minutes, working days, monthly; :func:`bench._common.cron_mix`) with UUID ids.

* Traitor: ``Engine.arm_all`` from a store that generates the jobs batch by batch
  (as rows come out of SQLite), so the delta holds exactly what the engine keeps per
  armed job: the id string, the wheel entry, the shared schedule (and whatever the
  allocator keeps after the Job objects of each batch were freed).
* APScheduler 3.11: ``AsyncIOScheduler`` (started paused, so jobs go straight into the
  ``MemoryJobStore``), ``add_job(func, "cron", **fields)``, default (UUID) ids.
* APScheduler 4: ``AsyncScheduler(MemoryDataStore())``, ``add_schedule(func,
  CronTrigger(...))``, in its own virtualenv (``bench/.venv-aps4``).

RSS is read after ``gc.collect()`` and ``malloc_trim(0)`` before and after arming.
The add rates of the peers come out of the same loop and are reported too.
"""

from __future__ import annotations

import time
from typing import Any

from bench._common import cron_mix, settle_memory

EXPRESSIONS = 1000


async def noop() -> None:
    """The peers' job function (module level: APScheduler 4 stores a reference to it)."""


async def traitor(jobs: int, batch: int = 5000) -> dict[str, Any]:
    from bench import _traitor as T
    from traitor.domain.timeutil import now_ms

    mix = [e for e, _ in cron_mix(EXPRESSIONS)]
    now = now_ms()

    def source():  # the jobs of a store, one batch at a time
        for start in range(0, jobs, batch):
            yield [T.timing_job(mix[i % len(mix)], i, now=now) for i in range(start, min(jobs, start + batch))]

    engine = T.make_engine(T.MemStore(source=source), T.NullRunner())
    before = settle_memory()
    started = time.perf_counter()
    armed = await engine.arm_all()
    elapsed = time.perf_counter() - started
    after = settle_memory()
    return {
        "system": "traitor",
        "jobs": armed,
        "rss_before": before,
        "rss_after": after,
        "bytes_per_job": (after - before) / armed,
        "arm_all_per_s": armed / elapsed,
    }


async def aps3(jobs: int) -> dict[str, Any]:
    from datetime import timezone

    from apscheduler.jobstores.memory import MemoryJobStore
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    async def noop() -> None:
        return None

    mix = [kw for _, kw in cron_mix(EXPRESSIONS)]
    scheduler = AsyncIOScheduler(jobstores={"default": MemoryJobStore()}, timezone=timezone.utc)
    scheduler.start(paused=True)
    before = settle_memory()
    started = time.perf_counter()
    for i in range(jobs):
        scheduler.add_job(noop, "cron", **mix[i % len(mix)])
    elapsed = time.perf_counter() - started
    after = settle_memory()
    count = len(scheduler.get_jobs())
    scheduler.shutdown(wait=False)
    return {
        "system": "apscheduler3",
        "jobs": count,
        "rss_before": before,
        "rss_after": after,
        "bytes_per_job": (after - before) / count,
        "add_per_s": jobs / elapsed,
    }


async def aps4(jobs: int) -> dict[str, Any]:
    from importlib.metadata import version

    from apscheduler import AsyncScheduler
    from apscheduler.datastores.memory import MemoryDataStore
    from apscheduler.triggers.cron import CronTrigger

    mix = [kw for _, kw in cron_mix(EXPRESSIONS)]
    async with AsyncScheduler(data_store=MemoryDataStore()) as scheduler:
        before = settle_memory()
        started = time.perf_counter()
        for i in range(jobs):
            await scheduler.add_schedule(noop, CronTrigger(**mix[i % len(mix)], timezone="UTC"))
        elapsed = time.perf_counter() - started
        after = settle_memory()
        count = len(await scheduler.get_schedules())
    return {
        "system": "apscheduler4",
        "version": version("apscheduler"),
        "jobs": count,
        "rss_before": before,
        "rss_after": after,
        "bytes_per_job": (after - before) / count,
        "add_per_s": jobs / elapsed,
    }
