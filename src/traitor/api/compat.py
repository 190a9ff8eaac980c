"""The original service's routes, verbatim (SPEC §1): existing clients keep working."""

from __future__ import annotations

import json
from collections import deque
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError as PydanticValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from traitor.api.app import context, error, error_status
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
from traitor.domain.errors import TraitorError, ValidationError

if TYPE_CHECKING:
    from traitor.scheduler.jobs import JobService

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


def _created(job_id: str) -> Response:
    return Response(_created_body(job_id), media_type="application/json")


def _created_body(job_id: str) -> bytes:
    """``{"id": …, "data": …}`` as ``JSONResponse`` renders it, without building a JSON
    encoder per call (``json.dumps`` with non-default options does, ~5 µs). The id is
    quoted with the default (ASCII) encoder: job ids are UUIDs, ASCII, so the bytes are
    the same as ``ensure_ascii=False`` gives."""
    quoted = json.dumps(job_id).encode()
    return b'{"id":%s,"data":%s}' % (quoted, quoted)


@router.post("/job", summary="Create a job (stopped, not scheduled)", response_model=IdOut,
             responses=error_responses(400, 413))
async def create_job(
    request: Request,
    type: str = Query(..., description="timing or delay (any case)"),
    body: JobInput = Body(...),
) -> Response:
    # Ordinary requests never get here: CreateFastLane (below) serves them with these
    # same steps. A change here must be made there too.
    job = await context(request).jobs.create(_fields(body), type)
    return _created(job.job_id)


@router.post("/run", summary="Create a job and schedule it at once", response_model=IdOut,
             responses=error_responses(400, 413))
async def run_job(
    request: Request,
    type: str | None = Query(None, description="timing or delay; else execType, else inferred from cron/execAt"),
    body: JobInput = Body(...),
) -> Response:
    # Served by CreateFastLane when ordinary, as create_job.
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


# ---------------------------------------------------------------------- the create fast lane
#: Paths the lane serves, and whether the created job is enabled (``/api/run``) and
#: whether ``?type=`` is required (``/api/job``): as ``create_job`` and ``run_job``.
_LANE_ROUTES = {"/api/job": (False, True), "/api/run": (True, False)}


class CreateFastLane:
    """Serve ordinary ``POST /api/job`` and ``POST /api/run`` requests without FastAPI's routing.

    Why: creates come in bulk (imports, provisioning scripts), and FastAPI's layers
    (route matching through every router, dependency solving, the endpoint's response
    handling) cost ~150 µs of event-loop time per request here, more than validating,
    committing and arming the job; the event loop is what bounds creates/s.

    What: a request is *ordinary* when its content type is JSON, it names ``?type=``
    where the route requires it, and its body is a JSON object that :class:`JobInput`
    accepts. It is then served with the steps of ``create_job`` / ``run_job``: the same
    model, the same :meth:`JobService.create` call, the same answer (``_created_body``,
    same headers), and domain errors answer as the app's handlers do (``app.error``),
    so the client cannot tell the two paths apart. Any other request
    (malformed JSON, a body or parameter the model rejects, another content type, a
    client gone before its body arrived) goes on to the app with its body replayed,
    so every other answer, and the OpenAPI schema, still come from the routes above.
    """

    def __init__(self, app: ASGIApp, jobs: JobService) -> None:
        self.app = app
        self.jobs = jobs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = _LANE_ROUTES.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if route is None or not _json_content(scope):
            await self.app(scope, receive, send)
            return
        enable, type_required = route
        params = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        type_hint = params.get("type")
        if type_hint is None and type_required:
            await self.app(scope, receive, send)  # the route answers the missing parameter
            return
        messages, raw = await _read_body(receive)
        fields = _ordinary_fields(raw) if raw else None
        if fields is None:
            await self.app(scope, _replay(messages, receive), send)
            return
        try:
            job = await self.jobs.create(fields, type_hint, enable=enable)
        except TraitorError as exc:
            status = error_status(exc)
            if status is None:
                raise
            await error(status, str(exc))(scope, receive, send)
            return
        await _send_json(send, _created_body(job.job_id))


async def _send_json(send: Send, body: bytes) -> None:
    """A 200 with a JSON body: the messages (and headers, in order) a ``Response`` with
    ``media_type="application/json"`` sends, without building one."""
    headers = [(b"content-length", str(len(body)).encode("latin-1")), (b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _json_content(scope: Scope) -> bool:
    """Is the request labelled ``application/json`` (parameters aside)?"""
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.split(b";", 1)[0].strip().lower() == b"application/json"
    return False


async def _read_body(receive: Receive) -> tuple[list[Message], bytes | None]:
    """Every message of the request body, and the body (``None`` if the client left)."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return messages, b"".join(chunks)


def _ordinary_fields(raw: bytes) -> dict[str, Any] | None:
    """The fields of a body the route would accept as is, or ``None`` (the route then
    answers it). Parsed as FastAPI parses it: ``json.loads`` of the bytes, then the
    model validated from Python objects (not ``model_validate_json``, whose JSON
    parser differs at the edges: NaN, lone surrogates, other encodings)."""
    try:
        body = json.loads(raw)
    except Exception:  # malformed JSON, bad encoding, too deep: the route's error
        return None
    if not isinstance(body, dict):
        return None
    try:
        return _fields(JobInput.model_validate(body))
    except PydanticValidationError:
        return None


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that hands out ``messages`` again, then reads on from ``receive``."""
    pending = deque(messages)

    async def replay() -> Message:
        if pending:
            return pending.popleft()
        return await receive()

    return replay
