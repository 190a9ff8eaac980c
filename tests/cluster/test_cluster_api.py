"""The API of a two-node cluster (real node processes, private Redis, PostgreSQL):
any node serves every route, live following included."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from pathlib import Path

import httpx
import pytest
import websockets

from clusterkit import PG_URL, NodeProcess, RedisServer, requires_pg
from traitor.store.codec import namespace_token

pytestmark = [pytest.mark.slow, requires_pg]


async def follow_until_done(port: int, job_id: str, runs: int) -> list[dict]:
    """Frames of ``/api/v1/jobs/{id}/follow`` until ``runs`` status frames came."""
    frames: list[dict] = []
    async with websockets.connect(f"ws://127.0.0.1:{port}/api/v1/jobs/{job_id}/follow") as ws:
        while sum(1 for f in frames if f["type"] == "status") < runs:
            frames.append(json.loads(await asyncio.wait_for(ws.recv(), 6)))
    return frames


def test_every_node_streams_the_runs_of_a_job_whichever_node_runs_it(tmp_path: Path) -> None:
    cluster = f"api_{uuid.uuid4().hex[:10]}"
    redis = RedisServer(tmp_path / "redis").start()
    nodes = [NodeProcess(f"node{i}", tmp_path, redis.url, PG_URL, cluster) for i in (1, 2)]
    try:
        for node in nodes:
            node.spawn()
        for node in nodes:
            node.wait_ready(60)
        _until_members(nodes, 2)  # one ring: the job's runs then stay on its one owner
        api = httpx.Client(base_url=nodes[0].url, timeout=10)
        job_id = api.post("/api/run", json={
            "cron": "* * * * * *", "script": "console.log('tick'); console.warn('tock')"}).json()["id"]

        async def both() -> list[list[dict]]:
            return await asyncio.gather(*(follow_until_done(node.port, job_id, 2) for node in nodes))

        per_node = asyncio.run(both())
        for frames in per_node:
            statuses = [f for f in frames if f["type"] == "status"]
            lines = [(f["level"], f["text"]) for f in frames if f["type"] == "line"]
            assert [s["status"] for s in statuses] == ["success", "success"], [s.get("error") for s in statuses]
            assert lines[-2:] == [("log", "tick"), ("warn", "tock")]
        ran_on = {f["node"] for frames in per_node for f in frames if f["type"] == "run"}
        assert len(ran_on) == 1, ran_on  # one owner ran them; both nodes streamed them
    finally:
        for node in nodes:
            if node.alive():
                node.stop(signal.SIGTERM)
        redis.stop()
        asyncio.run(_drop_schema(f"traitor_{namespace_token(cluster)}"))


def _until_members(nodes: list[NodeProcess], count: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        seen = [len(httpx.get(f"{node.url}/api/v1/stats", timeout=5).json()["data"]["nodes"]) for node in nodes]
        if all(n == count for n in seen):
            return
        assert time.monotonic() < deadline, f"members seen: {seen}"
        time.sleep(0.1)


async def _drop_schema(schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_URL, timeout=10)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()
