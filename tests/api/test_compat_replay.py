"""Replays every request example of the original README (shared/seed) verbatim.

Bodies are copied as written there; the only edits are the ones a JSON parser
forces (the README's `//use time Stamp.` comment and a missing comma) and
moving the 2023 `execAt` moments into the future, as the issue asks.
"""

from __future__ import annotations

import re
import time

import httpx

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

TIMING_BODY = {
    "name": "Every Monday 8:00am",
    "description": "say good morning to your friends",
    "cron": "0 0 8 ? * MON",
    "script": "//.....",
}


def delay_body(exec_at: str) -> dict[str, str]:
    return {
        "name": "say happy new year",
        "description": "say happy new year to my friends at 2023 1.1 0:00 am",
        "execAt": exec_at,
        "script": "//.....",
    }


def future_seconds(ahead: int = 3600) -> str:
    return str(int(time.time()) + ahead)


async def create(client: httpx.AsyncClient, kind: str, body: dict) -> str:
    response = await client.post(f"/api/job?type={kind}", json=body)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert UUID.match(payload["id"]) and payload["data"] == payload["id"]
    return payload["id"]


async def test_create_timing_job_is_stopped_and_unscheduled(client: httpx.AsyncClient) -> None:
    job_id = await create(client, "timing", TIMING_BODY)
    info = (await client.get(f"/api/job?id={job_id}")).json()["data"]
    assert info["state"] == 0 and info["nextExecTime"] is None
    assert info["cron"] == "0 0 8 ? * MON" and info["name"] == "Every Monday 8:00am"
    assert "script" not in info


async def test_type_is_case_insensitive(client: httpx.AsyncClient) -> None:
    job_id = await create(client, "TiMiNg", TIMING_BODY)
    assert (await client.get(f"/api/job?id={job_id}")).json()["data"]["execType"] == 0


async def test_create_delay_job_with_string_timestamp(client: httpx.AsyncClient) -> None:
    at = future_seconds()
    job_id = await create(client, "delay", delay_body(at))
    info = (await client.get(f"/api/job?id={job_id}")).json()["data"]
    assert info["execType"] == 1 and info["execAt"] == int(at) and info["state"] == 0


async def test_exec_at_in_milliseconds_is_read_as_milliseconds(client: httpx.AsyncClient) -> None:
    at_ms = (int(time.time()) + 3600) * 1000
    job_id = await create(client, "delay", delay_body(str(at_ms)))
    assert (await client.get(f"/api/job?id={job_id}")).json()["data"]["execAt"] == at_ms // 1000


async def test_enable_true_schedules_and_false_unschedules(client: httpx.AsyncClient) -> None:
    job_id = await create(client, "timing", TIMING_BODY)
    for word in ("true", "T", "1"):
        response = await client.post(f"/api/enable?id={job_id}&enable={word}")
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        assert data["state"] == 1
        weekday = time.strptime(data["nextExecTime"][:19], "%Y-%m-%dT%H:%M:%S")
        assert weekday.tm_wday == 0 and weekday.tm_hour == 8 and weekday.tm_min == 0  # Monday 08:00 UTC
    response = await client.post(f"/api/enable?id={job_id}&enable=False")
    assert response.json()["data"]["state"] == 0 and response.json()["data"]["nextExecTime"] is None


async def test_enable_applies_body_fields_first(client: httpx.AsyncClient) -> None:
    job_id = await create(client, "delay", delay_body(future_seconds()))
    later = future_seconds(7200)
    response = await client.post(f"/api/enable?id={job_id}&enable=true",
                                 json={"name": "renamed", "execAt": later, "description": "d", "script": "1"})
    data = response.json()["data"]
    assert data["name"] == "renamed" and data["execAt"] == int(later) and data["state"] == 1


async def test_enable_refuses_a_delay_job_whose_moment_is_too_close(client: httpx.AsyncClient) -> None:
    job_id = await create(client, "delay", delay_body(future_seconds()))
    response = await client.post(f"/api/enable?id={job_id}&enable=true", json={"execAt": future_seconds(2)})
    assert response.status_code == 400 and "execAt" in response.json()["error"]
    assert (await client.get(f"/api/job?id={job_id}")).json()["data"]["state"] == 0


async def test_update_job_settings_example(client: httpx.AsyncClient) -> None:
    """README: PUT {"name":"this is a new name","cron":"* * 8 * * 2022"}.

    In the dialect of SPEC §1 a 6-field expression ends with day-of-week, so
    `2022` there is out of range: the update is refused naming that field and
    nothing changes. The name-only part of the example succeeds on its own.
    """
    job_id = await create(client, "timing", TIMING_BODY)
    response = await client.put(f"/api/job?id={job_id}", json={"name": "this is a new name", "cron": "* * 8 * * 2022"})
    assert response.status_code == 400
    assert "day-of-week" in response.json()["error"]
    assert (await client.get(f"/api/job?id={job_id}")).json()["data"]["name"] == "Every Monday 8:00am"
    response = await client.put(f"/api/job?id={job_id}", json={"name": "this is a new name", "cron": "* * 8 * * * 2099"})
    assert response.status_code == 200
    assert response.json()["data"]["name"] == "this is a new name"


async def test_update_exec_type_switches_a_job_to_delay(client: httpx.AsyncClient) -> None:
    job_id = await create(client, "timing", TIMING_BODY)
    at = future_seconds()
    response = await client.put(f"/api/job?id={job_id}", json={"execType": 1, "execAt": at})
    assert response.status_code == 200 and response.json()["data"]["execType"] == 1


async def test_update_of_a_running_job_rearms_it(client: httpx.AsyncClient) -> None:
    job_id = await create(client, "timing", TIMING_BODY)
    await client.post(f"/api/enable?id={job_id}&enable=true")
    data = (await client.put(f"/api/job?id={job_id}", json={"cron": "0 30 9 * * *"})).json()["data"]
    assert data["state"] == 1 and data["nextExecTime"].endswith("09:30:00.000Z")


async def test_delete_a_job(client: httpx.AsyncClient) -> None:
    job_id = await create(client, "timing", TIMING_BODY)
    assert (await client.delete(f"/api/job?id={job_id}")).status_code == 200
    response = await client.get(f"/api/job?id={job_id}")
    assert response.status_code == 404 and "no job" in response.json()["error"]
    assert (await client.delete(f"/api/job?id={job_id}")).status_code == 404


async def test_get_job_info_shape(client: httpx.AsyncClient) -> None:
    job_id = await create(client, "timing", TIMING_BODY)
    data = (await client.get(f"/api/job?id={job_id}")).json()["data"]
    for key in ("name", "description", "lastExecTime", "cron"):
        assert key in data
    assert data["lastExecTime"] is None


async def test_get_script(client: httpx.AsyncClient) -> None:
    job_id = await create(client, "timing", TIMING_BODY)
    assert (await client.get(f"/api/script?id={job_id}")).json() == {"data": {"jobId": job_id, "script": "//....."}}


async def test_post_script_replaces_it_json_or_text(client: httpx.AsyncClient) -> None:
    job_id = await create(client, "timing", TIMING_BODY)
    await client.post(f"/api/script?id={job_id}", json={"script": "console.log(1)"})
    assert (await client.get(f"/api/script?id={job_id}")).json()["data"]["script"] == "console.log(1)"
    await client.post(f"/api/script?id={job_id}", content="console.log(2)", headers={"content-type": "text/plain"})
    assert (await client.get(f"/api/script?id={job_id}")).json()["data"]["script"] == "console.log(2)"


async def test_run_delay_example(client: httpx.AsyncClient) -> None:
    body = {
        "name": "say happy new year",
        "description": "say happy new year to my friends at 2023 1.1 0:00 am",
        "execType": "1",
        "execAt": future_seconds(),
        "script": "//.....",
    }
    response = await client.post("/api/run", json=body)
    assert response.status_code == 200, response.text
    job_id = response.json()["data"]
    data = (await client.get(f"/api/job?id={job_id}")).json()["data"]
    assert data["state"] == 1 and data["execType"] == 1 and data["nextExecTime"] is not None


async def test_run_timing_example_infers_the_type_from_cron(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/run", json=TIMING_BODY)
    job_id = response.json()["data"]
    assert response.json()["id"] == job_id
    data = (await client.get(f"/api/job?id={job_id}")).json()["data"]
    assert data["state"] == 1 and data["execType"] == 0


async def test_job_list_is_a_bare_array_without_scripts(client: httpx.AsyncClient) -> None:
    ids = {await create(client, "timing", TIMING_BODY) for _ in range(3)}
    listing = (await client.get("/api/jobList")).json()
    assert isinstance(listing, list) and {job["jobId"] for job in listing} == ids
    assert all("script" not in job for job in listing)


async def test_client_can_never_choose_the_job_id(client: httpx.AsyncClient) -> None:
    job_id = await create(client, "timing", {**TIMING_BODY, "jobId": "mine", "state": 1, "unknown": True})
    assert job_id != "mine"
    assert (await client.get(f"/api/job?id={job_id}")).json()["data"]["state"] == 0
    await client.put(f"/api/job?id={job_id}", json={"jobId": "other"})
    assert (await client.get(f"/api/job?id={job_id}")).status_code == 200
