"""Overlap, concurrency cap, retries, misfire after a stall, pause/resume: through the
real engine (real wheel, SQLite store and worker pool) and its API."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import httpx
import pytest

pytestmark = pytest.mark.slow

LONG = "setTimeout(() => console.log('done'), 2300)"


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


async def runs(client: httpx.AsyncClient, job_id: str) -> list[dict]:
    data = (await client.get(f"/api/v1/jobs/{job_id}/runs", params={"limit": 1000})).json()["data"]
    return sorted(data, key=lambda r: (r["scheduledAt"], r["attempt"]))


async def every_second(client: httpx.AsyncClient, **fields) -> str:
    body = {"cron": "* * * * * *", "script": LONG, "enabled": True, **fields}
    response = await client.post("/api/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    return response.json()["data"]["jobId"]


async def stop(client: httpx.AsyncClient, job_id: str) -> None:
    await client.post(f"/api/v1/jobs/{job_id}/disable")


async def test_overlap_skip_records_skipped_fires_and_never_overlaps(client) -> None:
    job_id = await every_second(client, overlap="skip")
    await asyncio.sleep(4.5)
    await stop(client, job_id)
    history = await runs(client, job_id)
    statuses = [r["status"] for r in history]
    assert "skipped" in statuses and statuses.count("running") + statuses.count("success") >= 1
    skipped = [r for r in history if r["status"] == "skipped"]
    assert all("still going" in r["error"] for r in skipped)


async def test_overlap_queue_runs_fires_one_after_another(client) -> None:
    job_id = await every_second(client, overlap="queue", script="setTimeout(() => {}, 1500)")
    await asyncio.sleep(6)
    await stop(client, job_id)
    await asyncio.sleep(3.5)
    done = [r for r in await runs(client, job_id) if r["status"] == "success"]
    assert len(done) >= 3
    spans = sorted((ms(r["startedAt"]), ms(r["finishedAt"])) for r in done)
    assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:])), "queued runs overlapped"
    assert not [r for r in await runs(client, job_id) if r["status"] == "skipped"]


async def test_overlap_allow_runs_concurrently_up_to_max_concurrent(client) -> None:
    job_id = await every_second(client, overlap="allow", maxConcurrent=2, script="setTimeout(() => {}, 3200)")
    await asyncio.sleep(5.5)
    await stop(client, job_id)
    await asyncio.sleep(4)
    done = [r for r in await runs(client, job_id) if r["status"] == "success"]
    spans = [(ms(r["startedAt"]), ms(r["finishedAt"])) for r in done]
    most = max(sum(1 for s, f in spans if s <= t < f) for t, _ in spans)
    assert most == 2, f"{most} runs at once with maxConcurrent=2"


async def test_failed_run_is_retried_with_backoff(client) -> None:
    job_id = (await client.post("/api/v1/jobs", json={
        "cron": "0 0 1 1 *", "retries": 2, "script": "throw new Error('flaky')"})).json()["data"]["jobId"]
    await client.post(f"/api/v1/jobs/{job_id}/trigger")
    deadline = time.monotonic() + 8
    history = await runs(client, job_id)
    # the last retry's row exists from its claim on: wait until it has finished too
    while time.monotonic() < deadline and (len(history) < 3 or any(r["status"] == "running" for r in history)):
        await asyncio.sleep(0.2)
        history = await runs(client, job_id)
    assert [(r["attempt"], r["status"]) for r in history] == [(0, "error"), (1, "error"), (2, "error")]
    assert [r["trigger"] for r in history] == ["manual", "retry", "retry"]
    gaps = [ms(b["startedAt"]) - ms(a["finishedAt"]) for a, b in zip(history, history[1:])]
    assert gaps[0] >= 400 and gaps[1] >= 900, f"backoff gaps (ms): {gaps}"


async def test_pause_stops_every_fire_until_resume(client) -> None:
    job_id = await every_second(client, script="1")
    paused = (await client.post("/api/v1/pause")).json()["data"]
    assert paused["paused"] is True
    await asyncio.sleep(0.2)
    before = len(await runs(client, job_id))
    await asyncio.sleep(2.5)
    assert len(await runs(client, job_id)) == before
    assert (await client.post("/api/v1/resume")).json()["data"]["paused"] is False
    await asyncio.sleep(2.2)
    assert len(await runs(client, job_id)) > before


async def test_memory_and_timeout_limits_per_job(client) -> None:
    slow = (await client.post("/api/v1/jobs", json={"cron": "0 0 1 1 *", "timeout": 0.5,
                                                    "script": "while (true) {}"})).json()["data"]["jobId"]
    hog = (await client.post("/api/v1/jobs", json={"cron": "0 0 1 1 *", "memoryLimit": 16, "script":
                                                   "let a = []; while (true) a.push(new Array(1e5).fill(1));"})
           ).json()["data"]["jobId"]
    for job_id in (slow, hog):
        await client.post(f"/api/v1/jobs/{job_id}/trigger")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        statuses = [r["status"] for job_id in (slow, hog) for r in await runs(client, job_id)]
        if "running" not in statuses and len(statuses) == 2:
            break
        await asyncio.sleep(0.2)
    assert (await runs(client, slow))[0]["status"] == "timeout"
    assert (await runs(client, hog))[0]["status"] == "memory"
