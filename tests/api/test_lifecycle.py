"""One job's whole life over HTTP against a real server process, and the WebSockets."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import websockets

pytestmark = pytest.mark.slow


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def test_a_job_through_its_whole_life(server) -> None:
    api = httpx.Client(base_url=server.url, timeout=10)
    created = api.post("/api/v1/jobs", json={"name": "life", "cron": "* * * * * *",
                                             "script": "console.log('tick', 1 + 1)"})
    assert created.status_code == 201, created.text
    job_id = created.json()["data"]["jobId"]
    assert created.json()["data"]["state"] == 0

    enabled = api.post(f"/api/v1/jobs/{job_id}/enable").json()["data"]
    assert enabled["state"] == 1 and enabled["nextExecTime"]

    def runs(**params):
        return api.get(f"/api/v1/jobs/{job_id}/runs", params=params).json()

    first = wait_for(lambda: [r for r in runs(status="success")["data"]], timeout=8)
    assert "tick 2" in first[0]["output"] and first[0]["trigger"] == "schedule"
    assert first[0]["scheduledAt"].endswith(".000Z")

    updated = api.patch(f"/api/v1/jobs/{job_id}", json={"script": "console.log('changed')"}).json()["data"]
    assert updated["state"] == 1
    wait_for(lambda: any("changed" in r["output"] for r in runs(status="success")["data"]), timeout=8)

    disabled = api.post(f"/api/v1/jobs/{job_id}/disable").json()["data"]
    assert disabled["state"] == 0 and disabled["nextExecTime"] is None
    time.sleep(1.2)  # a fire already dispatched may still finish
    settled = runs()["total"]
    time.sleep(2.0)
    assert runs()["total"] == settled, "a disabled job kept firing"

    triggered = api.post(f"/api/v1/jobs/{job_id}/trigger")
    assert triggered.status_code == 202
    run_id = triggered.json()["data"]["runId"]
    done = wait_for(lambda: (r := api.get(f"/api/v1/runs/{run_id}").json()["data"])["status"] != "running" and r)
    assert done["status"] == "success" and "changed" in done["output"] and done["trigger"] == "manual"

    info = api.get(f"/api/job?id={job_id}").json()["data"]
    assert info["lastExecTime"] is not None

    assert api.delete(f"/api/v1/jobs/{job_id}").status_code == 200
    assert api.get(f"/api/v1/jobs/{job_id}").status_code == 404
    assert api.get(f"/api/v1/runs/{run_id}").status_code == 404


def test_debug_websocket_streams_lines_then_status_then_closes_1000(server) -> None:
    api = httpx.Client(base_url=server.url, timeout=10)
    script = "console.log('hello world'); setTimeout(() => console.warn('later'), 50);"
    job_id = api.post("/api/job?type=timing", json={"cron": "0 0 1 1 *", "script": script}).json()["id"]

    async def session():
        frames = []
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/api/debug?id={job_id}") as ws:
            async for frame in ws:
                frames.append(frame)
            return frames, ws.close_code

    frames, code = asyncio.run(session())
    assert frames[:2] == ["hello world", "later"]
    status = json.loads(frames[-1])
    assert status["status"] == "success" and code == 1000
    assert api.get(f"/api/v1/jobs/{job_id}/runs").json()["total"] == 0, "debug runs are not stored"
    assert api.get(f"/api/job?id={job_id}").json()["data"]["state"] == 0


def test_debug_websocket_reports_errors_and_unknown_jobs(server) -> None:
    api = httpx.Client(base_url=server.url, timeout=10)
    job_id = api.post("/api/job?type=timing", json={"cron": "0 0 1 1 *", "script": "throw new Error('boom')"}).json()["id"]

    async def session(path):
        frames = []
        async with websockets.connect(f"ws://127.0.0.1:{server.port}{path}") as ws:
            try:
                while True:
                    frames.append(await ws.recv())
            except websockets.exceptions.ConnectionClosed:
                return frames, ws.close_code

    frames, code = asyncio.run(session(f"/api/debug?id={job_id}"))
    status = json.loads(frames[-1])
    assert status["status"] == "error" and "boom" in status["error"] and code == 1000
    frames, code = asyncio.run(session("/api/debug?id=missing"))
    assert code == 4404 and "missing" in json.loads(frames[-1])["error"]


def test_debug_websocket_refuses_foreign_origins(server) -> None:
    async def session():
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/api/debug?id=x",
                                      origin="http://evil.example") as ws:
            await ws.recv()

    with pytest.raises(websockets.exceptions.InvalidStatus) as info:
        asyncio.run(session())
    assert info.value.response.status_code == 403


def test_v1_debug_runs_unsaved_script_with_json_frames(server) -> None:
    async def session():
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/api/v1/debug") as ws:
            await ws.send(json.dumps({"script": "console.error('bad'); console.info('fine')"}))
            return [json.loads(frame) async for frame in ws]

    frames = asyncio.run(session())
    assert [(f["level"], f["text"]) for f in frames if f["type"] == "line"] == [("error", "bad"), ("info", "fine")]
    assert frames[-1]["type"] == "status" and frames[-1]["status"] == "success"


def test_follow_streams_a_scheduled_run(server) -> None:
    api = httpx.Client(base_url=server.url, timeout=10)
    job_id = api.post("/api/run", json={"cron": "* * * * * *", "script": "console.log('followed')"}).json()["id"]

    async def session():
        frames = []
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/api/v1/jobs/{job_id}/follow") as ws:
            while not any(f.get("type") == "status" for f in frames):
                frames.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
        return frames

    frames = asyncio.run(session())
    kinds = [f["type"] for f in frames]
    assert kinds[0] == "run" and "line" in kinds and kinds[-1] == "status"
    assert any(f.get("text") == "followed" for f in frames)
