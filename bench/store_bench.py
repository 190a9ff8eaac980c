"""What the SQLite store costs per script run: the four writes and reads the engine
makes for each fire, timed batch by batch as the engine batches them.

    .venv/bin/python bench/store_bench.py [--jobs 20000] [--history 0]

For ``--jobs`` stored cron jobs: read them by id in chunks of 1,000 (the dispatcher's
``get_jobs``), claim one run each in chunks of 1,000 (``claim_runs``), write their
results in batches of 500 (``finish_runs``) and their last execution time
(``set_last_exec``). ``--history N`` first stores N finished runs, as a service that
has been running a while has. Prints CPU µs per job of this process (the store's
threads included) and wall µs per job for each step.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _traitor as T  # noqa: E402
from traitor.domain.job import Run, RunStatus, new_run_id  # noqa: E402
from traitor.domain.timeutil import now_ms  # noqa: E402
from traitor.store.sqlite import SqliteStore  # noqa: E402


async def step(name: str, count: int, work) -> None:
    cpu, wall = time.process_time(), time.perf_counter()
    await work()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"{name:<10} {cpu / count * 1e6:6.1f} µs CPU/job  {wall / count * 1e6:6.1f} µs wall/job")


async def main(jobs: int, history: int) -> None:
    with tempfile.TemporaryDirectory(prefix="traitor-store-bench-") as tmp:
        path = Path(tmp) / "store.db"
        stored = [T.timing_job("0 0 * * * *", i) for i in range(jobs)]
        await T.fill_sqlite(path, stored)
        store = SqliteStore(path)
        await store.start()
        ids = [job.job_id for job in stored]
        if history:
            old = [Run(new_run_id(now_ms() - 86_400_000 + i), ids[i % jobs], i * 1000, RunStatus.SUCCESS, node="n")
                   for i in range(history)]
            for i in range(0, history, 5000):
                await store.claim_runs(old[i : i + 5000])
        at = now_ms()
        runs = [Run(new_run_id(), job_id, at, node="n") for job_id in ids]

        async def read() -> None:
            for i in range(0, jobs, 1000):
                await store.get_jobs(ids[i : i + 1000])

        async def claim() -> None:
            for i in range(0, jobs, 1000):
                await store.claim_runs(runs[i : i + 1000])

        async def finish() -> None:
            for run in runs:
                run.status, run.started_at, run.finished_at, run.output = RunStatus.SUCCESS, at, at + 1, "log hi\n"
            for i in range(0, jobs, 500):
                await store.finish_runs(runs[i : i + 500])

        async def last_exec() -> None:
            for i in range(0, jobs, 500):
                await store.set_last_exec([(job_id, at, None) for job_id in ids[i : i + 500]])

        print(f"{jobs:,} jobs, {history:,} runs stored before; load average {os.getloadavg()[0]:.2f}")
        for name, work in (("get_jobs", read), ("claim", claim), ("finish", finish), ("last_exec", last_exec)):
            await step(name, jobs, work)
        await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--history", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(main(args.jobs, args.history))
