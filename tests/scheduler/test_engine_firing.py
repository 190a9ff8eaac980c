"""The engine's fire path: hand-over of a due batch, then re-arming of its cron jobs
on the loop's next turn — with changes made in between winning over the old schedule.

Real engine, wheel and SQLite store; runs complete at once (InstantRunner)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import AsyncIterator, Callable, Sequence

import pytest

from traitor.domain.job import ExecType, Job, JobState, new_id
from traitor.domain.timeutil import now_ms
from traitor.runtime.instant import InstantRunner
from traitor.scheduler.engine import Engine, EngineConfig, Fire
from traitor.scheduler.middleware import Middleware
from traitor.store.sqlite import SqliteStore


class FireLog(Middleware):
    """Keeps every batch handed over; ``then`` runs right after a batch, before the
    fired jobs are re-armed (as an API request landing in that gap would)."""

    def __init__(self) -> None:
        self.batches: list[tuple[list[Fire], int]] = []
        self.then: Callable[[list[Fire]], None] | None = None

    def on_fires(self, fires: Sequence[Fire], handed_at: int) -> None:
        self.batches.append((list(fires), handed_at))
        if self.then is not None:
            self.then(list(fires))

    def fired(self, job_id: str) -> list[int]:
        return [at for fires, _ in self.batches for jid, at, _, _ in fires if jid == job_id]


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[tuple[Engine, FireLog]]:
    log = FireLog()
    engine = Engine(SqliteStore(tmp_path / "t.db"), InstantRunner(),
                    config=EngineConfig(node_id="test", timezone="UTC"), middleware=[log])
    await engine.start()
    try:
        yield engine, log
    finally:
        await engine.close(1.0)


def every_second(**fields: object) -> Job:
    return Job(job_id=new_id(), exec_type=ExecType.TIMING, cron="* * * * * *", script="1", state=JobState.RUNNABLE,
               name="tick", **fields)  # type: ignore[arg-type]


async def add(engine: Engine, job: Job) -> Job:
    await engine.store.add_job(job)
    engine.arm(job)
    return job


async def wait_for(predicate: Callable[[], bool], timeout: float = 4.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_cron_job_fires_each_second_and_is_rearmed_at_its_next_instant(engine) -> None:
    eng, log = engine
    job = await add(eng, every_second())
    await wait_for(lambda: len(log.fired(job.job_id)) >= 3)
    fired = log.fired(job.job_id)
    assert fired[1] - fired[0] == 1000 and fired[2] - fired[1] == 1000
    await asyncio.sleep(0)  # the re-arm runs on the loop's turn after the hand-over
    assert eng.wheel.when(job.job_id) in (fired[-1] + 1000, fired[-1] + 2000)
    handed = [handed_at - at for fires, handed_at in log.batches for _, at, _, _ in fires]
    assert all(0 <= late < 500 for late in handed), handed


async def test_disarm_between_hand_over_and_rearm_stops_the_job(engine) -> None:
    eng, log = engine
    job = await add(eng, every_second())
    log.then = lambda fires: eng.disarm(job.job_id)
    await wait_for(lambda: len(log.fired(job.job_id)) >= 1)
    log.then = None
    await asyncio.sleep(2.2)
    assert eng.wheel.when(job.job_id) is None
    assert len(log.fired(job.job_id)) == 1, "the old schedule re-armed a disarmed job"


async def test_rearm_between_hand_over_and_rearm_keeps_the_new_schedule(engine) -> None:
    eng, log = engine
    job = await add(eng, every_second())
    hourly = replace(job, cron="0 0 * * * *", version=job.version + 1)

    def update(fires: list[Fire]) -> None:
        log.then = None
        eng.arm(hourly)

    log.then = update
    await wait_for(lambda: len(log.fired(job.job_id)) >= 1)
    await asyncio.sleep(1.5)
    next_hour = (now_ms() // 3_600_000 + 1) * 3_600_000
    assert eng.wheel.when(job.job_id) == next_hour
    assert len(log.fired(job.job_id)) == 1


async def test_delay_job_fires_once_and_is_not_rearmed(engine) -> None:
    eng, log = engine
    at = (now_ms() // 1000 + 1) * 1000
    job = await add(eng, Job(job_id=new_id(), exec_type=ExecType.DELAY, exec_at=at, script="1", state=JobState.RUNNABLE))
    await wait_for(lambda: len(log.fired(job.job_id)) == 1)
    await asyncio.sleep(0.1)
    assert eng.wheel.when(job.job_id) is None
    assert log.fired(job.job_id) == [at]



async def test_metrics_count_every_fire_of_a_batch_with_its_lateness(engine) -> None:
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from traitor.api.metrics import MetricsMiddleware

    eng, log = engine
    metrics = MetricsMiddleware()
    eng.middleware.insert(0, metrics)
    jobs = [await add(eng, every_second()) for _ in range(30)]
    await wait_for(lambda: all(len(log.fired(job.job_id)) >= 2 for job in jobs))
    metrics.refresh(eng)
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(metrics.registry).decode())}
    fired = sum(len(fires) for fires, _ in log.batches)
    total = [s.value for s in families["traitor_fires"].samples if s.name == "traitor_fires_total"]
    assert total == [fired]
    lateness = {s.name: s.value for s in families["traitor_fire_lateness_seconds"].samples if not s.labels.get("le")}
    assert lateness["traitor_fire_lateness_seconds_count"] == fired
    handed = sum(handed_at - at for fires, handed_at in log.batches for _, at, _, _ in fires) / 1000
    assert lateness["traitor_fire_lateness_seconds_sum"] == pytest.approx(handed)


async def test_a_long_start_up_logs_its_arming_progress(tmp_path: Path, monkeypatch, caplog) -> None:
    from traitor.scheduler import engine as engine_module

    store = SqliteStore(tmp_path / "many.db")
    await store.start()
    for _ in range(12_000):
        await store.add_job(every_second())
    await store.close()
    monkeypatch.setattr(engine_module, "ARMING_LOG_EVERY", 0.0)  # a line per batch read
    eng = Engine(SqliteStore(tmp_path / "many.db"), InstantRunner(), config=EngineConfig(node_id="t"))
    with caplog.at_level("INFO", logger="traitor.engine"):
        await eng.start()
    await eng.close(1.0)
    read = [int(r.getMessage().split()[1]) for r in caplog.records if r.getMessage().startswith("arming:")]
    assert len(read) >= 2 and read == sorted(read) and read[-1] == 12_000
