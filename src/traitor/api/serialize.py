"""JSON shapes of jobs and runs, as the original's clients expect them (SPEC §1)."""

from __future__ import annotations

from typing import Any

from traitor.domain.job import Job, Run
from traitor.domain.timeutil import to_rfc3339


def job_json(job: Job, next_fire: int | None = None, *, script: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "jobId": job.job_id,
        "name": job.name,
        "description": job.description,
        "execType": int(job.exec_type),
        "cron": job.cron or "",
        "execAt": job.exec_at // 1000 if job.exec_at is not None else None,
        "state": int(job.state),
        "lastExecTime": to_rfc3339(job.last_exec_time),
        "nextExecTime": to_rfc3339(next_fire),
        "timezone": job.timezone,
        "timeout": job.timeout,
        "memoryLimit": job.memory_limit,
        "overlap": job.overlap.value,
        "misfire": job.misfire.value,
        "misfireGrace": job.misfire_grace,
        "retries": job.retries,
        "maxConcurrent": job.max_concurrent,
        "createdAt": to_rfc3339(job.created_at),
        "updatedAt": to_rfc3339(job.updated_at),
        "version": job.version,
    }
    if script:
        data["script"] = job.script
    return data


def run_json(run: Run, *, output: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "runId": run.run_id,
        "jobId": run.job_id,
        "scheduledAt": to_rfc3339(run.scheduled_at),
        "startedAt": to_rfc3339(run.started_at),
        "finishedAt": to_rfc3339(run.finished_at),
        "status": run.status.value,
        "trigger": run.trigger.value,
        "attempt": run.attempt,
        "node": run.node,
        "error": run.error,
        "durationMs": (run.finished_at - run.started_at) if run.finished_at and run.started_at else None,
        "latenessMs": (run.started_at - run.scheduled_at) if run.started_at else None,
    }
    if output:
        data["output"] = run.output
    return data
