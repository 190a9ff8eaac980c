"""Traitor-side fixtures of the benchmarks: an in-memory store, a no-op runner, a
recording middleware and job factories. Imported only inside Traitor children."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from array import array
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterable, Sequence

from traitor.api.metrics import MetricsMiddleware
from traitor.domain.job import ExecType, Job, JobState, Run, RunStatus, new_id
from traitor.domain.timeutil import now_ms
from traitor.runtime.abc import ConsoleListener, RunRequest, RunResult, ScriptRunner
from traitor.scheduler.engine import Engine, EngineConfig
from traitor.scheduler.middleware import Middleware
from traitor.store.abc import JobQuery, JobStore, RunQuery

SCRIPT = "let x = 1 + 1;"


# ---------------------------------------------------------------------- jobs
def timing_job(cron: str, i: int = 0, *, now: int | None = None, script: str = SCRIPT,
               timezone: str | None = "UTC") -> Job:
    """An enabled cron job as the API would store it (uuid id, name, script)."""
    at = now_ms() if now is None else now
    return Job(job_id=new_id(), exec_type=ExecType.TIMING, name=f"bench-{i}", cron=cron, script=script,
               state=JobState.RUNNABLE, timezone=timezone, created_at=at, updated_at=at)


# ---------------------------------------------------------------------- store
class MemStore(JobStore):
    """A store in a dict: what the engine asks of a store, at no I/O cost.

    ``source`` (optional) generates the jobs of :meth:`iter_jobs` on the fly, so that
    memory measurements hold no Job objects beyond the engine's own state.
    """

    def __init__(self, jobs: Iterable[Job] = (), source: Callable[[], Iterable[list[Job]]] | None = None) -> None:
        self.jobs: dict[str, Job] = {job.job_id: job for job in jobs}
        self.source = source
        self.kv: dict[tuple[str, str], str] = {}
        self.claimed = 0
        self.finished = 0

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def add_job(self, job: Job) -> None:
        self.jobs[job.job_id] = job

    async def get_job(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    async def get_jobs(self, job_ids: Sequence[str]) -> dict[str, Job]:
        jobs = self.jobs
        return {i: jobs[i] for i in job_ids if i in jobs}

    async def update_job(self, job: Job) -> bool:
        found = job.job_id in self.jobs
        self.jobs[job.job_id] = job
        return found

    async def delete_job(self, job_id: str) -> bool:
        return self.jobs.pop(job_id, None) is not None

    async def list_jobs(self, query: JobQuery) -> tuple[list[Job], int]:
        jobs = list(self.jobs.values())
        return jobs[query.offset:query.offset + query.limit], len(jobs)

    async def iter_jobs(self, *, enabled_only: bool = False, batch: int = 5000) -> AsyncIterator[list[Job]]:
        if self.source is not None:
            for chunk in self.source():
                yield chunk
            return
        jobs = [j for j in self.jobs.values() if j.enabled or not enabled_only]
        for start in range(0, len(jobs), batch):
            yield jobs[start:start + batch]

    async def job_versions(self) -> dict[str, int]:
        return {j.job_id: j.version for j in self.jobs.values() if j.enabled}

    async def count_jobs(self) -> dict[str, int]:
        return {"total": len(self.jobs)}

    async def set_last_exec(self, updates: Sequence[tuple[str, int, JobState | None]]) -> None:
        return None

    async def claim_runs(self, runs: Sequence[Run]) -> list[Run]:
        self.claimed += len(runs)
        return list(runs)

    async def finish_runs(self, runs: Sequence[Run]) -> None:
        self.finished += len(runs)

    async def get_run(self, run_id: str) -> Run | None:
        return None

    async def list_runs(self, query: RunQuery) -> tuple[list[Run], int]:
        return [], 0

    async def prune_runs(self, keep_per_job: int, older_than: int) -> int:
        return 0

    async def kv_get(self, job_id: str, key: str) -> str | None:
        return self.kv.get((job_id, key))

    async def kv_set(self, job_id: str, key: str, value: str) -> None:
        self.kv[(job_id, key)] = value

    async def kv_delete(self, job_id: str, key: str) -> bool:
        return self.kv.pop((job_id, key), None) is not None


# ---------------------------------------------------------------------- runner
from traitor.runtime.instant import InstantRunner as NullRunner  # noqa: E402  (its name in the figures)


class Recorder(Middleware):
    """Records, per fire, the scheduled instant and the clock when the engine had
    queued it for dispatch (``on_fires``: read here once the whole batch is queued,
    as the dispatcher can take none of it before) and when its run was handed to the
    runtime."""

    def __init__(self) -> None:
        self._batches: list[tuple[int, list[int]]] = []  # (clock ns at on_fires, scheduled instants)
        self.start_at = array("q")
        self.start_ms = array("q")
        self.finished = 0
        self.first_finished_s = 0.0
        self.last_finished_s = 0.0
        self._clock = time.time_ns

    def on_fires(self, fires: Sequence[Any], handed_at: int) -> None:
        # Kept per batch (cheap: the dispatcher waits for this hook), expanded at the end.
        self._batches.append((self._clock(), [fire[1] for fire in fires]))

    def on_run_started(self, run: Run) -> None:
        self.start_at.append(run.scheduled_at)
        self.start_ms.append(run.started_at or 0)

    def on_run_finished(self, run: Run, job: Job | None) -> None:
        self.finished += 1
        self.last_finished_s = time.time()
        if self.finished == 1:
            self.first_finished_s = self.last_finished_s

    def fire_lateness(self, first: int, last: int) -> list[float]:
        """Lateness (ms) at ``on_fires`` of fires scheduled in ``[first, last)``."""
        return [ns / 1e6 - at for ns, ats in self._batches for at in ats if first <= at < last]

    def start_lateness(self, first: int, last: int) -> list[float]:
        """Lateness (ms) at the hand-off to the runtime of runs scheduled in ``[first, last)``."""
        return [float(ms - at) for at, ms in zip(self.start_at, self.start_ms) if first <= at < last]


def make_engine(store: JobStore, runner: ScriptRunner, *extra: Middleware, timezone: str = "UTC") -> Engine:
    """An engine as ``traitor.cli.main.build_engine`` assembles it (metrics middleware
    included), on the given store and runner."""
    return Engine(store, runner, config=EngineConfig(node_id="bench", timezone=timezone),
                  middleware=[MetricsMiddleware(), *extra])


# ---------------------------------------------------------------------- SQLite
async def fill_sqlite(path: Path, jobs: Iterable[Job], batch: int = 20_000) -> int:
    """Write ``jobs`` into a (new) SQLite store file, in large transactions.

    The schema comes from the store itself (``SqliteStore.start`` migrates); rows are
    the store's own encoding (``codec.job_values`` and the store's INSERT)."""
    from traitor.store import codec
    from traitor.store.sqlite import SqliteStore, _JOB_INSERT

    store = SqliteStore(path)
    await store.start()
    await store.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    count = 0
    rows: list[Any] = []

    def flush() -> None:
        conn.execute("BEGIN")
        conn.executemany(_JOB_INSERT, rows)
        conn.execute("COMMIT")
        rows.clear()

    for job in jobs:
        rows.append(codec.job_values(job))
        count += 1
        if len(rows) >= batch:
            flush()
    if rows:
        flush()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return count


async def fill_sqlite_generated(path: Path, jobs: int, crons: Sequence[str], template: Job) -> int:
    """Write ``jobs`` enabled jobs into a (new) SQLite store file, generated inside SQLite.

    Every column is ``template`` as the store encodes it (``codec.job_values``), except
    ``job_id`` (a random UUID-4-shaped string), ``name`` (and its folded copy) and
    ``cron`` (``crons[i % len(crons)]``). A million rows take a few seconds instead of
    a minute through Python objects."""
    from traitor.store import codec
    from traitor.store.sqlite import SqliteStore

    store = SqliteStore(path)
    await store.start()
    await store.close()
    columns = [*codec.JOB_COLUMNS, "name_fold"]
    values = codec.job_values(template)
    if len(values) != len(columns):
        raise RuntimeError("codec.job_values does not match codec.JOB_COLUMNS + name_fold")
    exprs: list[str] = []
    params: list[Any] = []
    for column, value in zip(columns, values):
        if column == "job_id":
            exprs.append("substr(h,1,8)||'-'||substr(h,9,4)||'-4'||substr(h,14,3)||'-'||"
                         "substr('89ab',1+(unicode(substr(h,17,1))%4),1)||substr(h,18,3)||'-'||substr(h,21,12)")
        elif column in ("name", "name_fold"):
            exprs.append("'bench-'||i")
        elif column == "cron":
            exprs.append("c.expr")
        else:
            exprs.append("?")
            params.append(value)
    sql = (f"WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < ?), "
           f"r AS (SELECT i, lower(hex(randomblob(16))) AS h FROM seq) "
           f"INSERT INTO jobs ({', '.join(columns)}) SELECT {', '.join(exprs)} "
           f"FROM r JOIN bench_crons AS c ON c.k = r.i % ?")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA cache_size = -1000000")  # 1 GB: random ids make a random-order B-tree build
    conn.execute("CREATE TEMP TABLE bench_crons (k INTEGER PRIMARY KEY, expr TEXT NOT NULL)")
    conn.executemany("INSERT INTO bench_crons VALUES (?, ?)", list(enumerate(crons)))
    conn.execute("BEGIN")
    conn.execute(sql, (jobs - 1, *params, len(crons)))
    conn.execute("COMMIT")
    count = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return count
