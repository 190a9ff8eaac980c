"""Bad input of every shape gets a clear 4xx in the {"error": ...} shape and writes nothing."""

from __future__ import annotations

import time

import httpx
import pytest

GOOD = {"name": "n", "cron": "*/5 * * * *", "script": "console.log(1)"}


async def job_count(client: httpx.AsyncClient) -> int:
    return len((await client.get("/api/jobList")).json())


@pytest.mark.parametrize(
    ("path", "body", "status", "fragment"),
    [
        ("/api/job?type=timing", b"{not json", 400, "malformed JSON"),
        ("/api/job?type=timing", b"[1, 2]", 400, "JSON object"),
        ("/api/job?type=timing", b"", 400, "body"),
        ("/api/job?type=weekly", GOOD, 400, "type"),
        ("/api/job", GOOD, 400, "type"),
        ("/api/job?type=timing", {**GOOD, "cron": "61 * * * *"}, 400, "minute"),
        ("/api/job?type=timing", {**GOOD, "cron": "* * * * FOO"}, 400, "day-of-week"),
        ("/api/job?type=timing", {**GOOD, "cron": "* * *"}, 400, "cron"),
        ("/api/job?type=timing", {"name": "no cron"}, 400, "cron"),
        ("/api/job?type=timing", {**GOOD, "name": 12}, 400, "name"),
        ("/api/job?type=timing", {**GOOD, "timezone": "Mars/Olympus"}, 400, "timezone"),
        ("/api/job?type=timing", {**GOOD, "overlap": "sometimes"}, 400, "overlap"),
        ("/api/job?type=timing", {**GOOD, "misfire": "never"}, 400, "misfire"),
        ("/api/job?type=timing", {**GOOD, "timeout": -1}, 400, "timeout"),
        ("/api/job?type=timing", {**GOOD, "timeout": "soon"}, 400, "timeout"),
        ("/api/job?type=timing", {**GOOD, "memoryLimit": 10**9}, 400, "memoryLimit"),
        ("/api/job?type=timing", {**GOOD, "retries": 1000}, 400, "retries"),
        ("/api/job?type=delay", {"execAt": "tomorrow"}, 400, "execAt"),
        ("/api/job?type=delay", {"execAt": -5}, 400, "execAt"),
        ("/api/job?type=delay", {"name": "no moment"}, 400, "execAt"),
        ("/api/job?type=delay", {"execAt": str(int(time.time()) - 60)}, 400, "execAt"),
        ("/api/run", {"name": "no type"}, 400, "execType"),
        ("/api/run", {**GOOD, "execType": "7"}, 400, "execType"),
        ("/api/run?type=delay", {"execAt": int(time.time()) + 2}, 400, "5 seconds"),
    ],
)
async def test_bad_create_is_a_400_and_writes_nothing(client, path, body, status, fragment) -> None:
    before = await job_count(client)
    if isinstance(body, bytes):
        response = await client.post(path, content=body, headers={"content-type": "application/json"})
    else:
        response = await client.post(path, json=body)
    assert response.status_code == status, response.text
    assert fragment.lower() in response.json()["error"].lower()
    assert await job_count(client) == before


async def test_unknown_job_ids_are_404(client: httpx.AsyncClient) -> None:
    for method, path in [("GET", "/api/job?id=nope"), ("PUT", "/api/job?id=nope"), ("DELETE", "/api/job?id=nope"),
                         ("GET", "/api/script?id=nope"), ("POST", "/api/enable?id=nope&enable=true"),
                         ("GET", "/api/v1/jobs/nope"), ("POST", "/api/v1/jobs/nope/trigger"),
                         ("GET", "/api/v1/runs/nope"), ("GET", "/api/v1/jobs/nope/runs")]:
        response = await client.request(method, path, json={} if method in ("PUT", "POST") else None)
        assert response.status_code == 404, (method, path, response.text)
        assert "nope" in response.json()["error"]


async def test_missing_id_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/job")
    assert response.status_code == 400 and "id" in response.json()["error"]


async def test_enable_with_a_word_that_is_not_boolean(client: httpx.AsyncClient) -> None:
    job_id = (await client.post("/api/job?type=timing", json=GOOD)).json()["id"]
    response = await client.post(f"/api/enable?id={job_id}&enable=maybe")
    assert response.status_code == 400 and "enable" in response.json()["error"]


async def test_invalid_update_changes_nothing(client: httpx.AsyncClient) -> None:
    job_id = (await client.post("/api/run?type=timing", json=GOOD)).json()["id"]
    before = (await client.get(f"/api/v1/jobs/{job_id}")).json()["data"]
    response = await client.put(f"/api/job?id={job_id}", json={"name": "changed", "cron": "99 * * * *"})
    assert response.status_code == 400
    after = (await client.get(f"/api/v1/jobs/{job_id}")).json()["data"]
    assert after == before


async def test_switching_a_running_job_to_delay_needs_exec_at(client: httpx.AsyncClient) -> None:
    job_id = (await client.post("/api/run?type=timing", json=GOOD)).json()["id"]
    response = await client.put(f"/api/job?id={job_id}", json={"execType": 1})
    assert response.status_code == 400 and "execAt" in response.json()["error"]


async def test_oversized_body_is_a_413(client: httpx.AsyncClient) -> None:
    huge = {"name": "x", "cron": "* * * * *", "script": "a" * (1024 * 1024 + 10)}
    before = await job_count(client)
    response = await client.post("/api/job?type=timing", json=huge)
    assert response.status_code == 413 and "too large" in response.json()["error"]
    assert await job_count(client) == before


async def test_bad_query_values_on_v1(client: httpx.AsyncClient) -> None:
    for path in ("/api/v1/jobs?limit=0", "/api/v1/jobs?sort=random", "/api/v1/jobs?type=cron",
                 "/api/v1/runs?status=happy", "/api/v1/runs?since=yesterday", "/api/v1/jobs?offset=-1"):
        response = await client.get(path)
        assert response.status_code == 400, (path, response.text)
        assert response.json()["error"]


async def test_sort_by_next_fire_spans_pages(client: httpx.AsyncClient) -> None:
    minutes = [37, 5, 52, 18, 44, 1, 29]
    hour = (time.gmtime().tm_hour + 12) % 24  # every fire in the same hour, whatever the time now
    for minute in minutes:
        await client.post("/api/run?type=timing", json={"name": f"m{minute}", "cron": f"{minute} {hour} * * *",
                                                        "script": "1"})
    await client.post("/api/job?type=timing", json={"name": "stopped", "cron": "0 0 * * *", "script": "1"})
    first = (await client.get("/api/v1/jobs?sort=next&limit=3")).json()
    second = (await client.get("/api/v1/jobs?sort=next&limit=3&offset=3")).json()
    last = (await client.get("/api/v1/jobs?sort=next&limit=3&offset=6")).json()
    names = [j["name"] for page in (first, second, last) for j in page["data"]]
    assert names == [f"m{m}" for m in sorted(minutes)] + ["stopped"]
    assert first["total"] == 8
    runnable = (await client.get("/api/v1/jobs?sort=next&state=runnable&search=M5")).json()
    assert [j["name"] for j in runnable["data"]] == ["m5", "m52"]
