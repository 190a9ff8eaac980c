"""Built-in modules and plugins as scripts use them: real worker pool, real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import AsyncIterator, Iterator

import pytest

from traitor.domain.job import RunStatus
from traitor.runtime.abc import RunRequest
from traitor.runtime.modules.http import HttpSettings
from traitor.runtime.modules.netpolicy import AddressPolicy
from traitor.runtime.modules.registry import all_modules
from traitor.runtime.pool import WorkerPool
from traitor.store import open_store

PLUGIN = '''
from traitor.runtime.modules import HostModule

def shout(ctx, text):
    return text.upper() + "!"

async def job_of(ctx):
    return ctx.job_id

TRAITOR_MODULE = HostModule(name="shouty", functions={"shout": shout, "jobOf": job_of})
'''


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def web() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
async def pool(tmp_path: Path) -> AsyncIterator[WorkerPool]:
    plugin_dir = tmp_path / "plugin"
    plugin_dir.mkdir()
    (plugin_dir / "shouty.py").write_text(PLUGIN)
    store = open_store(f"sqlite:///{tmp_path / 'kv.db'}")
    await store.start()
    http = HttpSettings(policy=AddressPolicy(["127.0.0.1/32"]))
    modules, errors = all_modules(http, plugin_dir)
    assert not errors and "shouty" in modules
    runner = WorkerPool(workers=1, modules=modules, services=SimpleNamespace(store=store, http=http))
    await runner.start()
    yield runner
    await runner.close(1)
    await http.close()
    await store.close()


async def run(pool: WorkerPool, script: str, job_id: str = "job-1"):
    result = await pool.submit(RunRequest(run_id=f"r-{id(script)}", job_id=job_id, script=script, timeout_ms=10_000))
    return result, [line.text for line in result.lines]


async def test_the_original_readme_http_example_runs_unchanged(pool, web) -> None:
    # The original README's script, with its URL pointed at a local test server.
    script = f"""var http=require('http')
	
	http.get("{web}/sug?code=utf-8&q=CS&callback=cb",()=>{{
  		console.log('hello world')
	}},()=>{{
  		console.log("err")
	}})"""
    result, lines = await run(pool, script)
    assert result.status is RunStatus.SUCCESS, result.error
    assert lines == ["hello world"]


async def test_http_callback_object_and_promise_and_fetch(pool, web) -> None:
    script = f"""
    const http = require('http');
    http.get("{web}/a", res => console.log(res.StatusCode, res.Status, JSON.parse(res.ResponseText).path), e => console.log('err', e));
    const r = await http.request({{ method: 'GET', url: "{web}/b" }});
    console.log(r.status, r.json().path);
    const f = await fetch("{web}/c");
    console.log(f.ok, (await f.json()).path);
    """
    result, lines = await run(pool, f"(async () => {{ {script} }})()")
    assert result.status is RunStatus.SUCCESS, result.error
    assert sorted(lines) == sorted(["200 200 OK /a", "200 /b", "true /c"])


async def test_http_refuses_addresses_the_operator_did_not_allow(pool) -> None:
    script = """
    const http = require('http');
    http.get("http://10.1.2.3/", () => console.log('reached'), e => console.log('refused:', e.message));
    """
    result, lines = await run(pool, script)
    assert result.status is RunStatus.SUCCESS
    assert len(lines) == 1 and lines[0].startswith("refused:") and "private" in lines[0]


async def test_kv_keeps_state_between_runs_of_a_job(pool) -> None:
    script = """(async () => {
      const kv = require('kv');
      const n = (await kv.get('count')) || 0;
      await kv.set('count', n + 1);
      console.log('count', n + 1);
    })()"""
    outputs = [(await run(pool, script, "job-kv"))[1] for _ in range(3)]
    assert outputs == [["count 1"], ["count 2"], ["count 3"]]
    other = (await run(pool, script, "job-other"))[1]
    assert other == ["count 1"], "state is per job"


async def test_a_plugin_from_the_plugin_folder_is_usable(pool) -> None:
    script = """(async () => {
      const s = require('shouty');
      console.log(await s.shout('hi'), await s.jobOf());
    })()"""
    result, lines = await run(pool, script, "job-plug")
    assert result.status is RunStatus.SUCCESS, result.error
    assert lines == ["HI! job-plug"]


async def test_unknown_module_is_a_clear_error_inside_the_script(pool) -> None:
    result, lines = await run(pool, "try { require('fs') } catch (e) { console.log(e.message) }")
    assert lines and "Cannot find module 'fs'" in lines[0]
    await asyncio.sleep(0)
