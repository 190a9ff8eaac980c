"""Figure 1 — dispatch lateness under a steady cron load.

``jobs`` cron jobs ``S/20 * * * * *`` (6 fields, S = job number mod 20), so exactly
``jobs / 20`` distinct jobs are due on every second (100k jobs → 5,000 per second).
After a warm-up, every fire scheduled in a window of ``window_s`` whole seconds is
measured: lateness = clock when the scheduler hands the fire over − its scheduled
instant. A fire is *missed* when it is never handed over, or handed over more than
1 s late (APScheduler's ``misfire_grace_time=1`` drops those; the same rule is
applied to Traitor). p50/p99/max are over every fire handed over, late ones included;
fires never handed over appear only in the missed count.

* Traitor: a real :class:`~traitor.scheduler.engine.Engine` (real wheel, driver,
  schedules, cron evaluator, dispatcher, metrics middleware) on an in-memory store
  and a runner that completes every run at once. Measured at the middleware hook
  ``on_fires`` (clock read once the whole due batch is queued: the dispatcher can
  take none of it before), i.e. when the wheel's fires reach the engine's
  dispatcher; also reported: the hand-off to the runtime (``on_run_started``:
  job read, run claimed in the store, ``runner.submit`` called).
* APScheduler 3.11: ``AsyncIOScheduler`` + ``MemoryJobStore`` + ``AsyncIOExecutor``, an
  ``async`` no-op, ``misfire_grace_time=1``, ``coalesce=False``, one shared
  ``CronTrigger`` per distinct expression (to keep the load affordable); measured when each job
  is handed to the executor (a subclass of ``AsyncIOExecutor`` reads the clock in
  ``submit_job``; ``EVENT_JOB_SUBMITTED`` would not do: APScheduler dispatches those
  events only after the whole due batch). Missed fires: ``EVENT_JOB_MISSED``, fires
  handed over more than 1 s late, and fires never handed over.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import threading
import time
from typing import Any

from bench._common import RESULT_TAG, summary

PERIOD = 20  # seconds between two fires of one job
GRACE_MS = 1000
#: The last instant of a window is ``last - 1000``: its fires are on time until ``last``.
SETTLE_MS = 300
#: Longest wait for APScheduler to drain the backlog of its initial load.
DRAIN_S = 15.0
#: Generous estimate of APScheduler 3's add_job + start() cost per job (shared triggers).
LOAD_S_PER_JOB = 250e-6


def _expected(jobs: int, first_ms: int, last_ms: int) -> int:
    """Fires of the ``S/20`` jobs scheduled in ``[first_ms, last_ms)`` (whole seconds)."""
    per_offset = [jobs // PERIOD + (1 if k < jobs % PERIOD else 0) for k in range(PERIOD)]
    return sum(per_offset[(t // 1000 % 60) % PERIOD] for t in range(first_ms, last_ms, 1000))


def _window(warmup_s: float, window_s: int) -> tuple[int, int]:
    first = math.ceil((time.time() + warmup_s) * 1000 / 1000) * 1000
    return first, first + window_s * 1000


def _verdict(lateness: list[float], expected: int) -> dict[str, Any]:
    """Lateness of every fire handed over (late ones included) and the missed count."""
    on_time = [x for x in lateness if x <= GRACE_MS]
    every = summary(lateness)
    return {
        "expected_fires": expected,
        "fired": len(lateness),
        "missed": max(0, expected - len(on_time)),
        "late_over_grace": len(lateness) - len(on_time),
        "never_handed_over": max(0, expected - len(lateness)),
        "p50_ms": every["p50"],
        "p99_ms": every["p99"],
        "max_ms": every["max"],
        "mean_ms": every["mean"],
        "p99_on_time_ms": summary(on_time)["p99"],
        # Missed fires counted as infinitely late (None when more than 1 % are missed).
        "p99_ms_missed_as_inf": _p99_with_missed(on_time, expected),
    }


def _p99_with_missed(on_time: list[float], expected: int) -> float | None:
    if expected <= 0:
        return None
    rank = math.ceil(0.99 * expected)
    if rank > len(on_time):
        return None  # more than 1 % missed: no finite p99
    return sorted(on_time)[rank - 1]


async def traitor(jobs: int, window_s: int, warmup_s: float) -> dict[str, Any]:
    import gc

    from bench import _traitor as T
    from traitor.domain.timeutil import now_ms

    now = now_ms()
    store = T.MemStore(T.timing_job(f"{i % PERIOD}/{PERIOD} * * * * *", i, now=now) for i in range(jobs))
    recorder = T.Recorder()
    engine = T.make_engine(store, T.NullRunner(), recorder)
    started = time.perf_counter()
    await engine.start()
    setup_s = time.perf_counter() - started
    first, last = _window(warmup_s, window_s)
    await asyncio.sleep((last + SETTLE_MS) / 1000 - time.time())
    gc_counts = gc.get_count()
    await engine.close(grace=0)
    expected = _expected(jobs, first, last)
    result = _verdict(recorder.fire_lateness(first, last), expected)
    runtime = summary(recorder.start_lateness(first, last))
    result.update({
        "system": "traitor",
        "jobs": jobs,
        "fires_per_s": jobs // PERIOD,
        "window_s": window_s,
        "setup_s": setup_s,
        "runtime_handoff_p50_ms": runtime["p50"],
        "runtime_handoff_p99_ms": runtime["p99"],
        "runtime_handoff_max_ms": runtime["max"],
        "runtime_handoffs": runtime["count"],
        "gc_counts_at_end": list(gc_counts),
    })
    return result


def timed_executor(stamps: list[tuple[float, list[Any]]]) -> Any:
    """An APScheduler 3 ``AsyncIOExecutor`` that records ``(clock, run_times)`` per hand-off."""
    from apscheduler.executors.asyncio import AsyncIOExecutor

    clock = time.time

    class TimedExecutor(AsyncIOExecutor):
        def submit_job(self, job: Any, run_times: list[Any]) -> None:
            stamps.append((clock(), run_times))
            super().submit_job(job, run_times)

    return TimedExecutor()


async def aps3(jobs: int, window_s: int, warmup_s: float) -> dict[str, Any]:
    from datetime import datetime, timezone

    from apscheduler.events import EVENT_JOB_MISSED
    from apscheduler.jobstores.memory import MemoryJobStore
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    async def noop() -> None:
        return None

    submitted: list[tuple[float, list[Any]]] = []
    missed: list[Any] = []
    scheduler = AsyncIOScheduler(
        jobstores={"default": MemoryJobStore()},
        executors={"default": timed_executor(submitted)},
        job_defaults={"misfire_grace_time": 1, "coalesce": False, "max_instances": 1},
        timezone=timezone.utc,
    )
    scheduler.add_listener(lambda ev: missed.append(ev.scheduled_run_time), EVENT_JOB_MISSED)
    from apscheduler.triggers.cron import CronTrigger

    # One trigger object per distinct expression, shared by its jobs (triggers are
    # stateless): building 100,000 CronTriggers would take most of a minute here, and
    # fewer objects can only help APScheduler (less for its GC to walk).
    triggers = [CronTrigger(second=f"{k}/{PERIOD}", timezone=timezone.utc) for k in range(PERIOD)]
    # A large load takes many seconds; jobs added early would come due while the rest
    # are added and start the run with a backlog of misfires. So the first run of every
    # job is placed after the (generously estimated) load time.
    lead_s = 2.0 + jobs * LOAD_S_PER_JOB if jobs >= 20_000 else 0.0
    begin = math.ceil(time.time() + lead_s)
    first_runs = [t.get_next_fire_time(None, datetime.fromtimestamp(begin, timezone.utc)) for t in triggers]
    started = time.perf_counter()
    for i in range(jobs):  # added before start(): the store is filled by start()
        if lead_s:
            scheduler.add_job(noop, triggers[i % PERIOD], id=f"job-{i}", next_run_time=first_runs[i % PERIOD])
        else:
            scheduler.add_job(noop, triggers[i % PERIOD], id=f"job-{i}")
    scheduler.start()
    setup_s = time.perf_counter() - started
    loaded_at = time.time()
    drained = threading.Event()

    def timeline() -> None:
        # A saturated APScheduler blocks its loop for many seconds in one call: this
        # thread, not the loop, opens and closes the window, then reports and exits.
        drained.wait(max(DRAIN_S, begin - time.time() + 2))
        first, last = _window(warmup_s, window_s)
        if first < (begin + warmup_s) * 1000:
            first = math.ceil(begin + warmup_s) * 1000
            last = first + window_s * 1000
        time.sleep(max(0.0, (last + SETTLE_MS) / 1000 - time.time()))
        handed, dropped = list(submitted), list(missed)  # what happened until the window closed
        lateness = []
        for stamp, run_times in handed:
            stamp_ms = stamp * 1000
            for rt in run_times:
                at = rt.timestamp() * 1000
                if first <= at < last:
                    lateness.append(stamp_ms - at)
        result = _verdict(lateness, _expected(jobs, first, last))
        result.update({
            "system": "apscheduler3",
            "jobs": jobs,
            "fires_per_s": jobs // PERIOD,
            "window_s": window_s,
            "setup_s": setup_s,
            "missed_events": sum(1 for m in dropped if first <= m.timestamp() * 1000 < last),
            "backlog_drained_before_window": drained.is_set(),
            "load_lead_s": lead_s,
            "load_overran_lead": loaded_at > begin,
        })
        sys.stdout.write(RESULT_TAG + json.dumps(result) + "\n")
        sys.stdout.flush()
        os._exit(0)

    threading.Thread(target=timeline, name="bench-timeline", daemon=True).start()
    # Jobs added early in a long load come due while the rest are added: the window
    # opens once that backlog has drained (at most DRAIN_S after the load: a scheduler
    # that has not caught up by then is saturated, and the window shows it).
    while True:
        await asyncio.sleep(0.2)
        latest = max([rts[-1].timestamp() for _, rts in submitted[-50:]] + [m.timestamp() for m in missed[-50:]],
                      default=0.0)
        if latest >= max(loaded_at, begin) + 1:
            drained.set()
            break
    await asyncio.sleep(3600)  # the timeline thread reports and ends the process
    return {"error": "the timeline thread did not end the measurement"}
