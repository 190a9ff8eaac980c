"""The store contract (``traitor.store.abc``), run against every backend.

The ``store`` and ``backend`` fixtures (``conftest.py``) are parametrised over SQLite,
PostgreSQL and MongoDB; see there for how each is set up and skipped.
"""

from __future__ import annotations

import sys

import asyncio
import dataclasses
import random
from pathlib import Path
from typing import Any

import pytest

from traitor.domain.errors import ConflictError
from traitor.domain.job import ExecType, Job, JobState, Misfire, Overlap, Run, RunStatus, Trigger, new_id
from traitor.store import JobQuery, JobStore, RunQuery, open_store, sqlite_path
from traitor.store.abc import get_jobs
from traitor.store.codec import namespace_token

T0 = 1_800_000_000_000  # a fixed instant (ms), 2027-01-15


def make_job(**changes: Any) -> Job:
    base = Job(
        job_id=new_id(),
        exec_type=ExecType.TIMING,
        name="job",
        cron="*/5 * * * *",
        script="console.log('hi')",
        created_at=T0,
        updated_at=T0,
    )
    return base.replace(**changes)


def make_run(job_id: str, scheduled_at: int, **changes: Any) -> Run:
    return Run(run_id=new_id(), job_id=job_id, scheduled_at=scheduled_at, **changes)


def slot(run: Run) -> tuple[str, int, int]:
    return (run.job_id, run.scheduled_at, run.attempt)


# =========================================================================== jobs


async def test_add_and_get_round_trips_every_field(store: JobStore) -> None:
    job = make_job(
        exec_type=ExecType.DELAY,
        name="Every field",
        description="a description",
        cron=None,
        exec_at=T0 + 60_000,
        state=JobState.RUNNABLE,
        timezone="Europe/Paris",
        timeout=2.5,
        memory_limit=128,
        overlap=Overlap.QUEUE,
        misfire=Misfire.ALL,
        misfire_grace=12.5,
        retries=3,
        last_exec_time=T0 - 1,
        created_at=T0 - 10,
        updated_at=T0 - 5,
        version=7,
        max_concurrent=4,
    )
    await store.add_job(job)
    got = await store.get_job(job.job_id)
    assert got == job
    assert isinstance(got.exec_type, ExecType) and isinstance(got.state, JobState)
    assert isinstance(got.overlap, Overlap) and isinstance(got.misfire, Misfire)

    plain = make_job()  # every optional field left empty
    await store.add_job(plain)
    assert await store.get_job(plain.job_id) == plain


async def test_get_missing_job_and_ping(store: JobStore) -> None:
    assert await store.get_job("no-such-job") is None
    await store.ping()


async def test_get_many_jobs(store: JobStore) -> None:
    jobs = [make_job(name=f"j{i}") for i in range(620)]  # more than one IN chunk
    for job in jobs:
        await store.add_job(job)
    assert await get_jobs(store, []) == {}
    few = [jobs[3].job_id, "missing", jobs[3].job_id, jobs[9].job_id]
    assert await get_jobs(store, few) == {jobs[3].job_id: jobs[3], jobs[9].job_id: jobs[9]}
    everything = await get_jobs(store, [j.job_id for j in jobs] + ["missing"])
    assert everything == {j.job_id: j for j in jobs}


async def test_add_duplicate_id_is_a_conflict(store: JobStore) -> None:
    job = make_job(name="first")
    await store.add_job(job)
    with pytest.raises(ConflictError):
        await store.add_job(job.replace(name="second"))
    assert (await store.get_job(job.job_id)).name == "first"
    # The store still works after the failed write.
    other = make_job()
    await store.add_job(other)
    assert await store.get_job(other.job_id) == other


async def test_update_job_replaces_the_row(store: JobStore) -> None:
    job = make_job(name="before", cron="0 * * * *")
    await store.add_job(job)
    changed = job.replace(
        name="after",
        cron="0 0 8 ? * MON",
        script="// new",
        state=JobState.RUNNABLE,
        timeout=None,
        retries=2,
        updated_at=T0 + 1000,
        version=job.version + 1,
    )
    assert await store.update_job(changed) is True
    assert await store.get_job(job.job_id) == changed

    ghost = make_job()
    assert await store.update_job(ghost) is False
    assert await store.get_job(ghost.job_id) is None


async def test_delete_job(store: JobStore) -> None:
    job = make_job()
    await store.add_job(job)
    assert await store.delete_job(job.job_id) is True
    assert await store.get_job(job.job_id) is None
    assert await store.delete_job(job.job_id) is False
    assert await store.delete_job("never-there") is False


async def test_delete_job_removes_its_runs_and_kv_only(store: JobStore) -> None:
    doomed, kept = make_job(), make_job()
    for job in (doomed, kept):
        await store.add_job(job)
        await store.claim_runs([make_run(job.job_id, T0 + i * 1000) for i in range(3)])
        await store.kv_set(job.job_id, "k", job.job_id)
    doomed_run = (await store.list_runs(RunQuery(job_id=doomed.job_id)))[0][0]

    assert await store.delete_job(doomed.job_id) is True
    assert await store.list_runs(RunQuery(job_id=doomed.job_id)) == ([], 0)
    assert await store.get_run(doomed_run.run_id) is None
    assert await store.kv_get(doomed.job_id, "k") is None
    assert (await store.list_runs(RunQuery(job_id=kept.job_id)))[1] == 3
    assert await store.kv_get(kept.job_id, "k") == kept.job_id
    # The slots of the deleted job are free again (a re-created job id may claim them).
    assert len(await store.claim_runs([make_run(doomed.job_id, T0)])) == 1


# ---------------------------------------------------------------- listing


async def _seed_listing(store: JobStore) -> list[Job]:
    jobs = [
        make_job(name="Backup database", exec_type=ExecType.TIMING, state=JobState.RUNNABLE, created_at=T0 + 1,
                 updated_at=T0 + 50, last_exec_time=T0 + 300),
        make_job(name="cleanup tmp", exec_type=ExecType.TIMING, state=JobState.STOPPED, created_at=T0 + 2,
                 updated_at=T0 + 40, last_exec_time=None),
        make_job(name="Send REPORT", exec_type=ExecType.DELAY, exec_at=T0 + 10**6, cron=None,
                 state=JobState.RUNNABLE, created_at=T0 + 3, updated_at=T0 + 30, last_exec_time=T0 + 100),
        make_job(name="Été à Paris", exec_type=ExecType.DELAY, exec_at=T0 + 10**6, cron=None,
                 state=JobState.STOPPED, created_at=T0 + 4, updated_at=T0 + 20, last_exec_time=T0 + 200),
        make_job(name="alpha report", exec_type=ExecType.TIMING, state=JobState.RUNNABLE, created_at=T0 + 5,
                 updated_at=T0 + 10, last_exec_time=None),
    ]
    for job in jobs:
        await store.add_job(job)
    return jobs


def _names(page: tuple[list[Job], int]) -> list[str]:
    return [job.name for job in page[0]]


async def test_list_jobs_filters_and_total(store: JobStore) -> None:
    jobs = await _seed_listing(store)

    page, total = await store.list_jobs(JobQuery())
    assert total == 5 and {j.job_id for j in page} == {j.job_id for j in jobs}
    assert all(j == next(k for k in jobs if k.job_id == j.job_id) for j in page)  # scripts included

    assert (await store.list_jobs(JobQuery(exec_type=ExecType.DELAY)))[1] == 2
    assert (await store.list_jobs(JobQuery(state=JobState.RUNNABLE)))[1] == 3
    assert _names(await store.list_jobs(JobQuery(exec_type=ExecType.TIMING, state=JobState.RUNNABLE))) == [
        "Backup database",
        "alpha report",
    ]
    # Case-insensitive substring of the name, non-ASCII included.
    assert sorted(_names(await store.list_jobs(JobQuery(search="report")))) == ["Send REPORT", "alpha report"]
    assert _names(await store.list_jobs(JobQuery(search="ÉTÉ"))) == ["Été à Paris"]
    assert _names(await store.list_jobs(JobQuery(search="à p"))) == ["Été à Paris"]
    assert _names(await store.list_jobs(JobQuery(search="UP", state=JobState.STOPPED))) == ["cleanup tmp"]
    assert await store.list_jobs(JobQuery(search="%")) == ([], 0)  # no wildcard
    assert await store.list_jobs(JobQuery(search="nothing like it")) == ([], 0)
    assert (await store.list_jobs(JobQuery(search="")))[1] == 5


async def test_list_jobs_sorts(store: JobStore) -> None:
    await _seed_listing(store)

    async def by(sort: str, desc: bool = False) -> list[str]:
        return _names(await store.list_jobs(JobQuery(sort=sort, descending=desc)))  # type: ignore[arg-type]

    # Byte order of the UTF-8 name on every backend (upper case before lower case).
    assert await by("name") == ["Backup database", "Send REPORT", "alpha report", "cleanup tmp", "Été à Paris"]
    assert await by("name", True) == list(reversed(await by("name")))
    created = ["Backup database", "cleanup tmp", "Send REPORT", "Été à Paris", "alpha report"]
    assert await by("created") == created
    assert await by("created", True) == list(reversed(created))
    assert await by("next") == created  # the store sorts "next" like "created"
    assert await by("updated") == list(reversed(created))
    # last = last_exec_time, a job that never ran counts as the oldest.
    last = await by("last")
    assert last[2:] == ["Send REPORT", "Été à Paris", "Backup database"]
    assert set(last[:2]) == {"cleanup tmp", "alpha report"}
    assert (await by("last", True))[:3] == ["Backup database", "Été à Paris", "Send REPORT"]


async def test_list_jobs_pagination_and_ties(store: JobStore) -> None:
    jobs = [make_job(name="same name", created_at=T0 + i // 3) for i in range(23)]
    for job in jobs:
        await store.add_job(job)
    for desc in (False, True):
        for sort in ("name", "created"):
            seen: list[str] = []
            for offset in range(0, 30, 5):
                page, total = await store.list_jobs(JobQuery(sort=sort, descending=desc, offset=offset, limit=5))
                assert total == 23
                assert len(page) == min(5, max(0, 23 - offset))
                seen += [job.job_id for job in page]
            assert len(seen) == 23 and set(seen) == {j.job_id for j in jobs}  # no duplicate, none missing
            full = [j.job_id for j in (await store.list_jobs(JobQuery(sort=sort, descending=desc, limit=100)))[0]]
            assert seen == full  # pages are slices of one stable order
    assert await store.list_jobs(JobQuery(offset=100)) == ([], 23)
    assert await store.list_jobs(JobQuery(limit=0)) == ([], 23)


async def test_iter_jobs_batches(store: JobStore) -> None:
    assert [b async for b in store.iter_jobs()] == []
    jobs = [make_job(state=JobState.RUNNABLE if i % 3 == 0 else JobState.STOPPED) for i in range(25)]
    for job in jobs:
        await store.add_job(job)

    batches = [b async for b in store.iter_jobs(batch=10)]
    assert [len(b) for b in batches] == [10, 10, 5]
    assert sorted(j.job_id for b in batches for j in b) == sorted(j.job_id for j in jobs)
    assert all(j == next(k for k in jobs if k.job_id == j.job_id) for b in batches for j in b)

    enabled = [j async for b in store.iter_jobs(enabled_only=True, batch=4) for j in b]
    assert sorted(j.job_id for j in enabled) == sorted(j.job_id for j in jobs if j.enabled)
    assert [len(b) async for b in store.iter_jobs(batch=25)] == [25]
    assert [len(b) async for b in store.iter_jobs(batch=5000)] == [25]


async def test_job_versions_and_counts(store: JobStore) -> None:
    assert await store.job_versions() == {}
    assert await store.count_jobs() == {"total": 0, "runnable": 0, "stopped": 0, "timing": 0, "delay": 0}
    a = make_job(state=JobState.RUNNABLE, version=3)
    b = make_job(state=JobState.RUNNABLE, version=1, exec_type=ExecType.DELAY, exec_at=T0, cron=None)
    c = make_job(state=JobState.STOPPED, version=9)
    for job in (a, b, c):
        await store.add_job(job)
    assert await store.job_versions() == {a.job_id: 3, b.job_id: 1}
    assert await store.count_jobs() == {"total": 3, "runnable": 2, "stopped": 1, "timing": 2, "delay": 1}
    await store.update_job(c.replace(state=JobState.RUNNABLE, version=10))
    assert await store.job_versions() == {a.job_id: 3, b.job_id: 1, c.job_id: 10}


async def test_set_last_exec(store: JobStore) -> None:
    timing = make_job(state=JobState.RUNNABLE, version=4)
    delay = make_job(exec_type=ExecType.DELAY, exec_at=T0, cron=None, state=JobState.RUNNABLE, version=2)
    idle = make_job(state=JobState.RUNNABLE)
    for job in (timing, delay, idle):
        await store.add_job(job)

    await store.set_last_exec(
        [
            (timing.job_id, T0 + 1000, None),
            (delay.job_id, T0 + 2000, JobState.STOPPED),  # a delay job stops once it has fired
            ("no-such-job", T0, None),  # ignored
            (timing.job_id, T0 + 3000, None),  # the later update of the same job wins
        ]
    )
    got_timing, got_delay = await store.get_job(timing.job_id), await store.get_job(delay.job_id)
    assert got_timing == timing.replace(last_exec_time=T0 + 3000)  # nothing else changed, version included
    assert got_delay == delay.replace(last_exec_time=T0 + 2000, state=JobState.STOPPED)
    assert await store.get_job(idle.job_id) == idle
    assert await store.job_versions() == {timing.job_id: 4, idle.job_id: 1}
    await store.set_last_exec([])
    assert await store.get_job("no-such-job") is None

    many = [make_job() for _ in range(300)]
    for job in many:
        await store.add_job(job)
    await store.set_last_exec([(job.job_id, T0 + i, JobState.RUNNABLE) for i, job in enumerate(many)])
    got = {j.job_id: j for b in [b async for b in store.iter_jobs()] for j in b}
    assert all(got[job.job_id].last_exec_time == T0 + i for i, job in enumerate(many))
    assert all(got[job.job_id].state is JobState.RUNNABLE for job in many)


# =========================================================================== runs


async def test_claim_runs_exactly_once(store: JobStore) -> None:
    job = make_job()
    first = [make_run(job.job_id, T0 + i * 1000) for i in range(5)]
    assert await store.claim_runs(first) == first
    assert await store.claim_runs([]) == []

    # The same slots under other run ids (another node's claims): none is new.
    again = [make_run(job.job_id, T0 + i * 1000) for i in range(5)]
    assert await store.claim_runs(again) == []
    # A mixed burst: only the new slots are claimed, in the order given.
    fresh = [make_run(job.job_id, T0 + 10_000), make_run(job.job_id, T0, attempt=1), make_run("other", T0)]
    mixed = [again[0], fresh[0], again[1], fresh[1], fresh[2]]
    assert await store.claim_runs(mixed) == fresh
    # Twice the same slot in one call: one wins.
    twins = [make_run(job.job_id, T0 + 20_000), make_run(job.job_id, T0 + 20_000)]
    assert await store.claim_runs(twins) == twins[:1]

    assert (await store.list_runs(RunQuery()))[1] == 9
    stored = await store.get_run(first[0].run_id)
    assert stored == first[0] and stored.status is RunStatus.RUNNING
    assert await store.get_run(again[0].run_id) is None


async def test_concurrent_claims_from_two_instances(backend: Any) -> None:
    """Two store instances (own connections) claim the same slots at the same moment,
    each with its own run ids: every slot is won exactly once."""
    a, b = await backend.open("shared"), await backend.open("shared")
    jobs = [new_id() for _ in range(10)]
    slots = [(job_id, T0 + i * 1000) for job_id in jobs for i in range(60)]
    runs_a = [make_run(j, t, node="a") for j, t in slots]
    runs_b = [make_run(j, t, node="b") for j, t in slots]
    rng = random.Random(7)
    rng.shuffle(runs_b)  # b claims in another order than a

    async def claim(store: JobStore, runs: list[Run], size: int) -> list[Run]:
        won: list[Run] = []
        for i in range(0, len(runs), size):
            won += await store.claim_runs(runs[i : i + size])
        return won

    async def claim_all(store: JobStore, runs: list[Run], sizes: list[int]) -> list[Run]:
        # Several concurrent claimers per instance, as a busy node has.
        parts = await asyncio.gather(*(claim(store, runs[k::len(sizes)], size) for k, size in enumerate(sizes)))
        return [run for part in parts for run in part]

    won_a, won_b = await asyncio.gather(claim_all(a, runs_a, [7, 50, 1]), claim_all(b, runs_b, [13, 200]))
    slots_a, slots_b = {slot(r) for r in won_a}, {slot(r) for r in won_b}
    assert len(slots_a) == len(won_a) and len(slots_b) == len(won_b)
    assert not slots_a & slots_b
    assert slots_a | slots_b == {(j, t, 0) for j, t in slots}

    winners = {r.run_id for r in won_a + won_b}
    page, total = await a.list_runs(RunQuery(limit=10_000))
    assert total == len(slots) and {r.run_id for r in page} == winners
    page_b, _ = await b.list_runs(RunQuery(limit=10_000))
    assert {r.run_id for r in page_b} == winners


async def test_claim_a_burst_of_5000(store: JobStore) -> None:
    runs = [make_run(f"job-{i % 50}", T0 + (i // 50) * 1000) for i in range(5000)]
    assert len(await store.claim_runs(runs)) == 5000
    assert await store.claim_runs([make_run(r.job_id, r.scheduled_at) for r in runs]) == []
    assert (await store.list_runs(RunQuery(limit=1)))[1] == 5000


async def test_finish_runs(store: JobStore) -> None:
    job = make_job()
    claimed = [make_run(job.job_id, T0 + i * 1000, started_at=T0 + i * 1000 + 5, node="n1") for i in range(3)]
    await store.claim_runs(claimed)

    done = [
        finished(claimed[0], status=RunStatus.SUCCESS, finished_at=T0 + 50, output="ok\n"),
        finished(claimed[1], status=RunStatus.ERROR, finished_at=T0 + 1050, output="x",
                 error="Error: boom\n    at <eval>:1", node="n2"),
    ]
    # Never claimed (e.g. a fire that was skipped): inserted.
    skipped = make_run(job.job_id, T0 + 9000, status=RunStatus.SKIPPED, trigger=Trigger.SCHEDULE,
                       finished_at=T0 + 9000, node="n1")
    await store.finish_runs([*done, skipped])
    assert await store.get_run(done[0].run_id) == done[0]
    assert await store.get_run(done[1].run_id) == done[1]
    assert await store.get_run(skipped.run_id) == skipped
    assert await store.get_run(claimed[2].run_id) == claimed[2]  # untouched, still running

    # Finishing again overwrites (last write wins); finishing nothing is fine.
    timeout = finished(done[0], status=RunStatus.TIMEOUT)
    await store.finish_runs([timeout])
    assert (await store.get_run(done[0].run_id)).status is RunStatus.TIMEOUT
    await store.finish_runs([])

    # A final state under another run id for a slot someone else holds is not stored,
    # and does not fail the other runs of the batch.
    intruder = make_run(job.job_id, T0 + 2000, status=RunStatus.SUCCESS)
    last = finished(claimed[2], status=RunStatus.CRASHED, finished_at=T0 + 2100)
    await store.finish_runs([intruder, last])
    assert await store.get_run(intruder.run_id) is None
    assert await store.get_run(last.run_id) == last
    assert (await store.list_runs(RunQuery(job_id=job.job_id)))[1] == 4


def finished(run: Run, **changes: Any) -> Run:
    return dataclasses.replace(run, **changes)


async def test_get_missing_run(store: JobStore) -> None:
    assert await store.get_run("no-such-run") is None


async def test_list_runs_filters_order_and_pages(store: JobStore) -> None:
    a, b = new_id(), new_id()
    runs = []
    for i in range(12):
        runs.append(make_run(a, T0 + i * 1000, status=RunStatus.SUCCESS if i % 2 else RunStatus.ERROR,
                             started_at=T0 + i * 1000 + 1, finished_at=T0 + i * 1000 + 2))
    for i in range(5):
        runs.append(make_run(b, T0 + i * 1000 + 500, status=RunStatus.SUCCESS, started_at=T0 + i * 1000 + 501))
    # Retries of one fire: same scheduled_at, ordered by started_at (newest first), unstarted last.
    retry0 = make_run(b, T0 + 20_000, attempt=0, status=RunStatus.ERROR, started_at=T0 + 20_001)
    retry1 = make_run(b, T0 + 20_000, attempt=1, status=RunStatus.ERROR, started_at=T0 + 25_000)
    retry2 = make_run(b, T0 + 20_000, attempt=2, status=RunStatus.RUNNING, started_at=None)
    runs += [retry0, retry1, retry2]
    random.Random(3).shuffle(runs)
    await store.claim_runs(runs)

    page, total = await store.list_runs(RunQuery(limit=100))
    assert total == 20
    assert [r.run_id for r in page[:3]] == [retry1.run_id, retry0.run_id, retry2.run_id]
    keys = [r.scheduled_at for r in page]
    assert keys == sorted(keys, reverse=True)

    only_a, total_a = await store.list_runs(RunQuery(job_id=a))
    assert total_a == 12 and [r.scheduled_at for r in only_a] == [T0 + i * 1000 for i in reversed(range(12))]
    assert only_a[0] == next(r for r in runs if r.job_id == a and r.scheduled_at == T0 + 11_000)

    assert (await store.list_runs(RunQuery(status=RunStatus.ERROR)))[1] == 6 + 2
    assert (await store.list_runs(RunQuery(job_id=a, status=RunStatus.SUCCESS)))[1] == 6
    assert (await store.list_runs(RunQuery(status=RunStatus.MISSED))) == ([], 0)

    window, total_w = await store.list_runs(RunQuery(job_id=a, since=T0 + 3000, until=T0 + 7000))
    assert total_w == 4 and [r.scheduled_at for r in window] == [T0 + 6000, T0 + 5000, T0 + 4000, T0 + 3000]
    assert (await store.list_runs(RunQuery(since=T0 + 20_000)))[1] == 3
    assert (await store.list_runs(RunQuery(until=T0)))[1] == 0

    seen = []
    for offset in range(0, 20, 6):
        part, total_p = await store.list_runs(RunQuery(offset=offset, limit=6))
        assert total_p == 20
        seen += [r.run_id for r in part]
    assert seen == [r.run_id for r in page]
    assert await store.list_runs(RunQuery(offset=40)) == ([], 20)
    assert await store.list_runs(RunQuery(limit=0)) == ([], 20)


async def test_prune_runs(store: JobStore) -> None:
    a, b = new_id(), new_id()
    runs = [make_run(a, T0 + i * 1000, status=RunStatus.SUCCESS) for i in range(10)]
    runs += [make_run(b, T0 + i * 1000, status=RunStatus.ERROR) for i in range(3)]
    running_old = make_run(a, T0 - 10**9, status=RunStatus.RUNNING)  # never pruned
    running_new = make_run(a, T0 + 99_000, status=RunStatus.RUNNING)
    await store.claim_runs([*runs, running_old, running_new])

    # Keep the 4 newest finished runs of each job; nothing is old enough for the age rule.
    assert await store.prune_runs(4, T0 - 10**10) == 6
    left_a = [r.scheduled_at for r in (await store.list_runs(RunQuery(job_id=a)))[0]]
    assert left_a == [T0 + 99_000, T0 + 9000, T0 + 8000, T0 + 7000, T0 + 6000, T0 - 10**9]
    assert (await store.list_runs(RunQuery(job_id=b)))[1] == 3
    assert await store.prune_runs(4, T0 - 10**10) == 0  # idempotent

    # Age: every finished run scheduled before the cut goes, however few a job has.
    assert await store.prune_runs(100, T0 + 2000) == 2  # b's runs at T0 and T0+1000
    assert [r.scheduled_at for r in (await store.list_runs(RunQuery(job_id=b)))[0]] == [T0 + 2000]
    # Both rules at once.
    # a: 9000 is kept, 8000/7000/6000 go (count); b: 2000 would be kept by count, goes by age.
    assert await store.prune_runs(1, T0 + 7000) == 4
    assert (await store.list_runs(RunQuery()))[1] == 3  # a: two running + 9000
    assert await store.get_run(running_old.run_id) == running_old
    assert await store.prune_runs(0, 0) == 1
    assert {r.run_id for r in (await store.list_runs(RunQuery()))[0]} == {running_old.run_id, running_new.run_id}


# =========================================================================== key/value


async def test_kv(store: JobStore) -> None:
    job, other = new_id(), new_id()
    assert await store.kv_get(job, "counter") is None
    await store.kv_set(job, "counter", "1")
    assert await store.kv_get(job, "counter") == "1"
    await store.kv_set(job, "counter", "2")  # overwrite
    assert await store.kv_get(job, "counter") == "2"
    await store.kv_set(job, "empty", "")
    assert await store.kv_get(job, "empty") == ""
    await store.kv_set(other, "counter", "other")
    assert await store.kv_get(job, "counter") == "2"
    assert await store.kv_get(other, "counter") == "other"

    assert await store.kv_delete(job, "counter") is True
    assert await store.kv_get(job, "counter") is None
    assert await store.kv_delete(job, "counter") is False
    assert await store.kv_get(other, "counter") == "other"
    await store.kv_set(job, "counter", "3")  # set again after delete
    assert await store.kv_get(job, "counter") == "3"


# =========================================================================== namespaces, sizes, text


async def test_namespaces_are_isolated(backend: Any) -> None:
    red, blue = await backend.open("red"), await backend.open("blue")
    job = make_job(state=JobState.RUNNABLE)
    await red.add_job(job)
    run = make_run(job.job_id, T0)
    assert await red.claim_runs([run]) == [run]
    await red.kv_set(job.job_id, "k", "red")

    assert await blue.get_job(job.job_id) is None
    assert await blue.list_jobs(JobQuery()) == ([], 0)
    assert [b async for b in blue.iter_jobs()] == []
    assert await blue.job_versions() == {}
    assert (await blue.count_jobs())["total"] == 0
    assert await blue.get_run(run.run_id) is None
    assert await blue.list_runs(RunQuery()) == ([], 0)
    assert await blue.kv_get(job.job_id, "k") is None
    # Each cluster arbitrates its own claims, and may hold a job of the same id.
    assert len(await blue.claim_runs([make_run(job.job_id, T0)])) == 1
    await blue.add_job(job.replace(name="blue's"))
    assert (await red.get_job(job.job_id)).name == job.name
    assert await blue.delete_job(job.job_id) is True
    assert await red.get_job(job.job_id) == job
    assert await red.kv_get(job.job_id, "k") == "red"


async def test_large_script_and_output(store: JobStore) -> None:
    chunk = "const ü = '日本語 ✓';\n"  # multi-byte characters: 512 KiB of UTF-8
    script = (chunk * (512 * 1024 // len(chunk.encode()) + 1)).encode()[: 512 * 1024].decode("utf-8", "ignore")
    assert len(script.encode()) > 512 * 1024 - 4
    job = make_job(script=script)
    await store.add_job(job)
    assert (await store.get_job(job.job_id)).script == script
    assert (await store.list_jobs(JobQuery()))[0][0].script == script

    output = "".join(f"line {i}: {'x' * 90} ✓\n" for i in range(1000))  # ~100 KiB
    error = "Error: big\n" + "    at f (<eval>:1)\n" * 2000
    run = make_run(job.job_id, T0, status=RunStatus.OUTPUT_TRUNCATED, output=output, error=error)
    await store.finish_runs([run])
    got = await store.get_run(run.run_id)
    assert got.output == output and got.error == error
    assert (await store.list_runs(RunQuery(job_id=job.job_id)))[0] == [run]
    big_value = "v" * (256 * 1024)
    await store.kv_set(job.job_id, "big", big_value)
    assert await store.kv_get(job.job_id, "big") == big_value


UNICODE = "Grüße, 日本語, emoji 🎉👩‍💻, RTL עברית, combining é (e\u0301), math 𝔘𝔫𝔦"


async def test_unicode_round_trip(store: JobStore) -> None:
    job = make_job(name=UNICODE, description=UNICODE * 3, script=f"console.log({UNICODE!r}) // \x00 NUL",
                   timezone="Asia/Tokyo")
    await store.add_job(job)
    assert await store.get_job(job.job_id) == job
    assert _names(await store.list_jobs(JobQuery(search="GRÜSSE"))) == [UNICODE]  # full case folding: ß = ss
    assert _names(await store.list_jobs(JobQuery(search="grusse"))) == []  # but no accent stripping
    assert _names(await store.list_jobs(JobQuery(search="grüße, 日本"))) == [UNICODE]
    assert _names(await store.list_jobs(JobQuery(search="🎉👩‍💻"))) == [UNICODE]

    run = make_run(job.job_id, T0, status=RunStatus.ERROR, node="nœud-1", output=UNICODE + "\x00\n",
                   error=f"Error: {UNICODE}")
    await store.finish_runs([run])
    assert await store.get_run(run.run_id) == run

    await store.kv_set(job.job_id, "clé 🔑", UNICODE + "\x00")
    assert await store.kv_get(job.job_id, "clé 🔑") == UNICODE + "\x00"

    # A lone surrogate (valid in JSON and JS strings, not in UTF-8) does not fail the write.
    odd = make_job(script="a\ud800b")
    await store.add_job(odd)
    assert (await store.get_job(odd.job_id)).script == "a\ufffdb"
    odd_run = make_run(odd.job_id, T0, status=RunStatus.SUCCESS, output="\udfff")
    await store.finish_runs([odd_run])
    assert (await store.get_run(odd_run.run_id)).output == "\ufffd"


# =========================================================================== lifecycle, schema


async def test_reopen_keeps_data_and_migrations_are_a_no_op(backend: Any) -> None:
    first = await backend.open("persist")
    latest = sys.modules[type(first).__module__].MIGRATIONS[-1][0]
    assert first.schema_versions == (0, latest)
    job = make_job()
    await first.add_job(job)
    await first.claim_runs([make_run(job.job_id, T0)])
    await first.kv_set(job.job_id, "k", "v")
    await first.close()
    await first.close()  # idempotent

    second = await backend.open("persist")
    assert second.schema_versions == (latest, latest)
    assert await second.get_job(job.job_id) == job
    assert (await second.list_runs(RunQuery()))[1] == 1
    assert await second.kv_get(job.job_id, "k") == "v"


async def test_a_database_at_version_n_is_migrated_forward(backend: Any) -> None:
    base = backend.base_migrations()
    old = await backend.open("legacy", migrations=base)
    job = make_job()
    await old.add_job(job)
    await old.close()

    upgraded = base + [backend.probe_migration(len(base) + 1)]
    new = await backend.open("legacy", migrations=upgraded)
    assert new.schema_versions == (len(base), len(base) + 1)
    assert await backend.has_probe(new)
    assert await new.get_job(job.job_id) == job
    await new.close()

    again = await backend.open("legacy", migrations=upgraded)
    assert again.schema_versions == (len(base) + 1, len(base) + 1)
    await again.close()

    # Code older than the database refuses to run on it.
    with pytest.raises(RuntimeError, match="newer"):
        await backend.open("legacy", migrations=base)


# =========================================================================== the factory


def test_open_store_picks_the_backend(tmp_path: Path) -> None:
    from traitor.store.mongodb import MongoStore
    from traitor.store.postgresql import PostgresStore
    from traitor.store.sqlite import SqliteStore

    default = open_store("sqlite://", data_dir=tmp_path)
    assert isinstance(default, SqliteStore) and default.path == tmp_path / "traitor.db"
    assert default.synchronous == "NORMAL"
    assert open_store("sqlite:///", data_dir=tmp_path).path == tmp_path / "traitor.db"
    assert open_store("sqlite://", namespace="prod", data_dir=tmp_path).path == tmp_path / "traitor-prod.db"
    explicit = open_store(f"sqlite://{tmp_path}/x/jobs.db", namespace="prod", synchronous="full")
    assert explicit.path == tmp_path / "x" / "jobs.db" and explicit.synchronous == "FULL"
    assert open_store(f"sqlite://{tmp_path}/j.db?synchronous=full").synchronous == "FULL"
    assert open_store("sqlite://rel.db", data_dir=tmp_path).path == tmp_path / "rel.db"
    assert open_store(f"sqlite://{tmp_path}/", namespace="a").path == tmp_path / "traitor-a.db"
    assert sqlite_path("sqlite://", namespace="Odd/Name", data_dir=tmp_path)[0].parent == tmp_path

    pg = open_store("postgresql://u@h:5432/db", namespace="prod")
    assert isinstance(pg, PostgresStore) and pg.schema == "traitor_prod"
    assert isinstance(open_store("postgres://u@h/db"), PostgresStore)
    mongo = open_store("mongodb://h:27017", namespace="prod")
    assert isinstance(mongo, MongoStore) and mongo.database_name == "traitor_prod"
    assert isinstance(open_store("mongodb+srv://cluster.example"), MongoStore)

    for bad in ("redis://h", "mysql://u:secret@h/db", "just-a-path", ""):
        with pytest.raises(ValueError, match="sqlite://") as info:
            open_store(bad)
        assert "secret" not in str(info.value)
    with pytest.raises(ValueError, match="synchronous"):
        open_store("sqlite://", data_dir=tmp_path, synchronous="off")


def test_namespace_tokens_are_safe_and_distinct() -> None:
    assert namespace_token("default") == "default"
    assert namespace_token("prod_eu1") == "prod_eu1"
    tokens = {namespace_token(n) for n in ("Prod", "prod", "pr-od", "pr od", "pr.od", "x" * 100, "y" * 100)}
    assert len(tokens) == 7
    assert all(len(t) <= 40 and t.replace("_", "").isalnum() and t.islower() or t.isdigit() for t in tokens)
    with pytest.raises(ValueError):
        namespace_token("")


# =========================================================================== MongoDB without a server
# The contract suite needs a MongoDB server (TRAITOR_TEST_MONGO_URL). These check the
# claim arbitration logic of the MongoDB backend against the driver's error shapes.


class _StubRuns:
    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.inserted: list[dict[str, Any]] = []

    async def insert_many(self, docs: list[dict[str, Any]], ordered: bool = True) -> None:
        assert ordered is False  # every run is attempted, whatever fails
        self.inserted = docs
        if self.error is not None:
            raise self.error


def _mongo_with(error: Exception | None) -> Any:
    from types import SimpleNamespace

    from traitor.store.mongodb import MongoStore

    store = MongoStore("mongodb://unused", namespace="stub")
    store._db = SimpleNamespace(runs=_StubRuns(error))  # type: ignore[assignment]
    return store


def _bulk_error(write_errors: list[dict[str, Any]], wce: list[dict[str, Any]] | None = None) -> Exception:
    from pymongo.errors import BulkWriteError

    return BulkWriteError(
        {"writeErrors": write_errors, "writeConcernErrors": wce or [], "nInserted": 0, "nUpserted": 0,
         "nMatched": 0, "nModified": 0, "nRemoved": 0, "upserted": []}
    )


async def test_mongodb_claims_keep_the_runs_not_refused_as_duplicates() -> None:
    runs = [make_run("j", T0 + i) for i in range(5)]
    assert await _mongo_with(None).claim_runs(runs) == runs
    store = _mongo_with(_bulk_error([{"index": 1, "code": 11000, "errmsg": "dup"},
                                     {"index": 3, "code": 11000, "errmsg": "dup"}]))
    assert await store.claim_runs(runs) == [runs[0], runs[2], runs[4]]
    assert [doc["_id"] for doc in store._db.runs.inserted] == [r.run_id for r in runs]


async def test_mongodb_claims_fail_on_any_other_write_error() -> None:
    from pymongo.errors import BulkWriteError

    runs = [make_run("j", T0 + i) for i in range(3)]
    other = _bulk_error([{"index": 0, "code": 11000, "errmsg": "dup"}, {"index": 2, "code": 2, "errmsg": "bad"}])
    with pytest.raises(BulkWriteError):
        await _mongo_with(other).claim_runs(runs)
    # Not acknowledged by a majority: nobody can tell which claims hold.
    unsure = _bulk_error([{"index": 0, "code": 11000, "errmsg": "dup"}], wce=[{"code": 64, "errmsg": "timeout"}])
    with pytest.raises(BulkWriteError):
        await _mongo_with(unsure).claim_runs(runs)
