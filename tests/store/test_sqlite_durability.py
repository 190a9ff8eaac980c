"""SQLite: acknowledged writes survive ``kill -9``, and the writer group-commits."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from traitor.domain.errors import ConflictError
from traitor.domain.job import ExecType, Job, new_id
from traitor.store import JobQuery, open_store
from traitor.store.sqlite import SqliteStore

# The child writes jobs from 8 concurrent tasks (so commits are grouped) and prints
# each id right after its add_job returned, i.e. once the write is acknowledged. It
# keeps writing after the 200th line, so the kill lands in the middle of writes.
CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from traitor.domain.job import ExecType, Job, new_id
    from traitor.store.sqlite import SqliteStore

    async def writer(store, n):
        i = 0
        while True:
            job = Job(new_id(), ExecType.TIMING, name=f"w{n}-{i}", cron="* * * * *", script="x" * 2000)
            await store.add_job(job)
            sys.stdout.write(job.job_id + "\\n")
            sys.stdout.flush()
            i += 1

    async def main():
        store = SqliteStore(sys.argv[1], synchronous=sys.argv[2])
        await store.start()
        sys.stdout.write("ready\\n")
        sys.stdout.flush()
        await asyncio.gather(*(writer(store, n) for n in range(8)))

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("synchronous", ["normal", "full"])
async def test_acknowledged_writes_survive_kill_9(tmp_path: Path, synchronous: str) -> None:
    db = tmp_path / "traitor.db"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db), synchronous],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acknowledged: list[str] = []
    try:
        assert child.stdout is not None
        first = child.stdout.readline()
        assert first == "ready\n", f"child failed to start: {first!r} {child.stderr.read() if child.stderr else ''}"
        deadline = time.monotonic() + 60
        while len(acknowledged) < 200:
            line = child.stdout.readline()
            if not line:
                pytest.fail(f"child died early: {child.stderr.read() if child.stderr else ''}")
            acknowledged.append(line.strip())
            assert time.monotonic() < deadline
        os.kill(child.pid, signal.SIGKILL)
        rest, _ = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    # Lines printed between the 200th and the kill were acknowledged too.
    acknowledged += [line.strip() for line in rest.splitlines() if line.strip()]

    store = SqliteStore(db)
    await store.start()
    try:
        missing = [job_id for job_id in acknowledged if await store.get_job(job_id) is None]
        assert missing == [], f"{len(missing)} of {len(acknowledged)} acknowledged jobs lost"
        total = (await store.list_jobs(JobQuery(limit=0)))[1]
        assert total >= len(acknowledged)
    finally:
        await store.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def _until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def _job(i: int) -> Job:
    return Job(new_id(), ExecType.TIMING, name=f"job {i}", cron="* * * * *", script="console.log(1)")


async def test_32_concurrent_writers_are_group_committed(tmp_path: Path) -> None:
    store = open_store("sqlite://", data_dir=tmp_path)
    await store.start()
    assert isinstance(store, SqliteStore)
    try:
        per_writer = 40
        jobs = [[_job(w * per_writer + i) for i in range(per_writer)] for w in range(32)]

        async def writer(mine: list[Job]) -> int:
            for job in mine:
                await store.add_job(job)
                # Acknowledged means committed: another connection sees it at once.
                assert await store.get_job(job.job_id) is not None
            return len(mine)

        assert sum(await asyncio.gather(*(writer(mine) for mine in jobs))) == 32 * per_writer
        assert (await store.count_jobs())["total"] == 32 * per_writer
        assert store.stats["writes"] == 32 * per_writer
        assert store.stats["commits"] < store.stats["writes"], store.stats  # some were grouped

        # How much is grouped above depends on timing; this does not: 32 writes that
        # arrive while the writer thread is busy are committed together, in one commit.
        started, gate = threading.Event(), threading.Event()
        busy = asyncio.ensure_future(store._write(lambda conn: started.set() or gate.wait(10)))
        await _until(started.is_set)  # the writer thread runs it, waiting on the gate
        before = store.stats["commits"]
        late = [_job(100_000 + i) for i in range(32)]
        adds = asyncio.gather(*(store.add_job(job) for job in late))
        await _until(lambda: store._writes.qsize() == 32)  # all queued behind it
        gate.set()
        await busy
        await adds
        assert store.stats["commits"] - before == 2, store.stats  # the gate's, then the 32 together
        assert all([await store.get_job(job.job_id) is not None for job in late])
    finally:
        await store.close()

    # Everything is on disk for a fresh process (here: a fresh connection).
    with sqlite3.connect(tmp_path / "traitor.db") as conn:
        assert conn.execute("SELECT count(*) FROM jobs").fetchone()[0] == 32 * per_writer + 32


async def test_a_failing_write_does_not_undo_its_batch(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "t.db")
    await store.start()
    try:
        taken = _job(0)
        await store.add_job(taken)
        jobs = [_job(i) for i in range(1, 64)]
        results = await asyncio.gather(
            *(store.add_job(job) for job in jobs[:32]),
            store.add_job(taken),  # duplicate id: fails alone
            *(store.add_job(job) for job in jobs[32:]),
            return_exceptions=True,
        )
        assert [type(r) for r in results if r is not None] == [ConflictError]
        assert (await store.count_jobs())["total"] == 64
    finally:
        await store.close()


async def test_close_flushes_queued_writes(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "t.db")
    await store.start()
    jobs = [_job(i) for i in range(200)]
    tasks = [asyncio.create_task(store.add_job(job)) for job in jobs]
    await asyncio.sleep(0)  # every task has queued its write
    await store.close()
    await asyncio.gather(*tasks)  # all acknowledged, none failed
    with pytest.raises(RuntimeError, match="closed"):
        await store.add_job(_job(999))

    again = SqliteStore(tmp_path / "t.db")
    await again.start()
    try:
        assert (await again.count_jobs())["total"] == 200
    finally:
        await again.close()


async def test_wal_mode_and_synchronous(tmp_path: Path) -> None:
    for level, expected in (("normal", 1), ("full", 2)):
        store = SqliteStore(tmp_path / f"{level}.db", synchronous=level)
        await store.start()
        try:
            await store.add_job(_job(0))
            mode, sync = await store._write(
                lambda conn: (
                    conn.execute("PRAGMA journal_mode").fetchone()[0],
                    conn.execute("PRAGMA synchronous").fetchone()[0],
                )
            )
            assert (mode, sync) == ("wal", expected)
        finally:
            await store.close()


async def test_a_busy_point_read_falls_back_to_a_reader_thread(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "t.db")
    await store.start()
    inline = store._inline

    class Busy:
        """The inline connection answering "busy", as a WAL reader rarely can."""

        calls = 0

        def execute(self, *args: object) -> None:
            Busy.calls += 1
            raise sqlite3.OperationalError("database is locked")

        def close(self) -> None:
            assert inline is not None
            inline.close()

    try:
        job = _job(0)
        await store.add_job(job)
        await store.kv_set(job.job_id, "k", "v")
        store._inline = Busy()  # type: ignore[assignment]
        assert await store.get_job(job.job_id) == job
        assert await store.kv_get(job.job_id, "k") == "v"
        assert await store.get_run("none") is None
        assert Busy.calls == 3
    finally:
        await store.close()


async def _batched(store: SqliteStore, *writes: Any) -> list[Any]:
    """Run ``writes`` (coroutines) as one batch of the writer: it is held busy while they queue."""
    gate = threading.Event()
    held = asyncio.ensure_future(store._write(lambda conn: gate.wait(10)))
    await asyncio.sleep(0.05)  # the writer is now inside the holding batch
    tasks = [asyncio.ensure_future(write) for write in writes]
    await asyncio.sleep(0)  # every task has queued its operation
    gate.set()
    await held
    return await asyncio.gather(*tasks, return_exceptions=True)


async def test_single_statement_writes_skip_savepoints(tmp_path: Path) -> None:
    """A job create is one INSERT: in a batch it runs without SAVEPOINT / RELEASE, and a
    failing one (duplicate id) still leaves the rest of its batch committed."""
    store = SqliteStore(tmp_path / "t.db")
    await store.start()
    statements: list[str] = []
    try:
        taken = _job(0)
        await store.add_job(taken)
        await store._write(lambda conn: conn.set_trace_callback(statements.append))
        jobs = [_job(i) for i in range(1, 9)]
        results = await _batched(store, *(store.add_job(job) for job in jobs[:4]), store.add_job(taken),
                                 *(store.add_job(job) for job in jobs[4:]), store.delete_job(jobs[0].job_id))
        await store._write(lambda conn: conn.set_trace_callback(None))
        assert [type(r) for r in results if r is not None] == [ConflictError, bool]
        assert (await store.count_jobs())["total"] == 8  # 1 + 8 created, 1 deleted
        savepoints = [s for s in statements if s.startswith("SAVEPOINT")]
        assert len(savepoints) == 1, statements  # only delete_job's (three statements)
        assert sum(s.startswith("INSERT INTO jobs") for s in statements) == 9
        inserts = [i for i, s in enumerate(statements) if s.startswith("INSERT INTO jobs")]
        assert "COMMIT" not in statements[inserts[0] : inserts[-1]]  # one batch, one transaction
    finally:
        await store.close()


async def test_a_write_that_ends_the_transaction_fails_its_whole_batch(tmp_path: Path) -> None:
    """Disk full or an I/O error rolls back the whole transaction, undoing the batch's
    earlier operations: none of them may then be reported as done."""
    store = SqliteStore(tmp_path / "t.db")
    await store.start()
    try:
        def fatal(conn: sqlite3.Connection) -> None:
            conn.execute("ROLLBACK")  # as SQLite does on SQLITE_FULL
            raise sqlite3.OperationalError("database or disk is full")

        jobs = [_job(i) for i in range(6)]
        results = await _batched(store, *(store.add_job(job) for job in jobs[:3]),
                                 store._write(fatal, one_statement=True), *(store.add_job(job) for job in jobs[3:]))
        assert all(isinstance(r, sqlite3.OperationalError) for r in results), results
        assert (await store.count_jobs())["total"] == 0
        await store.add_job(jobs[0])  # the writer goes on
        assert (await store.count_jobs())["total"] == 1
    finally:
        await store.close()
