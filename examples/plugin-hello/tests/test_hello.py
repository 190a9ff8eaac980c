"""The example plugin, loaded the way Traitor loads it: through its entry point.

Run after ``pip install -e examples/plugin-hello``:
``python -m pytest examples/plugin-hello``.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import time

import pytest
import quickjs

from traitor.runtime.modules import CallContext, HostModule
from traitor.runtime.modules.plugins import load_plugins

try:
    importlib.metadata.distribution("traitor-hello")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover
    pytest.skip("the example is not installed: pip install -e examples/plugin-hello", allow_module_level=True)

CTX = CallContext(run_id="run-1", job_id="job-1")


@pytest.fixture(scope="module")
def hello() -> HostModule:
    modules, errors = load_plugins(None)
    assert not [e for e in errors if e.name == "hello" or "hello" in e.origin], errors
    return modules["hello"]


def test_loaded_through_the_entry_point(hello: HostModule) -> None:
    assert hello.name == "hello"
    assert set(hello.functions) == {"greet", "wait"}
    assert "entry point hello = traitor_hello:traitor_module" in hello.origin


def test_greet_is_a_plain_function(hello: HostModule) -> None:
    greet = hello.functions["greet"]
    assert not asyncio.iscoroutinefunction(greet)
    assert greet(CTX, "Ada") == "Hello, Ada!"
    assert greet(CTX) == "Hello, world!"
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        greet(CTX, "  ")


async def test_wait_is_async(hello: HostModule) -> None:
    wait = hello.functions["wait"]
    assert asyncio.iscoroutinefunction(wait)
    started = time.monotonic()
    assert await wait(CTX, 50) == 50
    assert time.monotonic() - started >= 0.045
    with pytest.raises(ValueError, match="ms must be a number"):
        await wait(CTX, -1)


def test_source_offers_promises_and_callbacks(hello: HostModule) -> None:
    ctx = quickjs.Context()
    ctx.eval("""
        var __host = { greet: function (n) { return Promise.resolve('Hello, ' + n + '!'); },
                       wait: function (ms) { return ms < 0 ? Promise.reject(new Error('bad ms')) : Promise.resolve(ms); } };
        var module = { exports: {} };
        var out = {};
    """)
    ctx.eval(hello.source or "")
    ctx.eval("""
        var hello = module.exports;
        hello.greet('Ada').then(function (t) { out.promise = t; });
        hello.greet('Bob', function (err, t) { out.callback = [err, t]; });
        hello.wait(-1, function (err) { out.error = err.message; });
    """)
    while ctx.execute_pending_job():
        pass
    assert json.loads(ctx.eval("JSON.stringify(out)")) == {
        "promise": "Hello, Ada!", "callback": [None, "Hello, Bob!"], "error": "bad ms"
    }
