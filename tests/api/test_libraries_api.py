"""``/api/v1/libraries``: managing script libraries, and jobs that load them, end to end
through the engine (real worker process, SQLite store): create libraries over the API,
create a job, trigger it, read the run's output."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any, AsyncIterator

import httpx
import pytest


async def make(client: httpx.AsyncClient, name: str, source: str) -> dict[str, Any]:
    response = await client.post("/api/v1/libraries", json={"name": name, "source": source})
    assert response.status_code == 201, response.text
    return response.json()["data"]


async def update(client: httpx.AsyncClient, name: str, source: str) -> dict[str, Any]:
    response = await client.put(f"/api/v1/libraries/{name}", json={"source": source})
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def job(client: httpx.AsyncClient, script: str, name: str = "uses libraries") -> str:
    response = await client.post("/api/v1/jobs", json={"name": name, "cron": "0 0 1 1 *", "script": script})
    assert response.status_code == 201, response.text
    return response.json()["data"]["jobId"]


async def run(client: httpx.AsyncClient, job_id: str, timeout: float = 20.0) -> dict[str, Any]:
    """Trigger the job and wait for its run to finish; the run's record."""
    response = await client.post(f"/api/v1/jobs/{job_id}/trigger")
    assert response.status_code == 202, response.text
    run_id = response.json()["data"]["runId"]
    deadline = time.monotonic() + timeout
    while True:
        data = (await client.get(f"/api/v1/runs/{run_id}")).json()["data"]
        if data["status"] != "running":
            return data
        assert time.monotonic() < deadline, "the run did not finish"
        await asyncio.sleep(0.05)


def printed(record: dict[str, Any]) -> list[str]:
    """The console lines of a run record, without their timestamp and level."""
    return [line.split(" ", 2)[2].strip() for line in record["output"].splitlines() if line]


# =========================================================================== jobs using libraries


async def test_a_job_requires_a_library_that_requires_another(client: httpx.AsyncClient) -> None:
    await make(client, "strings", "exports.shout = (s) => s.toUpperCase() + '!';\n")
    greet = await make(
        client,
        "greet",
        "const strings = require('lib/strings');\n"
        "module.exports = function greet(who) { return strings.shout('hello ' + who); };\n",
    )
    assert greet["requires"] == ["lib/strings"] and greet["version"] == 1
    job_id = await job(client, "const greet = require('lib/greet');\nconsole.log(greet('world'));\n")
    record = await run(client, job_id)
    assert record["status"] == "success", record["error"]
    assert printed(record) == ["HELLO WORLD!"]


async def test_a_pinned_version_survives_an_update_and_latest_follows_it(client: httpx.AsyncClient) -> None:
    await make(client, "answer", "exports.value = 'one';")
    second = await update(client, "answer", "exports.value = 'two';")
    assert second["version"] == 2 and second["latest"] is True
    job_id = await job(
        client,
        "console.log(require('lib/answer@1').value, require('lib/answer').value, require('lib/answer@2').value);",
    )
    assert printed(await run(client, job_id)) == ["one two two"]

    await update(client, "answer", "exports.value = 'three';")
    # The pin stays on version 1; the unpinned name sees the update at once (same node).
    assert printed(await run(client, job_id)) == ["one three two"]


async def test_es_module_imports_of_libraries(client: httpx.AsyncClient) -> None:
    await make(
        client,
        "mathx",
        "export const TAU = 2 * Math.PI;\n"
        "export function square(x) { return x * x; }\n"
        "export default function cube(x) { return x * x * x; }\n",
    )
    await make(client, "plain", "module.exports = { kind: 'commonjs' };")
    script = (
        "import cube, { square, TAU as tau } from 'lib/mathx';\n"
        "import * as all from 'lib/mathx';\n"
        "import plain from 'lib/plain';\n"
        "console.log(cube(3), square(4), tau.toFixed(2), Object.keys(all).sort().join(','), plain.kind);\n"
    )
    record = await run(client, await job(client, script))
    assert record["status"] == "success", record["error"]
    assert printed(record) == ["27 16 6.28 TAU,default,square commonjs"]


async def test_a_cycle_behaves_as_in_node(client: httpx.AsyncClient) -> None:
    await make(
        client,
        "ping",
        "exports.name = 'ping';\n"
        "const pong = require('lib/pong');\n"
        "exports.partner = pong.name;\n"
        "exports.sawMe = pong.sawPing;\n",
    )
    await make(
        client,
        "pong",
        "const ping = require('lib/ping');\n"
        "exports.name = 'pong';\n"
        "exports.sawPing = JSON.stringify(ping);\n",
    )
    record = await run(client, await job(client, "const p = require('lib/ping');\nconsole.log(p.partner, p.sawMe);"))
    # pong ran while ping was half done: it saw ping's exports as filled so far.
    assert printed(record) == ['pong {"name":"ping"}']


async def test_a_missing_library_is_a_clear_error_in_the_run(client: httpx.AsyncClient) -> None:
    record = await run(client, await job(client, "console.log('before');\nrequire('lib/nope');\n"))
    assert record["status"] == "error"
    assert record["error"].startswith("Error: Cannot find library 'lib/nope'")
    assert printed(record) == ["before"]
    caught = await run(
        client,
        await job(client, "try { require('lib/nope@2') } catch (e) { console.log(e.message, e.code) }"),
    )
    assert caught["status"] == "success" and printed(caught) == ["Cannot find library 'lib/nope@2' MODULE_NOT_FOUND"]


async def test_a_dynamic_specifier_is_explained(client: httpx.AsyncClient) -> None:
    await make(client, "dyn", "exports.ok = true;")
    record = await run(client, await job(client, "const name = 'dyn';\nrequire('lib/' + name);"))
    assert record["status"] == "error"
    assert "Cannot find library 'lib/dyn'" in record["error"] and "string literals" in record["error"]


async def test_an_error_inside_a_library_points_at_its_line(client: httpx.AsyncClient) -> None:
    await make(client, "thrower", "// line 1\n\nexports.fail = function fail() {\n  throw new Error('from the library');\n};\n")
    record = await run(client, await job(client, "require('lib/thrower').fail();"))
    assert record["status"] == "error"
    assert "from the library" in record["error"] and "lib/thrower@1:4" in record["error"]


async def test_a_library_with_a_syntax_error_is_stored_and_fails_runs_that_load_it(
    client: httpx.AsyncClient,
) -> None:
    broken = await make(client, "broken", "exports.x = 1;\nexports.y = ;\n")
    assert broken["syntaxError"]["line"] == 2 and broken["syntaxError"]["message"]
    got = (await client.get("/api/v1/libraries/broken")).json()["data"]
    assert got["syntaxError"] == broken["syntaxError"]
    record = await run(client, await job(client, "require('lib/broken')"))
    assert record["status"] == "error" and record["error"].startswith("SyntaxError: lib/broken@1:")
    fixed = await update(client, "broken", "exports.x = 1;\nexports.y = 2;\n")
    assert fixed["syntaxError"] is None


# =========================================================================== management


async def test_create_get_update_versions_list(client: httpx.AsyncClient) -> None:
    created = await make(client, "fmt", "exports.v = 1;")
    assert created["name"] == "fmt" and created["version"] == 1 and created["size"] == len("exports.v = 1;")
    assert created["createdAt"].endswith("Z") and created["syntaxError"] is None
    second = await update(client, "fmt", "exports.v = 2;")
    assert second["version"] == 2

    latest = (await client.get("/api/v1/libraries/fmt")).json()["data"]
    assert latest["version"] == 2 and latest["source"] == "exports.v = 2;" and latest["latest"] is True
    first = (await client.get("/api/v1/libraries/fmt", params={"version": 1})).json()["data"]
    assert first["version"] == 1 and first["source"] == "exports.v = 1;" and first["latest"] is False

    versions = (await client.get("/api/v1/libraries/fmt/versions")).json()
    assert [v["version"] for v in versions["data"]] == [2, 1] and versions["total"] == 2

    await make(client, "another", "exports.a = 1;")
    listing = (await client.get("/api/v1/libraries")).json()
    assert [(lib["name"], lib["version"]) for lib in listing["data"]] == [("another", 1), ("fmt", 2)]
    assert listing["total"] == 2 and "source" not in listing["data"][0]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"name": "Upper", "source": "x"}, "name:"),
        ({"name": "1starts-with-digit", "source": "x"}, "name:"),
        ({"name": "a" * 65, "source": "x"}, "name:"),
        ({"name": "has/slash", "source": "x"}, "name:"),
        ({"name": "", "source": "x"}, "name:"),
        ({"name": "ok", "source": ""}, "source: must not be empty"),
        ({"name": "ok", "source": "  \n "}, "source: must not be empty"),
        ({"name": "ok", "source": 12}, "source"),
        ({"name": "ok"}, "source"),
        ({"source": "x"}, "name"),
    ],
)
async def test_bad_input_is_a_400(client: httpx.AsyncClient, body: dict[str, Any], fragment: str) -> None:
    response = await client.post("/api/v1/libraries", json=body)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]


async def test_other_refusals(client: httpx.AsyncClient) -> None:
    too_big = "x" * (512 * 1024 + 1)
    response = await client.post("/api/v1/libraries", json={"name": "huge", "source": too_big})
    assert response.status_code in (400, 413) and "error" in response.json()
    response = await client.post("/api/v1/libraries", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400 and "malformed JSON" in response.json()["error"]

    await make(client, "dup", "x")
    response = await client.post("/api/v1/libraries", json={"name": "dup", "source": "y"})
    assert response.status_code == 409 and "already exists" in response.json()["error"]

    for method, path, body in [
        ("GET", "/api/v1/libraries/ghost", None),
        ("GET", "/api/v1/libraries/ghost/versions", None),
        ("PUT", "/api/v1/libraries/ghost", {"source": "x"}),
        ("DELETE", "/api/v1/libraries/ghost", None),
        ("GET", "/api/v1/libraries/NotAName", None),
    ]:
        response = await client.request(method, path, json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert "error" in response.json()
    response = await client.get("/api/v1/libraries/dup", params={"version": 7})
    assert response.status_code == 404 and "no version 7" in response.json()["error"]
    response = await client.get("/api/v1/libraries/dup", params={"version": 0})
    assert response.status_code == 400
    response = await client.put("/api/v1/libraries/dup", json={"source": ""})
    assert response.status_code == 400


async def test_deleting_a_used_library_is_refused_with_its_users_unless_forced(client: httpx.AsyncClient) -> None:
    await make(client, "core", "exports.id = 'core';")
    await make(client, "wrapper", "module.exports = require('lib/core@1');")
    user = await job(client, "console.log(require('lib/core').id)", name="core user")
    esm_user = await job(client, "import core from 'lib/core';\nconsole.log(core.id)", name="esm user")
    await job(client, "console.log('lib/core is only mentioned in a string: require(\"lib/corex\")')", name="no user")

    response = await client.delete("/api/v1/libraries/core")
    assert response.status_code == 409
    body = response.json()
    assert "2 job(s)" in body["error"] and "force=true" in body["error"]
    assert sorted(j["jobId"] for j in body["jobs"]) == sorted([user, esm_user])
    assert {j["name"] for j in body["jobs"]} == {"core user", "esm user"}
    assert body["libraries"] == ["wrapper"]
    usage = (await client.get("/api/v1/libraries/core/usage")).json()["data"]
    assert usage["libraries"] == ["wrapper"] and len(usage["jobs"]) == 2
    assert (await client.get("/api/v1/libraries/core")).status_code == 200  # still there

    response = await client.delete("/api/v1/libraries/core", params={"force": "true"})
    assert response.status_code == 200 and response.json()["data"] == {"name": "core", "deleted": True}
    assert (await client.get("/api/v1/libraries/core")).status_code == 404
    record = await run(client, user)
    assert record["status"] == "error" and "Cannot find library 'lib/core'" in record["error"]

    # An unused library goes without force; created again, its numbering goes on.
    await make(client, "lonely", "x = 1")
    assert (await client.delete("/api/v1/libraries/lonely")).status_code == 200
    again = await make(client, "lonely", "x = 2")
    assert again["version"] == 2


async def test_openapi_documents_the_routes(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    assert {"/api/v1/libraries", "/api/v1/libraries/{name}", "/api/v1/libraries/{name}/versions"} <= set(paths)
    assert set(paths["/api/v1/libraries"]) == {"get", "post"}
    assert set(paths["/api/v1/libraries/{name}"]) == {"get", "put", "delete"}
    delete = paths["/api/v1/libraries/{name}"]["delete"]
    assert "409" in delete["responses"] and "404" in delete["responses"]
    create = paths["/api/v1/libraries"]["post"]
    assert {"201", "400", "409"} <= set(create["responses"])
    schema = create["responses"]["201"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/LibraryData")


# =========================================================================== export / import


@contextlib.asynccontextmanager
async def another_service(data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A second, empty service (its own SQLite store and worker), as a client."""
    from traitor.api.app import ApiSettings, create_app
    from traitor.cli.config import parse_settings
    from traitor.cli.main import build_engine

    settings = parse_settings(["--data-dir", str(data_dir), "--workers", "1", "--timezone", "UTC"], environ={})
    engine, _ = build_engine(settings)
    await engine.start()
    app = create_app(engine, ApiSettings(max_body_bytes=settings.max_body), manage_engine=False)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://other.test") as http:
            yield http
    finally:
        await engine.close(2.0)


async def import_(client: httpx.AsyncClient, document: Any, dry_run: bool = False) -> dict[str, Any]:
    response = await client.post("/api/v1/import", params={"dryRun": str(dry_run).lower()}, json=document)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def test_an_export_carries_every_library_version_and_pinned_jobs_run_the_same_after_import(
        client: httpx.AsyncClient, tmp_path: Path) -> None:
    await make(client, "answer", "exports.value = 'one';")
    await update(client, "answer", "exports.value = 'two';")
    await make(client, "other", "exports.x = 1;")
    pinned = await job(client, "console.log(require('lib/answer@1').value, require('lib/answer').value)", "pinned")
    document = (await client.get("/api/v1/export")).json()
    assert document["libraries"] == [
        {"name": "answer", "versions": [{"version": 1, "source": "exports.value = 'one';"},
                                        {"version": 2, "source": "exports.value = 'two';"}]},
        {"name": "other", "versions": [{"version": 1, "source": "exports.x = 1;"}]},
    ]
    async with another_service(tmp_path / "other") as other:
        preview = await import_(other, document, dry_run=True)
        assert preview["libraries"] == {"created": ["answer@1", "answer@2", "other@1"], "unchanged": [], "errors": []}
        assert (await other.get("/api/v1/libraries")).json()["data"] == []  # a dry run writes nothing

        done = await import_(other, document)
        assert done["libraries"]["created"] == ["answer@1", "answer@2", "other@1"] and done["created"] == [pinned]
        assert printed(await run(other, pinned)) == ["one two"]

        again = await import_(other, document)
        assert again["libraries"] == {"created": [], "unchanged": ["answer@1", "answer@2", "other@1"], "errors": []}
        assert again["unchanged"] == [pinned]


async def test_an_import_never_rewrites_a_library_version_the_store_holds_otherwise(
        client: httpx.AsyncClient, tmp_path: Path) -> None:
    await make(client, "answer", "exports.value = 'here';")
    document = {"jobs": [], "libraries": [
        {"name": "answer", "versions": [{"version": 1, "source": "exports.value = 'elsewhere';"},
                                        {"version": 2, "source": "exports.value = 'later';"}]},
        {"name": "gap", "versions": [{"version": 3, "source": "exports.x = 3;"}]},
        {"name": "Bad Name!", "versions": [{"version": 1, "source": "1"}]},
    ]}
    report = (await import_(client, document))["libraries"]
    assert report["created"] == [] and report["unchanged"] == []
    problems = {p.get("library") or p["index"]: p["error"] for p in report["errors"]}
    assert set(problems) == {"answer@1", "gap@3", 2}
    assert "never rewritten" in problems["answer@1"] and "would number it 1" in problems["gap@3"]
    kept = (await client.get("/api/v1/libraries/answer")).json()["data"]
    assert (kept["version"], kept["source"]) == (1, "exports.value = 'here';")
    assert (await client.get("/api/v1/libraries/gap")).status_code == 404
