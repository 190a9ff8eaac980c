"""The create fast lane (``compat.CreateFastLane``): ordinary ``POST /api/job`` and
``POST /api/run`` requests skip FastAPI's routing, and no client can tell.

Parity: the same requests sent to an app with the lane and to one without it get the
same status, headers and body, and store the same job. Then the lane on its own, in
front of a stand-in app: what it serves, what it hands on (with the body replayed).
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any, AsyncIterator

import httpx
import pytest

from traitor.api.app import ApiSettings, create_app
from traitor.api.compat import CreateFastLane
from traitor.cli.config import parse_settings
from traitor.cli.main import build_engine
from traitor.domain.errors import ConflictError, TraitorError, ValidationError
from traitor.domain.job import ExecType, Job

GOOD = {"name": "n", "cron": "*/5 * * * *", "script": "console.log(1)"}
LATER = int(time.time()) + 86400

#: (path, body, content type): ordinary requests, ones the route rejects, and the edges
#: where JSON parsers and the input model disagree.
CASES: list[tuple[str, Any, str | None]] = [
    ("/api/job?type=timing", GOOD, "application/json"),
    ("/api/job?type=TIMING", {**GOOD, "timeout": "1.5", "retries": "2", "memoryLimit": 64.0}, "application/json"),
    ("/api/job?type=timing", {**GOOD, "overlap": "SKIP", "misfire": None, "timezone": "Europe/Paris"}, None),
    ("/api/job?type=timing", {**GOOD, "jobId": "mine", "state": 1, "extra": [1]}, "application/json; charset=utf-8"),
    ("/api/job?type=timing&type=delay", {"execAt": LATER}, "application/json"),
    ("/api/job?type=delay", {"execAt": str(LATER)}, "application/x-www-form-urlencoded"),
    ("/api/job?type=", GOOD, "application/json"),
    ("/api/run", GOOD, "application/json"),
    ("/api/run?type=delay", {"execAt": LATER * 1000}, "application/json"),
    # The domain says no (answered by the lane, as the app's handlers would).
    ("/api/job?type=timing", {**GOOD, "cron": "61 * * * *"}, "application/json"),
    ("/api/job?type=weekly", GOOD, "application/json"),
    ("/api/job?type=delay", {"execAt": int(time.time()) + 2}, "application/json"),
    ("/api/run", {"name": "no type"}, "application/json"),
    ("/api/job?type=timing", {**GOOD, "timezone": "Mars/Olympus"}, "application/json"),
    # The route says no (handed on to it).
    ("/api/job", GOOD, "application/json"),
    ("/api/job?type=timing", b"", "application/json"),
    ("/api/job?type=timing", b"{not json", "application/json"),
    ("/api/job?type=timing", b"[1, 2]", "application/json"),
    ("/api/job?type=timing", b'{"name": NaN, "cron": "* * * * *"}', "application/json"),
    ("/api/job?type=timing", b'{"cron": "* * * * *", "name": "\\ud800"}', "application/json"),
    ("/api/job?type=timing", b'{"cron": "* * * * *", "name": "\xe9"}', "application/json"),
    ("/api/job?type=timing", json.dumps(GOOD).encode("utf-16"), "application/json"),
    ("/api/job?type=timing", {**GOOD, "name": "x" * 201}, "application/json"),
    ("/api/job?type=timing", {**GOOD, "execType": 1.5}, "application/json"),
    ("/api/job?type=timing", {**GOOD, "cron": 5}, "application/json"),
    ("/api/job?type=timing", json.dumps(GOOD).encode(), "text/plain"),
    ("/api/job/?type=timing", GOOD, "application/json"),
]


@pytest.fixture
async def two_clients(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """One engine, two apps on it: with the fast lane, and without."""
    settings = parse_settings(["--data-dir", str(tmp_path), "--workers", "1", "--timezone", "UTC"], environ={})
    engine, _ = build_engine(settings)
    await engine.start()
    apps = [create_app(engine, ApiSettings(fast_creates=fast), manage_engine=False) for fast in (True, False)]
    clients = [httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://traitor.test")
               for app in apps]
    try:
        yield clients[0], clients[1]
    finally:
        for client in clients:
            await client.aclose()
        await engine.close(2.0)


def _scrub(value: Any) -> Any:
    """Drop what differs between two creates of the same job: its id and instants."""
    if isinstance(value, dict):
        return {k: "<varies>" if k in ("id", "data", "jobId", "createdAt", "updatedAt", "nextExecTime")
                and isinstance(v, str) else _scrub(v) for k, v in value.items()}
    return value


async def _answer(client: httpx.AsyncClient, path: str, body: Any, content_type: str | None) -> tuple[Any, ...]:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"content-type": content_type} if content_type else {}
    response = await client.post(path, content=content, headers=headers)
    answer = response.json() if response.headers.get("content-type") == "application/json" else response.text
    stored = None
    if response.status_code == 200:
        job_id = answer["id"]
        assert response.content == b'{"id":"%s","data":"%s"}' % (job_id.encode(), job_id.encode())
        stored = (await client.get(f"/api/job?id={job_id}")).json()
        stored["script"] = (await client.get(f"/api/script?id={job_id}")).json()["data"]["script"]
    headers_seen = {k: v for k, v in response.headers.items() if k in ("content-type", "content-length", "location")}
    return response.status_code, headers_seen, _scrub(answer), _scrub(stored)


@pytest.mark.parametrize(("path", "body", "content_type"), CASES)
async def test_the_lane_answers_as_the_routes_do(two_clients, path: str, body: Any, content_type: str | None) -> None:
    fast, routed = two_clients
    assert await _answer(fast, path, body, content_type) == await _answer(routed, path, body, content_type)


async def test_the_lane_keeps_the_token_check(tmp_path: Path) -> None:
    settings = parse_settings(["--data-dir", str(tmp_path), "--workers", "1", "--timezone", "UTC"], environ={})
    engine, _ = build_engine(settings)
    await engine.start()

    async def authenticate(token: str) -> bool:
        return token == "good"

    app = create_app(engine, ApiSettings(authenticate=authenticate), manage_engine=False)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://traitor.test") as client:
            denied = await client.post("/api/job?type=timing", json=GOOD)
            assert denied.status_code == 401 and denied.json() == {"error": "missing bearer token"}
            created = await client.post("/api/job?type=timing", json=GOOD, headers={"authorization": "Bearer good"})
            assert created.status_code == 200
            listed = await client.get("/api/jobList", headers={"authorization": "Bearer good"})
            assert [job["jobId"] for job in listed.json()] == [created.json()["id"]]
    finally:
        await engine.close(2.0)


# ---------------------------------------------------------------------- the lane alone
class FakeJobs:
    """Stands in for JobService: records creates, or raises ``fail``."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.created: list[tuple[dict[str, Any], Any, bool]] = []
        self.fail = fail

    async def create(self, body: Any, type_hint: Any = None, *, enable: bool = False) -> Job:
        if self.fail is not None:
            raise self.fail
        self.created.append((dict(body), type_hint, enable))
        return Job(job_id=str(uuid.uuid4()), exec_type=ExecType.TIMING)


class Downstream:
    """Stands in for the app behind the lane: records what reaches it, answers 299."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def _call(lane: CreateFastLane, path: str, query: bytes, chunks: list[bytes],
                content_type: bytes | None = b"application/json") -> list[dict[str, Any]]:
    headers = [(b"content-type", content_type)] if content_type else []
    scope = {"type": "http", "method": "POST", "path": path, "query_string": query, "headers": headers}
    messages = [{"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
                for i, chunk in enumerate(chunks)]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await lane(scope, receive, send)
    return sent


async def test_an_ordinary_create_never_reaches_the_app() -> None:
    jobs, app = FakeJobs(), Downstream()
    lane = CreateFastLane(app, jobs)  # type: ignore[arg-type]
    body = json.dumps({**GOOD, "timeout": 3, "unknown": 1}).encode()
    sent = await _call(lane, "/api/job", b"type=timing", [body[:10], body[10:]])  # a body in two pieces
    run = await _call(lane, "/api/run", b"", [body])
    assert app.bodies == []
    assert jobs.created == [({**GOOD, "timeout": 3}, "timing", False), ({**GOOD, "timeout": 3}, None, True)]
    assert sent[0] == {"type": "http.response.start", "status": 200,
                       "headers": [(b"content-length", str(len(sent[1]["body"])).encode()),
                                   (b"content-type", b"application/json")]}
    answer = json.loads(sent[1]["body"])
    assert answer["id"] == answer["data"] and uuid.UUID(answer["id"]).version == 4
    assert run[0]["status"] == 200


@pytest.mark.parametrize(
    ("path", "query", "chunks", "content_type"),
    [
        ("/api/job", b"", [json.dumps(GOOD).encode()], b"application/json"),  # ?type= missing
        ("/api/job", b"type=timing", [b"{not json"], b"application/json"),
        ("/api/job", b"type=timing", [b"{not ", b"json"], b"application/json"),
        ("/api/job", b"type=timing", [b'{"name": 5}'], b"application/json"),
        ("/api/job", b"type=timing", [b""], b"application/json"),
        ("/api/job", b"type=timing", [json.dumps(GOOD).encode()], b"text/plain"),
        ("/api/job", b"type=timing", [json.dumps(GOOD).encode()], None),
        ("/api/jobs", b"type=timing", [json.dumps(GOOD).encode()], b"application/json"),
        ("/api/job/", b"type=timing", [json.dumps(GOOD).encode()], b"application/json"),
    ],
)
async def test_anything_else_reaches_the_app_with_its_body(path: str, query: bytes, chunks: list[bytes],
                                                           content_type: bytes | None) -> None:
    jobs, app = FakeJobs(), Downstream()
    sent = await _call(CreateFastLane(app, jobs), path, query, chunks, content_type)  # type: ignore[arg-type]
    assert app.bodies == [b"".join(chunks)] and jobs.created == []
    assert sent[0]["status"] == 299


async def test_a_client_gone_before_its_body_reaches_the_app() -> None:
    jobs, app = FakeJobs(), Downstream()
    sent = await _call(CreateFastLane(app, jobs), "/api/job", b"type=timing", [])  # type: ignore[arg-type]
    assert app.bodies == [b""] and jobs.created == [] and sent[0]["status"] == 299


@pytest.mark.parametrize(
    ("fail", "status"),
    [(ValidationError("cron", "bad"), 400), (ConflictError("taken"), 409)],
)
async def test_domain_errors_answer_as_the_handlers_do(fail: TraitorError, status: int) -> None:
    sent = await _call(CreateFastLane(Downstream(), FakeJobs(fail)), "/api/job", b"type=timing",  # type: ignore[arg-type]
                       [json.dumps(GOOD).encode()])
    assert sent[0]["status"] == status
    assert json.loads(sent[1]["body"]) == {"error": str(fail)}


async def test_other_errors_propagate_to_the_server_error_handler() -> None:
    lane = CreateFastLane(Downstream(), FakeJobs(RuntimeError("the SQLite store is closed")))  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="closed"):
        await _call(lane, "/api/job", b"type=timing", [json.dumps(GOOD).encode()])


async def test_a_streamed_body_over_the_limit_is_a_413(engine_app: Any) -> None:
    """No content-length: the body limit counts the chunks the lane reads."""
    limit = 1024 * 1024
    chunk = b" " * (256 * 1024)
    messages = [{"type": "http.request", "body": chunk, "more_body": True} for _ in range(5)]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/api/job", "raw_path": b"/api/job", "query_string": b"type=timing", "root_path": "",
             "headers": [(b"host", b"traitor.test"), (b"content-type", b"application/json")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": {}}

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await engine_app(scope, receive, send)
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"]) == {"error": f"request body too large: the limit is {limit} bytes (--max-body)"}
