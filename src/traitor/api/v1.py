"""The versioned REST API: ``/api/v1``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import JSONResponse

from traitor.api.app import context
from traitor.api.schemas import (
    CronPreviewData,
    CronPreviewInput,
    DeletedData,
    ExportOut,
    ImportData,
    JobData,
    JobInput,
    JobPage,
    NewJobInput,
    RunData,
    RunPage,
    ScriptInput,
    StatsData,
    error_responses,
)
from traitor.api.serialize import job_json, run_json
from traitor.domain.errors import NotFoundError, ValidationError
from traitor.domain.job import ExecType, JobState, RunStatus
from traitor.domain.timeutil import now_ms, parse_rfc3339, to_rfc3339
from traitor.scheduler.libraries import LibraryService
from traitor.store.abc import JobQuery, RunQuery, get_jobs

router = APIRouter(prefix="/api/v1", tags=["v1"])

JOB_ID = Path(..., description="The job's id", min_length=1, max_length=64)


def _instant(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        try:
            return parse_rfc3339(text)
        except ValueError:
            raise ValidationError(name, f"must be RFC 3339 (2026-01-01T00:00:00Z) or Unix seconds, got {value!r}")
    return int(number * 1000 if number < 10**11 else number)


def _status(value: str | None) -> RunStatus | None:
    if not value:
        return None
    try:
        return RunStatus(value.strip().lower())
    except ValueError:
        allowed = ", ".join(s.value for s in RunStatus)
        raise ValidationError("status", f"must be one of {allowed}, got {value!r}") from None


def _job_data(request: Request, job: Any, status: int = 200) -> JSONResponse:
    ctx = context(request)
    return JSONResponse({"data": job_json(job, ctx.jobs.next_fire(job), script=True)}, status_code=status)


@router.get("/jobs", summary="List jobs", response_model=JobPage, responses=error_responses(400))
async def list_jobs(
    request: Request,
    offset: int = Query(0, ge=0, le=10**9),
    limit: int = Query(50, ge=1, le=1000),
    type: Literal["timing", "delay"] | None = Query(None),
    state: Literal["stopped", "runnable", "0", "1"] | None = Query(None),
    search: str | None = Query(None, max_length=200, description="substring of the name, any case"),
    sort: Literal["name", "created", "updated", "last", "next"] = Query("created"),
    order: Literal["asc", "desc"] = Query("asc"),
) -> JSONResponse:
    ctx = context(request)
    query = JobQuery(
        exec_type=None if type is None else (ExecType.TIMING if type == "timing" else ExecType.DELAY),
        state=None if state is None else (JobState.RUNNABLE if state in ("runnable", "1") else JobState.STOPPED),
        search=search or None,
        sort=sort,
        descending=order == "desc",
        offset=offset,
        limit=limit,
    )
    if sort == "next":
        jobs, total = await _jobs_by_next_fire(ctx, query)
    else:
        jobs, total = await ctx.jobs.list(query)
    data = [job_json(job, ctx.jobs.next_fire(job)) for job in jobs]
    return JSONResponse({"data": data, "total": total, "offset": offset, "limit": limit})


async def _jobs_by_next_fire(ctx: Any, query: JobQuery) -> tuple[list[Any], int]:
    """One page ordered by next fire (unarmed jobs last).

    Next fires live in the timing wheel, not the store, so this scans the
    matching jobs once per request: O(jobs), fine for tens of thousands.
    """
    needle = query.search.casefold() if query.search else None
    keys: list[tuple[int, str]] = []
    never = 2**63
    async for batch in ctx.engine.store.iter_jobs(enabled_only=query.state is JobState.RUNNABLE):
        for job in batch:
            if query.exec_type is not None and job.exec_type is not query.exec_type:
                continue
            if query.state is not None and job.state is not query.state:
                continue
            if needle and needle not in job.name.casefold():
                continue
            when = ctx.jobs.next_fire(job)
            keys.append((never if when is None else when, job.job_id))
    keys.sort(reverse=query.descending)
    page_ids = [job_id for _, job_id in keys[query.offset:query.offset + query.limit]]
    found = await get_jobs(ctx.engine.store, page_ids)
    return [found[job_id] for job_id in page_ids if job_id in found], len(keys)


@router.post("/jobs", summary="Create a job", status_code=201, response_model=JobData,
             responses=error_responses(400, 413))
async def create_job(request: Request, body: NewJobInput = Body(...)) -> JSONResponse:
    fields = body.model_dump(exclude_unset=True)
    enabled = bool(fields.pop("enabled", False))
    job = await context(request).jobs.create(fields, enable=enabled)
    return _job_data(request, job, 201)


@router.get("/jobs/{job_id}", summary="A job with its script", response_model=JobData,
            responses=error_responses(404))
async def get_job(request: Request, job_id: str = JOB_ID) -> JSONResponse:
    return _job_data(request, await context(request).jobs.get(job_id))


@router.patch("/jobs/{job_id}", summary="Change some fields of a job", response_model=JobData,
              responses=error_responses(400, 404, 413))
async def patch_job(request: Request, job_id: str = JOB_ID, body: JobInput = Body(...)) -> JSONResponse:
    job = await context(request).jobs.update(job_id, body.model_dump(exclude_unset=True))
    return _job_data(request, job)


@router.put("/jobs/{job_id}/script", summary="Replace a job's script", response_model=JobData,
            responses=error_responses(400, 404, 413))
async def put_script(request: Request, job_id: str = JOB_ID, body: ScriptInput = Body(...)) -> JSONResponse:
    job = await context(request).jobs.set_script(job_id, body.script)
    return _job_data(request, job)


@router.delete("/jobs/{job_id}", summary="Delete a job, its runs and its state", response_model=DeletedData,
               responses=error_responses(404))
async def delete_job(request: Request, job_id: str = JOB_ID) -> JSONResponse:
    await context(request).jobs.delete(job_id)
    return JSONResponse({"data": {"jobId": job_id, "deleted": True}})


@router.post("/jobs/{job_id}/enable", summary="Schedule a job", response_model=JobData,
             responses=error_responses(400, 404))
async def enable_job(request: Request, job_id: str = JOB_ID) -> JSONResponse:
    return _job_data(request, await context(request).jobs.set_enabled(job_id, True))


@router.post("/jobs/{job_id}/disable", summary="Unschedule a job", response_model=JobData,
             responses=error_responses(404))
async def disable_job(request: Request, job_id: str = JOB_ID) -> JSONResponse:
    return _job_data(request, await context(request).jobs.set_enabled(job_id, False))


@router.post("/jobs/{job_id}/trigger", summary="Run a job now, outside its schedule", status_code=202,
             response_model=RunData, responses=error_responses(404))
async def trigger_job(request: Request, job_id: str = JOB_ID) -> JSONResponse:
    run = await context(request).jobs.trigger(job_id)
    return JSONResponse({"data": run_json(run)}, status_code=202)


async def _runs(request: Request, query: RunQuery, output: bool) -> JSONResponse:
    runs, total = await context(request).engine.store.list_runs(query)
    return JSONResponse({"data": [run_json(r, output=output) for r in runs], "total": total,
                         "offset": query.offset, "limit": query.limit})


OUTPUT = Query(True, description="include each run's console output (false for lighter listings)")


@router.get("/jobs/{job_id}/runs", summary="Runs of a job, newest first", response_model=RunPage,
            responses=error_responses(400, 404))
async def job_runs(
    request: Request,
    job_id: str = JOB_ID,
    status: str | None = Query(None),
    since: str | None = Query(None, description="RFC 3339 or Unix seconds"),
    until: str | None = Query(None, description="RFC 3339 or Unix seconds"),
    offset: int = Query(0, ge=0, le=10**9),
    limit: int = Query(50, ge=1, le=1000),
    output: bool = OUTPUT,
) -> JSONResponse:
    await context(request).jobs.get(job_id)
    return await _runs(request, RunQuery(job_id=job_id, status=_status(status), since=_instant(since, "since"),
                                         until=_instant(until, "until"), offset=offset, limit=limit), output)


@router.get("/runs", summary="Runs of every job, newest first", response_model=RunPage,
            responses=error_responses(400))
async def all_runs(
    request: Request,
    jobId: str | None = Query(None, max_length=64),
    status: str | None = Query(None),
    since: str | None = Query(None, description="RFC 3339 or Unix seconds"),
    until: str | None = Query(None, description="RFC 3339 or Unix seconds"),
    offset: int = Query(0, ge=0, le=10**9),
    limit: int = Query(50, ge=1, le=1000),
    output: bool = OUTPUT,
) -> JSONResponse:
    return await _runs(request, RunQuery(job_id=jobId or None, status=_status(status),
                                         since=_instant(since, "since"), until=_instant(until, "until"),
                                         offset=offset, limit=limit), output)


@router.get("/runs/{run_id}", summary="One run with its output", response_model=RunData,
            responses=error_responses(404))
async def get_run(request: Request, run_id: str = Path(..., min_length=1, max_length=64)) -> JSONResponse:
    run = await context(request).engine.store.get_run(run_id)
    if run is None:
        raise NotFoundError(f"no run with id {run_id!r}")
    return JSONResponse({"data": run_json(run)})


@router.get("/export", summary="Every job with its script, as JSON", response_model=ExportOut)
async def export_jobs(request: Request) -> JSONResponse:
    ctx = context(request)
    jobs = [job_json(job, None, script=True) async for job in ctx.jobs.export()]
    libraries = await LibraryService(ctx.engine).export()
    return JSONResponse({"version": 1, "exportedAt": to_rfc3339(now_ms()), "jobs": jobs, "libraries": libraries})


@router.post(
    "/import",
    summary="Create or update jobs from an export (idempotent by jobId)",
    response_model=ImportData,
    responses=error_responses(400, 413),
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
        "$ref": "#/components/schemas/ExportOut"}}}}},
)
async def import_jobs(request: Request, dryRun: bool = Query(False)) -> JSONResponse:
    try:
        body = await request.json()
    except ValueError:
        raise ValidationError(None, "malformed JSON body") from None
    libraries, report = await context(request).jobs.import_document(body, dry_run=dryRun)
    return JSONResponse({"data": {"dryRun": dryRun, "created": report.created, "updated": report.updated,
                                  "unchanged": report.unchanged, "errors": report.errors,
                                  "libraries": asdict(libraries)}})


@router.post("/cron/preview", summary="Check a cron expression: its meaning and next fires",
             response_model=CronPreviewData, responses=error_responses(400))
async def cron_preview(request: Request, body: CronPreviewInput = Body(...)) -> JSONResponse:
    from zoneinfo import ZoneInfo

    from traitor.domain.cron import describe_cron, parse_cron
    from traitor.domain.job import coerce_changes

    ctx = context(request)
    zone_name = coerce_changes({"timezone": body.timezone}, ctx.engine.limits)["timezone"] or ctx.engine.config.timezone
    expr = parse_cron(body.cron)
    fires = expr.fires(now_ms(), ZoneInfo(zone_name), body.count)
    return JSONResponse({"data": {"cron": body.cron, "timezone": zone_name, "description": describe_cron(body.cron),
                                  "next": [to_rfc3339(at) for at in fires]}})


@router.post("/pause", summary="Pause firing on every node (survives restarts)", response_model=StatsData)
async def pause(request: Request) -> JSONResponse:
    await context(request).engine.set_paused(True)
    return await stats(request)


@router.post("/resume", summary="Resume firing on every node", response_model=StatsData)
async def resume(request: Request) -> JSONResponse:
    await context(request).engine.set_paused(False)
    return await stats(request)


@router.get("/stats", summary="Counts for the dashboard", response_model=StatsData)
async def stats(request: Request) -> JSONResponse:
    ctx = context(request)
    engine = ctx.engine
    counts = await engine.store.count_jobs()
    recent, _ = await engine.store.list_runs(RunQuery(since=now_ms() - 3_600_000, limit=1000))
    by_status: dict[str, int] = {}
    for run in recent:
        by_status[run.status.value] = by_status.get(run.status.value, 0) + 1
    return JSONResponse({"data": {
        "node": engine.config.node_id,
        "mode": ctx.settings.mode,
        "jobs": counts,
        "armed": engine.armed,
        "running": engine.running,
        "queued": engine.runner.queued,
        "workers": getattr(engine.runner, "size", 0),
        "paused": engine.paused,
        "nodes": engine.coordinator.members(),
        "runsLastHour": by_status,
    }})
