"""The standalone engine as a user runs it: a real server process, real SQLite, real workers."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx
import pytest

from servers import ServerProcess

pytestmark = pytest.mark.slow


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def runs_of(api: httpx.Client, job_id: str, **params) -> list[dict]:
    return api.get(f"/api/v1/jobs/{job_id}/runs", params={"limit": 1000, **params}).json()["data"]


def test_every_second_job_fires_on_time_for_five_seconds(server: ServerProcess) -> None:
    api = httpx.Client(base_url=server.url, timeout=10)
    job_id = api.post("/api/run", json={"cron": "* * * * * *", "script": "var x = 1;"}).json()["id"]
    time.sleep(6.5)
    api.post(f"/api/enable?id={job_id}&enable=false")
    runs = sorted(runs_of(api, job_id), key=lambda r: r["scheduledAt"])
    scheduled = [ms(r["scheduledAt"]) for r in runs]
    assert len(scheduled) >= 5
    assert all(b - a == 1000 for a, b in zip(scheduled, scheduled[1:])), "a second was skipped or doubled"
    late = [ms(r["startedAt"]) - ms(r["scheduledAt"]) for r in runs]
    assert all(0 <= d <= 20 for d in late), f"start lateness (ms): {late}"
    assert all(r["status"] == "success" for r in runs)


def test_kill_9_after_200_acknowledged_writes_loses_none(tmp_path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    api = httpx.Client(base_url=server.url, timeout=10)

    def create(i: int) -> str:
        response = api.post("/api/job?type=timing", json={"name": f"job-{i}", "cron": "0 0 * * *", "script": "1"})
        assert response.status_code == 200
        return response.json()["id"]

    with ThreadPoolExecutor(8) as pool:
        acknowledged = list(pool.map(create, range(200)))
    server.stop(signal.SIGKILL)

    again = ServerProcess(tmp_path / "data").start()
    try:
        api = httpx.Client(base_url=again.url, timeout=10)
        stored = {job["jobId"] for job in api.get("/api/jobList").json()}
        assert set(acknowledged) <= stored
        assert len(stored) == 200
    finally:
        again.stop()


def test_restart_rearms_jobs_and_applies_misfire_policies(tmp_path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    api = httpx.Client(base_url=server.url, timeout=10)
    every = api.post("/api/run", json={"cron": "* * * * * *", "script": "console.log('alive')"}).json()["id"]
    moment = int(time.time()) + 6
    once = api.post("/api/run", json={"execAt": moment, "misfire": "once", "misfireGrace": 1,
                                      "script": "console.log('late but run')"}).json()["id"]
    skip = api.post("/api/run", json={"execAt": moment, "misfire": "skip", "misfireGrace": 1,
                                      "script": "console.log('never')"}).json()["id"]
    assert server.stop(signal.SIGTERM) == 0, server.output()
    stopped_at = time.time()
    time.sleep(max(0.0, moment + 3 - time.time()))

    again = ServerProcess(tmp_path / "data").start()
    try:
        api = httpx.Client(base_url=again.url, timeout=10)
        time.sleep(2.5)
        fresh = [r for r in runs_of(api, every) if ms(r["scheduledAt"]) > again_started(stopped_at)]
        assert any(r["status"] == "success" for r in fresh), "the timing job did not fire after the restart"

        once_runs = runs_of(api, once)
        assert [(r["status"], r["trigger"]) for r in once_runs] == [("success", "misfire")]
        assert "late but run" in once_runs[0]["output"]
        assert ms(once_runs[0]["scheduledAt"]) == moment * 1000

        skip_runs = runs_of(api, skip)
        assert [r["status"] for r in skip_runs] == ["missed"]
        for job_id in (once, skip):
            assert api.get(f"/api/job?id={job_id}").json()["data"]["state"] == 0
    finally:
        again.stop()


def again_started(stopped_at: float) -> int:
    return int(stopped_at * 1000) + 1000


def test_sigterm_lets_running_scripts_finish_and_exits_0(tmp_path) -> None:
    server = ServerProcess(tmp_path / "data", "--grace", "5").start()
    api = httpx.Client(base_url=server.url, timeout=10)
    job_id = api.post("/api/job?type=timing", json={
        "cron": "0 0 1 1 *", "script": "setTimeout(() => console.log('finished'), 1500)"}).json()["id"]
    run_id = api.post(f"/api/v1/jobs/{job_id}/trigger").json()["data"]["runId"]
    time.sleep(0.3)
    assert server.stop(signal.SIGTERM) == 0
    again = ServerProcess(tmp_path / "data").start()
    try:
        run = httpx.get(f"{again.url}/api/v1/runs/{run_id}").json()["data"]
        assert run["status"] == "success" and "finished" in run["output"]
    finally:
        again.stop()
