"""JobService: the job a create builds and stores."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import AsyncIterator

import pytest

from traitor.domain.job import ExecType, JobState, Misfire, Overlap
from traitor.runtime.instant import InstantRunner
from traitor.scheduler.engine import Engine, EngineConfig
from traitor.scheduler.jobs import JobService
from traitor.store.sqlite import SqliteStore


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[JobService]:
    engine = Engine(SqliteStore(tmp_path / "t.db"), InstantRunner(), config=EngineConfig(node_id="test", timezone="UTC"))
    await engine.start()
    try:
        yield JobService(engine)
    finally:
        await engine.close(1.0)


async def test_create_builds_the_job_from_the_body(service: JobService) -> None:
    body = {"name": "nightly", "cron": " 0 0 * * * ", "script": "1", "timeout": "2.5", "overlap": "SKIP",
            "jobId": "ignored", "state": 1}
    job = await service.create(body, "timing")
    assert uuid.UUID(job.job_id).version == 4
    assert (job.exec_type, job.name, job.cron, job.script, job.timeout) == (ExecType.TIMING, "nightly", "0 0 * * *",
                                                                           "1", 2.5)
    assert (job.overlap, job.misfire, job.state, job.version) == (Overlap.SKIP, Misfire.ONCE, JobState.STOPPED, 1)
    assert job.created_at == job.updated_at
    assert await service.store.get_job(job.job_id) == job
    assert service.next_fire(job) is None  # stopped: not armed

    enabled = await service.create({"name": "now", "cron": "* * * * *"}, None, enable=True)
    assert enabled.state is JobState.RUNNABLE and service.next_fire(enabled) is not None
