"""Job management: every change a client can make, validated, stored, then armed.

The API (compatibility routes and ``/api/v1``), the CLI import and the UI all
go through :class:`JobService`, so the rules live in one place: validation
runs on the merged job, a write is acknowledged only once the store made it
durable, the wheel follows the stored state, and other nodes are told.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Mapping

from traitor.domain.errors import NotFoundError, ValidationError
from traitor.domain.job import (
    ExecType,
    Job,
    JobState,
    Run,
    apply_changes,
    coerce_changes,
    infer_exec_type,
    new_id,
    validate_job,
)
from traitor.scheduler.engine import Engine
from traitor.scheduler.libraries import LibraryImportReport, LibraryService, exported_libraries
from traitor.store.abc import JobQuery


def require_object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise ValidationError(None, "the request body must be a JSON object")
    return body


@dataclass(slots=True)
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


class JobService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = engine.store
        self.limits = engine.limits
        # Serialises read-modify-write of one job on this node.
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    # ------------------------------------------------------------------ reads
    async def get(self, job_id: str | None) -> Job:
        if not job_id:
            raise ValidationError("id", "the job id is required (?id=...)")
        job = await self.store.get_job(job_id)
        if job is None:
            raise NotFoundError(f"no job with id {job_id!r}")
        return job

    async def list(self, query: JobQuery) -> tuple[list[Job], int]:
        return await self.store.list_jobs(query)

    def next_fire(self, job: Job) -> int | None:
        return self.engine.next_fire(job)

    # ------------------------------------------------------------------ writes
    async def create(self, body: Any, type_hint: Any = None, *, enable: bool = False) -> Job:
        body = require_object(body)
        exec_type = infer_exec_type(body, type_hint)
        changes = coerce_changes(body, self.limits)
        changes["exec_type"] = exec_type
        # Built in one step: ``Job(...).replace(**changes)`` cost a second construction
        # through ``dataclasses.replace`` (~5 µs of event-loop time per create).
        job = Job(job_id=new_id(), **changes)
        if enable:
            job.state = JobState.RUNNABLE
        validate_job(job, self.limits, check_exec_at=enable or "exec_at" in changes)
        await self.store.add_job(job)
        await self._publish(job)
        return job

    async def update(self, job_id: str | None, body: Any) -> Job:
        body = require_object(body)
        job = await self.get(job_id)
        async with self._locks[job.job_id]:
            job = await self.get(job_id)
            changes = coerce_changes(body, self.limits)
            merged = apply_changes(job, changes)
            retyped = merged.exec_type is not job.exec_type
            validate_job(merged, self.limits, check_exec_at="exec_at" in changes or (merged.enabled and retyped))
            await self._save(merged)
        return merged

    async def set_enabled(self, job_id: str | None, enabled: bool, body: Any = None) -> Job:
        changes = coerce_changes(require_object(body), self.limits) if body else {}
        job = await self.get(job_id)
        async with self._locks[job.job_id]:
            job = await self.get(job_id)
            state = JobState.RUNNABLE if enabled else JobState.STOPPED
            merged = apply_changes(job, {**changes, "state": state})
            validate_job(merged, self.limits, check_exec_at=enabled or "exec_at" in changes)
            await self._save(merged)
        return merged

    async def set_script(self, job_id: str | None, script: Any) -> Job:
        return await self.update(job_id, {"script": script if script is not None else ""})

    async def delete(self, job_id: str | None) -> None:
        job = await self.get(job_id)
        async with self._locks[job.job_id]:
            if not await self.store.delete_job(job.job_id):
                raise NotFoundError(f"no job with id {job.job_id!r}")
            self.engine.disarm(job.job_id)
            await self.engine.coordinator.publish(job.job_id, job.version + 1)
            self._notify(job.job_id, None)
        self._locks.pop(job.job_id, None)

    async def trigger(self, job_id: str | None) -> Run:
        job = await self.get(job_id)
        return await self.engine.trigger(job)

    async def _save(self, job: Job) -> None:
        if not await self.store.update_job(job):
            raise NotFoundError(f"no job with id {job.job_id!r}")
        await self._publish(job)

    async def _publish(self, job: Job) -> None:
        self.engine.arm(job)
        await self.engine.coordinator.publish(job.job_id, job.version)
        self._notify(job.job_id, job)

    def _notify(self, job_id: str, job: Job | None) -> None:
        for mw in self.engine.middleware:
            mw.on_job_changed(job_id, job)

    # ------------------------------------------------------------------ import / export
    async def export(self) -> AsyncIterator[Job]:
        async for batch in self.store.iter_jobs():
            for job in batch:
                yield job

    async def import_document(
        self, document: Any, *, dry_run: bool = False, progress: Any = None
    ) -> tuple[LibraryImportReport, ImportReport]:
        """Import an export (``GET /api/v1/export``, ``traitor export``): its libraries
        first, since its jobs may require them, then its jobs."""
        libraries = await LibraryService(self.engine).import_libraries(exported_libraries(document), dry_run=dry_run)
        return libraries, await self.import_jobs(document, dry_run=dry_run, progress=progress)

    async def import_jobs(self, items: Any, *, dry_run: bool = False, progress: Any = None) -> ImportReport:
        """Create or update jobs from exported JSON, idempotently by ``jobId``.

        Each item is validated on its own; a bad one is reported and the rest
        still go in. ``progress`` (if given) is called with (done, total).
        """
        if isinstance(items, Mapping):
            items = items.get("jobs")
        if not isinstance(items, list):
            raise ValidationError("jobs", "expected a JSON array of jobs or {\"jobs\": [...]}")
        report = ImportReport()
        for index, item in enumerate(items):
            try:
                outcome, job_id = await self._import_one(item, dry_run)
            except ValidationError as exc:
                report.errors.append({"index": index, "field": exc.field, "error": exc.message})
            else:
                getattr(report, outcome).append(job_id)
            if progress is not None:
                progress(index + 1, len(items))
        return report

    async def _import_one(self, item: Any, dry_run: bool) -> tuple[str, str]:
        item = require_object(item)
        job_id = item.get("jobId")
        if job_id is not None and (not isinstance(job_id, str) or not 1 <= len(job_id) <= 64):
            raise ValidationError("jobId", "must be a string of 1 to 64 characters")
        existing = await self.store.get_job(job_id) if job_id else None
        state = _import_state(item.get("state"))
        changes = coerce_changes(item, self.limits)
        if existing is None:
            exec_type = infer_exec_type(item)
            changes["exec_type"] = exec_type
            job = Job(job_id=job_id or new_id(), **changes)
            job.state = state
            validate_job(job, self.limits, check_exec_at=job.enabled and job.exec_type is ExecType.DELAY)
            if not dry_run:
                await self.store.add_job(job)
                await self._publish(job)
            return "created", job.job_id
        merged = apply_changes(existing, {**changes, "state": state})
        if _same_config(existing, merged):
            return "unchanged", existing.job_id
        validate_job(merged, self.limits, check_exec_at=merged.enabled and "exec_at" in changes)
        if not dry_run:
            await self._save(merged)
        return "updated", existing.job_id


def _import_state(value: Any) -> JobState:
    if value in (None, 0, "0", False):
        return JobState.STOPPED
    if value in (1, "1", True):
        return JobState.RUNNABLE
    raise ValidationError("state", "must be 0 (stopped) or 1 (runnable)")


_VOLATILE = {"updated_at", "version", "last_exec_time", "created_at"}


def _same_config(a: Job, b: Job) -> bool:
    return all(getattr(a, name) == getattr(b, name) for name in a.__slots__ if name not in _VOLATILE)
