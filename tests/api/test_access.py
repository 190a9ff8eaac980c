"""Access control, metrics, webhooks and the offline commands, against real server processes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from servers import ServerProcess

pytestmark = pytest.mark.slow


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "traitor", *args], capture_output=True, text=True, timeout=60,
                          input=stdin)


@pytest.fixture
def guarded(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    managed = cli("token", "create", "ci", "--data-dir", str(data)).stdout.strip()
    server = ServerProcess(data, "--token", "flag-token").start()
    yield server, managed
    server.stop()


def test_tokens_guard_every_api_route(guarded) -> None:
    server, managed = guarded
    url = f"{server.url}/api/jobList"
    missing = httpx.get(url)
    assert missing.status_code == 401 and missing.json()["error"] == "missing bearer token"
    wrong = httpx.get(url, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "invalid" in wrong.json()["error"]
    assert httpx.get(url, headers={"Authorization": "Bearer flag-token"}).status_code == 200
    assert httpx.get(url, headers={"Authorization": f"Bearer {managed}"}).status_code == 200
    assert httpx.get(f"{server.url}/api/v1/jobs").status_code == 401
    assert httpx.get(f"{server.url}/healthz").status_code == 200, "probes stay open"

    listing = cli("token", "list", "--data-dir", str(server.data_dir)).stdout
    assert "ci" in listing and "active" in listing and managed not in listing, "tokens are stored hashed"
    cli("token", "revoke", "ci", "--data-dir", str(server.data_dir))
    revoked = httpx.get(url, headers={"Authorization": f"Bearer {managed}"})
    assert revoked.status_code == 401


def test_websockets_need_the_token_too(guarded) -> None:
    server, _ = guarded

    async def attempt(query: str) -> int | None:
        try:
            async with websockets.connect(f"ws://127.0.0.1:{server.port}/api/debug?id=x{query}") as ws:
                while True:
                    await ws.recv()
        except websockets.exceptions.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
        except websockets.exceptions.InvalidStatus as refused:
            return refused.response.status_code
        return None

    assert asyncio.run(attempt("")) in (4401, 403)
    assert asyncio.run(attempt("&token=flag-token")) == 4404  # authenticated: then "no such job"


def test_refuses_to_bind_publicly_without_a_token() -> None:
    result = cli("-ip", "0.0.0.0", "-p", "0")
    assert result.returncode != 0 and "without a token" in result.stderr


def test_metrics_scrape_parses_and_counts_runs(server) -> None:
    api = httpx.Client(base_url=server.url, timeout=10)
    job_id = api.post("/api/job?type=timing", json={"cron": "0 0 1 1 *", "script": "1"}).json()["id"]
    run_id = api.post(f"/api/v1/jobs/{job_id}/trigger").json()["data"]["runId"]
    for _ in range(50):
        if api.get(f"/api/v1/runs/{run_id}").json()["data"]["status"] != "running":
            break
        time.sleep(0.1)
    families = {f.name: f for f in text_string_to_metric_families(api.get("/metrics").text)}
    for name in ("traitor_fires", "traitor_fire_lateness_seconds", "traitor_runs", "traitor_run_duration_seconds",
                 "traitor_runtime_queue_depth", "traitor_workers_busy", "traitor_cluster_members",
                 "traitor_store_ping_seconds", "traitor_jobs_armed"):
        assert name in families, name
    success = [s for s in families["traitor_runs"].samples
               if s.name == "traitor_runs_total" and s.labels.get("status") == "success"]
    assert success and success[0].value >= 1


def test_readyz_reports_the_store(server) -> None:
    ready = httpx.get(f"{server.url}/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["store"] == "ok"


class _Collector(BaseHTTPRequestHandler):
    events: list[dict] = []
    failures_left = 1

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["content-length"]))
        if _Collector.failures_left > 0:
            _Collector.failures_left -= 1
            self.send_response(503)
        else:
            _Collector.events.append(json.loads(body))
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_failed_runs_reach_the_webhook_with_retries(tmp_path) -> None:
    receiver = HTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    server = ServerProcess(tmp_path / "data", "--webhook", f"http://127.0.0.1:{receiver.server_port}/hook").start()
    try:
        api = httpx.Client(base_url=server.url, timeout=10)
        ok = api.post("/api/job?type=timing", json={"name": "fine", "cron": "0 0 1 1 *", "script": "1"}).json()["id"]
        bad = api.post("/api/job?type=timing", json={"name": "broken", "cron": "0 0 1 1 *",
                                                     "script": "throw new Error('down')"}).json()["id"]
        api.post(f"/api/v1/jobs/{ok}/trigger")
        api.post(f"/api/v1/jobs/{bad}/trigger")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not _Collector.events:
            time.sleep(0.1)
        assert len(_Collector.events) == 1, "one failure, delivered once after a 503"
        event = _Collector.events[0]
        assert event["event"] == "run.failed" and event["job"]["name"] == "broken"
        assert event["run"]["status"] == "error" and "down" in event["run"]["error"]
    finally:
        server.stop()
        receiver.shutdown()


def test_export_and_import_round_trip_with_dry_run(tmp_path) -> None:
    source = ServerProcess(tmp_path / "a").start()
    api = httpx.Client(base_url=source.url, timeout=10)
    for i in range(3):
        api.post("/api/job?type=timing", json={"name": f"j{i}", "cron": "0 0 1 1 *", "script": f"// {i}"})
    api.post("/api/v1/libraries", json={"name": "shared", "source": "exports.v = 1;"})
    api.put("/api/v1/libraries/shared", json={"source": "exports.v = 2;"})
    source.stop()
    exported = cli("export", "--data-dir", str(tmp_path / "a"))
    assert exported.returncode == 0, exported.stderr
    jobs = json.loads(exported.stdout)["jobs"]
    assert sorted(j["name"] for j in jobs) == ["j0", "j1", "j2"] and all("script" in j for j in jobs)
    assert [len(lib["versions"]) for lib in json.loads(exported.stdout)["libraries"]] == [2]

    dump = tmp_path / "jobs.json"
    dump.write_text(exported.stdout)
    dry = cli("import", str(dump), "--dry-run", "--data-dir", str(tmp_path / "b"))
    assert dry.returncode == 0 and "3 created" in dry.stderr and "would be" in dry.stderr
    assert "importing [" in dry.stderr, "progress is shown"
    real = cli("import", str(dump), "--data-dir", str(tmp_path / "b"))
    assert real.returncode == 0 and "3 created" in real.stderr and "2 versions created" in real.stderr
    again = cli("import", str(dump), "--data-dir", str(tmp_path / "b"))
    assert "0 created, 0 updated, 3 unchanged" in again.stderr
    assert "0 versions created, 2 unchanged" in again.stderr

    target = ServerProcess(tmp_path / "b").start()
    try:
        imported = httpx.get(f"{target.url}/api/jobList").json()
        assert {j["jobId"] for j in imported} == {j["jobId"] for j in jobs}
    finally:
        target.stop()


async def test_api_import_is_idempotent_and_reports_bad_items(client) -> None:
    payload = {"jobs": [{"jobId": "fixed-1", "name": "a", "cron": "0 0 1 1 *", "script": "1"},
                        {"jobId": "fixed-2", "name": "b", "cron": "not cron", "script": "1"}]}
    dry = (await client.post("/api/v1/import?dryRun=true", json=payload)).json()["data"]
    assert dry["created"] == ["fixed-1"] and dry["errors"][0]["index"] == 1
    assert (await client.get("/api/v1/jobs/fixed-1")).status_code == 404, "dry run writes nothing"
    first = (await client.post("/api/v1/import", json=payload)).json()["data"]
    assert first["created"] == ["fixed-1"]
    payload["jobs"][0]["name"] = "renamed"
    second = (await client.post("/api/v1/import", json=payload)).json()["data"]
    assert second["updated"] == ["fixed-1"] and second["created"] == []
    assert (await client.get("/api/v1/jobs/fixed-1")).json()["data"]["name"] == "renamed"
