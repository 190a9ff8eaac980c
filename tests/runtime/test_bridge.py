"""The host-call bridge (require → Python → Promise) and the sandbox's isolation."""

from __future__ import annotations

import pytest

from traitor.domain.job import RunStatus
from traitor.runtime.pool import WorkerPool

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_async_host_function(shared_pool: WorkerPool, rt) -> None:
    script = "require('calc').add(2, 3).then(function (sum) { console.log('sum', sum) })"
    result = await rt.run(shared_pool, script)
    assert result.status is RunStatus.SUCCESS, result.error
    assert rt.texts(result) == ["sum 5"]


async def test_plain_host_function_runs_in_a_thread(shared_pool: WorkerPool, rt) -> None:
    script = "(async () => { const r = await require('calc').mul(6, 7); console.log(r.value, r.thread) })()"
    result = await rt.run(shared_pool, script)
    assert rt.texts(result) == ["42 true"]


async def test_host_error_reaches_the_script_as_a_rejection(shared_pool: WorkerPool, rt) -> None:
    script = r"""
    (async () => {
      try { await require('calc').fail('disk on fire'); }
      catch (e) { console.log(e instanceof Error, e.message); }
    })()
    """
    result = await rt.run(shared_pool, script)
    assert result.status is RunStatus.SUCCESS, result.error
    assert rt.texts(result) == ["true disk on fire"]


async def test_uncaught_host_error_fails_the_run(shared_pool: WorkerPool, rt) -> None:
    result = await rt.run(shared_pool, "require('calc').fail('nobody catches this')")
    assert result.status is RunStatus.ERROR
    assert "nobody catches this" in result.error


async def test_node_style_callbacks_through_module_source(shared_pool: WorkerPool, rt) -> None:
    script = r"""
    var cb = require('cbcalc');
    cb.add(20, 22, function (err, sum) { console.log('callback', err, sum); });
    cb.fail('broken', function (err, value) { console.log('callback error', err.message, value); });
    cb.add(1, 1).then(function (sum) { console.log('promise', sum); });
    """
    result = await rt.run(shared_pool, script)
    assert result.status is RunStatus.SUCCESS, result.error
    assert sorted(rt.texts(result)) == ["callback error broken undefined", "callback null 42", "promise 2"]


async def test_unknown_module(shared_pool: WorkerPool, rt) -> None:
    caught = await rt.run(shared_pool, "try { require('nope') } catch (e) { console.log(e.message, e.code) }")
    assert rt.texts(caught) == ["Cannot find module 'nope' MODULE_NOT_FOUND"]
    uncaught = await rt.run(shared_pool, "require('nope')")
    assert uncaught.status is RunStatus.ERROR
    assert uncaught.error.startswith("Error: Cannot find module 'nope'")


async def test_require_is_cached_per_run(shared_pool: WorkerPool, rt) -> None:
    script = "var a = require('calc'); a.extra = 1; console.log(a === require('calc'), require('cbcalc') === require('cbcalc'))"
    first = await rt.run(shared_pool, script)
    second = await rt.run(shared_pool, "console.log(require('calc').extra)")
    assert rt.texts(first) == ["true true"]
    assert rt.texts(second) == ["undefined"]


async def test_call_context_and_json_values(shared_pool: WorkerPool, rt) -> None:
    script = r"""
    (async () => {
      const calc = require('calc');
      const me = await calc.whoami();
      console.log(JSON.stringify(me));
      const back = await calc.echo({list: [1, 2.5, "x", null, true], text: "ünï ✓"});
      console.log(JSON.stringify(back));
      try { await calc.echo(10n) } catch (e) { console.log(e.name) }
      try { await calc.nan() } catch (e) { console.log(e.message.includes('JSON')) }
      console.log(typeof calc.nope);
    })()
    """
    req = rt.request(script)
    result = await shared_pool.submit(req)
    assert result.status is RunStatus.SUCCESS, result.error
    out = rt.texts(result)
    assert out[0] == f'{{"run":"{req.run_id}","job":"{req.job_id}","services":{{"name":"test-services"}}}}'
    assert out[1] == '{"list":[1,2.5,"x",null,true],"text":"ünï ✓"}'
    assert out[2:] == ["TypeError", "true", "undefined"]


async def test_many_host_calls_in_parallel(shared_pool: WorkerPool, rt) -> None:
    script = r"""
    const calc = require('calc');
    Promise.all(Array.from({length: 200}, (_, i) => calc.add(i, 1))).then((r) => console.log(r.reduce((a, b) => a + b)));
    """
    result = await rt.run(shared_pool, script)
    assert rt.texts(result) == [str(sum(range(1, 201)))]


async def test_pending_host_calls_are_cancelled_when_the_run_ends(shared_pool: WorkerPool, rt) -> None:
    script = "require('calc').slow('timeout-cancel', 30)"
    result = await rt.run(shared_pool, script, timeout_ms=300)
    assert result.status is RunStatus.TIMEOUT
    await rt.wait_for(lambda: rt.calls.get("timeout-cancel") == "cancelled", 5)


async def test_scripts_see_no_process_filesystem_or_host(shared_pool: WorkerPool, rt) -> None:
    script = r"""
    console.log(typeof process, typeof std, typeof os, typeof Deno, typeof Bun, typeof module, typeof exports);
    console.log(typeof print, typeof scriptArgs, typeof __host, typeof load, typeof importScripts, typeof fetch);
    try { require('fs') } catch (e) { console.log(e.message) }
    try { require('child_process') } catch (e) { console.log(e.message) }
    import('os').then(function () { console.log('imported os') }, function (e) { console.log('import failed') });
    var names = Object.getOwnPropertyNames(globalThis).filter(function (n) { return /python|quickjs/i.test(n) });
    console.log(JSON.stringify(names));
    """
    result = await rt.run(shared_pool, script)
    assert result.status is RunStatus.SUCCESS, result.error
    assert rt.texts(result) == [
        "undefined undefined undefined undefined undefined undefined undefined",
        "undefined undefined undefined undefined undefined undefined",
        "Cannot find module 'fs'",
        "Cannot find module 'child_process'",
        "[]",
        "import failed",
    ]


async def test_prelude_internals_cannot_break_the_host(shared_pool: WorkerPool, rt) -> None:
    script = r"""
    Array.prototype.toJSON = function () { return "garbage" };
    JSON.stringify = function () { return "garbage" };
    Promise = null; Map = null;
    console.log("still logging");
    setTimeout(function () { console.log("timer still works") }, 1);
    require('calc').add(1, 1).then(function (v) { console.log("call still works", v) });
    """
    result = await rt.run(shared_pool, script)
    # The run may fail in its own way, but it ends and the pool is fine afterwards.
    assert result.status in (RunStatus.SUCCESS, RunStatus.ERROR)
    after = await rt.run(shared_pool, "console.log(typeof Promise, [1].toJSON)")
    assert rt.texts(after) == ["function undefined"]


async def test_global_fetch_uses_the_http_module_when_there_is_one(rt) -> None:
    from traitor.runtime.modules import HostModule

    async def fetch(ctx, url, init=None):
        return {"url": url, "method": (init or {}).get("method", "GET")}

    async with rt.pool(1, modules={"http": HostModule("http", {"fetch": fetch})}) as pool:
        script = "fetch('http://example.test/x', {method: 'POST'}).then(function (r) { console.log(r.url, r.method) })"
        result = await rt.run(pool, script)
        assert result.status is RunStatus.SUCCESS, result.error
        assert rt.texts(result) == ["http://example.test/x POST"]


async def test_a_module_source_that_does_not_compile_only_breaks_itself(rt) -> None:
    from traitor.runtime.modules import HostModule

    modules = {
        "broken": HostModule("broken", {"f": lambda ctx: 1}, source="module.exports = {"),
        "fine": HostModule("fine", {"f": lambda ctx: 2}, source="module.exports = { f: __host.f, n: 42 }"),
    }
    async with rt.pool(1, modules=modules) as pool:
        script = r"""
        try { require('broken') } catch (e) { console.log(e.name, e.message) }
        console.log(require('fine').n);
        require('fine').f().then(function (v) { console.log('f', v) });
        """
        result = await rt.run(pool, script)
        assert result.status is RunStatus.SUCCESS, result.error
        out = rt.texts(result)
        assert out[0].startswith("SyntaxError module 'broken' does not compile")
        assert out[1:] == ["42", "f 2"]
