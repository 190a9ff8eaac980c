"""The original service's routes, verbatim (SPEC §1): existing clients keep working."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse

from traitor.api.app import context
from traitor.api.schemas import (
    DeletedData,
    IdOut,
    JobData,
    JobInput,
    JobOut,
    ScriptData,
    error_responses,
)
from traitor.api.serialize import job_json
from traitor.domain.errors import ValidationError

router = APIRouter(prefix="/api", tags=["compatibility"])

_TRUE = {"true", "1", "t"}
_FALSE = {"false", "0", "f"}


def parse_enable(value: str | None) -> bool:
    text = (value or "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValidationError("enable", f"must be true or false (also 1/0, t/f), got {value!r}")


def _fields(body: JobInput | None) -> dict[str, Any]:
    return body.model_dump(exclude_unset=True) if body is not None else {}


def _created(job_id: str) -> JSONResponse:
    return JSONResponse({"id": job_id, "data": job_id})


@router.post("/job", summary="Create a job (stopped, not scheduled)", response_model=IdOut,
             responses=error_responses(400, 413))
async def create_job(
    request: Request,
    type: str = Query(..., description="timing or delay (any case)"),
    body: JobInput = Body(...),
) -> JSONResponse:
    job = await context(request).jobs.create(_fields(body), type)
    return _created(job.job_id)


@router.post("/run", summary="Create a job and schedule it at once", response_model=IdOut,
             responses=error_responses(400, 413))
async def run_job(
    request: Request,
    type: str | None = Query(None, description="timing or delay; else execType, else inferred from cron/execAt"),
    body: JobInput = Body(...),
) -> JSONResponse:
    job = await context(request).jobs.create(_fields(body), type, enable=True)
    return _created(job.job_id)


@router.post("/enable", summary="Start (validate and schedule) or stop a job", response_model=JobData,
             responses=error_responses(400, 404, 413))
async def enable_job(
    request: Request,
    id: str = Query(..., description="the job id"),
    enable: str = Query(..., description="true/false, 1/0, t/f (any case)"),
    body: JobInput | None = Body(None),
) -> JSONResponse:
    ctx = context(request)
    job = await ctx.jobs.set_enabled(id, parse_enable(enable), _fields(body))
    return JSONResponse({"data": job_json(job, ctx.jobs.next_fire(job))})


@router.put("/job", summary="Update some fields of a job", response_model=JobData,
            responses=error_responses(400, 404, 413))
async def update_job(request: Request, id: str = Query(...), body: JobInput = Body(...)) -> JSONResponse:
    ctx = context(request)
    job = await ctx.jobs.update(id, _fields(body))
    return JSONResponse({"data": job_json(job, ctx.jobs.next_fire(job))})


@router.delete("/job", summary="Unschedule and delete a job", response_model=DeletedData,
               responses=error_responses(400, 404))
async def delete_job(request: Request, id: str = Query(...)) -> JSONResponse:
    await context(request).jobs.delete(id)
    return JSONResponse({"data": {"jobId": id, "deleted": True}})


@router.get("/job", summary="A job without its script", response_model=JobData, responses=error_responses(400, 404))
async def get_job(request: Request, id: str = Query(...)) -> JSONResponse:
    ctx = context(request)
    job = await ctx.jobs.get(id)
    return JSONResponse({"data": job_json(job, ctx.jobs.next_fire(job))})


@router.get("/jobList", summary="Every job, without scripts (a bare array)", response_model=list[JobOut])
async def job_list(request: Request) -> JSONResponse:
    ctx = context(request)
    jobs = [job_json(job, ctx.jobs.next_fire(job)) async for job in ctx.jobs.export()]
    return JSONResponse(jobs)


@router.get("/script", summary="A job's script", response_model=ScriptData, responses=error_responses(400, 404))
async def get_script(request: Request, id: str = Query(...)) -> JSONResponse:
    job = await context(request).jobs.get(id)
    return JSONResponse({"data": {"jobId": job.job_id, "script": job.script}})


@router.post(
    "/script",
    summary="Replace a job's script",
    description='Body: `{"script": "..."}`, or the script itself as `text/plain`.',
    response_model=ScriptData,
    responses=error_responses(400, 404, 413),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ScriptInput"}},
                "text/plain": {"schema": {"type": "string"}},
            },
        }
    },
)
async def set_script(request: Request, id: str = Query(...)) -> JSONResponse:
    script = await read_script_body(request)
    job = await context(request).jobs.set_script(id, script)
    return JSONResponse({"data": {"jobId": job.job_id, "script": job.script}})


async def read_script_body(request: Request) -> str:
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError("script", "the body is not valid UTF-8") from None
    if "json" not in request.headers.get("content-type", "application/json"):
        return text
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(None, f"malformed JSON body: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if isinstance(body, dict):
        script = body.get("script")
    else:
        script = body
    if not isinstance(script, str):
        raise ValidationError("script", 'send {"script": "<JavaScript>"} or the script as text/plain')
    return script
