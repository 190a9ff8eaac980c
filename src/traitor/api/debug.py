"""Live script output over WebSockets.

* ``/api/debug?id=`` (the original's route): runs the saved script now, sends
  each console line as one text frame, then a final JSON status frame, then
  closes with 1000. Nothing is stored; the schedule is untouched.
* ``/api/v1/debug``: the same for a script sent by the client (the editor's
  unsaved text); every frame is JSON.
* ``/api/v1/jobs/{id}/follow``: streams the console of the job's runs as they
  happen, on whichever node of the cluster runs them, until the client leaves.

A client leaving cancels its own debug run and nothing else.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Callable
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from traitor.api.app import context
from traitor.api.serialize import run_json
from traitor.domain.job import Job, ExecType
from traitor.runtime.abc import ConsoleLine, RunResult

router = APIRouter(tags=["live output"])

#: Close code when the job does not exist (4000–4999 are for applications).
CLOSE_NOT_FOUND = 4404
CLOSE_BAD_ORIGIN = 4403
CLOSE_BAD_INPUT = 4400


def origin_allowed(websocket: WebSocket) -> bool:
    """Browsers send Origin; it must be this server or an allowed origin (no cross-site debug)."""
    origin = websocket.headers.get("origin")
    if not origin:
        return True
    allowed = context(websocket).settings.allowed_origins
    if origin in allowed or "*" in allowed:
        return True
    return urlsplit(origin).netloc.lower() == websocket.headers.get("host", "").lower()


async def _open(websocket: WebSocket) -> bool:
    if not origin_allowed(websocket):
        await websocket.close(code=CLOSE_BAD_ORIGIN, reason="origin not allowed")
        return False
    await websocket.accept()
    return True


def _status_frame(result: RunResult) -> dict[str, Any]:
    return {
        "type": "status",
        "status": result.status.value,
        "error": result.error,
        "durationMs": result.finished_at - result.started_at,
        "lines": len(result.lines),
    }


async def _stream_debug(websocket: WebSocket, job: Job, script: str | None, frame: Callable[[ConsoleLine], str]) -> None:
    engine = context(websocket).engine
    lines: asyncio.Queue[ConsoleLine | None] = asyncio.Queue()
    run_id, future = engine.debug(job, lines.put_nowait, script)
    future.add_done_callback(lambda _: lines.put_nowait(None))
    try:
        while (line := await lines.get()) is not None:
            await websocket.send_text(frame(line))
        result = future.result()
        await websocket.send_text(json.dumps(_status_frame(result)))
        await websocket.close(code=1000)
    except (WebSocketDisconnect, RuntimeError):
        engine.cancel_debug(run_id)
    except asyncio.CancelledError:
        engine.cancel_debug(run_id)
        raise


@router.websocket("/api/debug")
async def debug_saved(websocket: WebSocket) -> None:
    if not await _open(websocket):
        return
    job_id = websocket.query_params.get("id", "")
    job = await context(websocket).engine.store.get_job(job_id) if job_id else None
    if job is None:
        await websocket.send_text(json.dumps({"type": "status", "status": "error", "error": f"no job with id {job_id!r}"}))
        await websocket.close(code=CLOSE_NOT_FOUND, reason="no such job")
        return
    await _stream_debug(websocket, job, None, lambda line: line.text)


def _line_frame(line: ConsoleLine) -> str:
    return json.dumps({"type": "line", "ts": line.ts, "level": line.level, "text": line.text})


@router.websocket("/api/v1/debug")
async def debug_script(websocket: WebSocket) -> None:
    """First client frame: ``{"script": "...", "jobId": "optional: use its limits"}``."""
    if not await _open(websocket):
        return
    try:
        request = json.loads(await websocket.receive_text())
        if not isinstance(request, dict):
            raise ValueError
    except (ValueError, WebSocketDisconnect):
        await websocket.close(code=CLOSE_BAD_INPUT, reason='send {"script": "..."} first')
        return
    ctx = context(websocket)
    job_id, script = request.get("jobId"), request.get("script")
    job = await ctx.engine.store.get_job(job_id) if isinstance(job_id, str) and job_id else None
    if job is None:
        job = Job(job_id="debug", exec_type=ExecType.TIMING)
    if script is None:
        script = job.script
    if not isinstance(script, str) or len(script.encode()) > ctx.engine.limits.max_script_bytes:
        await websocket.close(code=CLOSE_BAD_INPUT, reason="script must be a string within the size limit")
        return
    await _stream_debug(websocket, job, script, _line_frame)


@router.websocket("/api/v1/jobs/{job_id}/follow")
async def follow_job(websocket: WebSocket, job_id: str) -> None:
    if not await _open(websocket):
        return
    engine = context(websocket).engine
    if await engine.store.get_job(job_id) is None:
        await websocket.close(code=CLOSE_NOT_FOUND, reason="no such job")
        return
    frames: asyncio.Queue[str] = asyncio.Queue()
    stop_following = engine.follow_job(
        job_id,
        on_run=lambda run: frames.put_nowait(json.dumps({"type": "run", **run_json(run, output=False)})),
        on_line=lambda run, line: frames.put_nowait(_line_frame(line)),
        on_done=lambda run: frames.put_nowait(json.dumps({"type": "status", **run_json(run, output=False)})),
    )
    receiver = asyncio.ensure_future(websocket.receive_text())
    try:
        while True:
            sender = asyncio.ensure_future(frames.get())
            done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if receiver in done:
                sender.cancel()
                break
            await websocket.send_text(sender.result())
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        receiver.cancel()
        stop_following()
