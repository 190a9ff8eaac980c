"""What the per-run savings of the worker must not change: a fresh context per run
although runtimes are reused, and a console that loads on first use when the
script's text does not name it."""

from __future__ import annotations

import pytest

from traitor.domain.job import RunStatus
from traitor.runtime import sandbox
from traitor.runtime.pool import WorkerPool

pytestmark = pytest.mark.asyncio(loop_scope="module")

#: Reaches `console` without naming it, so the run's core goes without its console section.
CONSOLE = 'globalThis["con" + "sole"]'


async def test_no_state_crosses_runs_in_a_reused_runtime(rt) -> None:
    """One worker, one run at a time: every run after the first reuses a runtime."""
    script = r"""
    console.log(typeof leaked, typeof Object.prototype.leaked, typeof Symbol.for("k").leaked,
                typeof globalThis.late, Math.leaked === undefined);
    var leaked = 1;
    Object.prototype.leaked = 2;
    Math.leaked = 3;
    """
    async with rt.pool(1) as pool:
        for _ in range(5):
            result = await rt.run(pool, script)
            assert result.status is RunStatus.SUCCESS, result.error
            assert rt.texts(result) == ["undefined undefined undefined undefined true"]
        # runs that end with work pending, or at a limit, drop their runtime with it
        pending = await rt.run(pool, "Promise.resolve().then(function () { globalThis.late = 1 }); throw 'x'")
        assert pending.status is RunStatus.ERROR
        timed_out = await rt.run(pool, "globalThis.late = 1; while (true) {}", timeout_ms=200)
        assert timed_out.status is RunStatus.TIMEOUT
        hog = "globalThis.late = []; while (true) late.push(new Array(1e5).fill(1))"
        memory = await rt.run(pool, hog, memory_bytes=8 << 20)
        assert memory.status is RunStatus.MEMORY
        after = await rt.run(pool, script)
        assert rt.texts(after) == ["undefined undefined undefined undefined true"]


async def test_a_reused_runtime_keeps_each_runs_memory_limit(rt) -> None:
    script = "var a = []; for (var i = 0; i < 40; i++) a.push('x'.repeat(1 << 20) + i); console.log(a.length)"
    async with rt.pool(1) as pool:
        for _ in range(3):  # 40 MiB of strings: fine under 64 MiB, out of memory under 16 MiB
            big = await rt.run(pool, script)
            assert big.status is RunStatus.SUCCESS and rt.texts(big) == ["40"], big.error
            small = await rt.run(pool, script, memory_bytes=16 << 20)
            assert (small.status, small.error) == (RunStatus.MEMORY, "out of memory: limit 16 MiB")


async def test_console_unnamed_in_the_script_loads_on_first_use(shared_pool: WorkerPool, rt) -> None:
    script = f"""
    var c = {CONSOLE};
    var d = Object.getOwnPropertyDescriptor(globalThis, "con" + "sole");
    c.log("hi", typeof c.info, "value" in d, d.enumerable, d.writable);
    c.warn("%s=%d", "n", 5);
    setTimeout(function () {{ {CONSOLE}.error("later") }}, 1);
    """
    result = await rt.run(shared_pool, script)
    assert result.status is RunStatus.SUCCESS, result.error
    assert [(line.level, line.text) for line in result.lines] == [
        ("log", "hi function true true true"),
        ("warn", "n=5"),
        ("error", "later"),
    ]


async def test_console_loaded_on_use_keeps_traces_and_truncation(shared_pool: WorkerPool, rt) -> None:
    traced = await rt.run(shared_pool, f"function where() {{ {CONSOLE}.trace('here') }}\nwhere()")
    assert traced.status is RunStatus.SUCCESS, traced.error
    assert rt.texts(traced)[0].startswith("Trace: here\n    at where (<input>:1:")
    assert "prelude" not in rt.texts(traced)[0]
    flood = await rt.run(shared_pool, f"while (true) {CONSOLE}.log('flood')", output_bytes=100)
    assert flood.status is RunStatus.OUTPUT_TRUNCATED


async def test_console_replaced_before_first_use(shared_pool: WorkerPool, rt) -> None:
    script = f"""
    var seen = [];
    {CONSOLE} = {{ log: function (x) {{ seen.push(x) }} }};
    {CONSOLE}.log("mine");
    if (seen.join() !== "mine") throw new Error("replacement not used: " + seen);
    """
    result = await rt.run(shared_pool, script)
    assert result.status is RunStatus.SUCCESS, result.error
    assert result.lines == []


async def test_native_contexts_recycle_runtimes_only_after_clean_runs() -> None:
    n = sandbox.native()
    if n is None:
        pytest.skip(f"native hooks unavailable: {sandbox._native_error}")
    runtimes = sandbox.Runtimes(n)
    try:
        ctx = sandbox.NativeContext(runtimes, 8 << 20, 1 << 20)
        ctx.enter()
        ctx.eval("globalThis.mark = 1")
        ctx.recycle = True
        rt = ctx.rt
        del ctx
        assert [runtime.rt for runtime in runtimes.idle] == [rt]
        again = sandbox.NativeContext(runtimes, 8 << 20, 1 << 20)
        assert again.rt == rt and not runtimes.idle
        again.enter()
        again.eval("if (typeof mark !== 'undefined') throw new Error('leaked')")
        again.eval("Promise.resolve().then(function () {})")  # a job left pending
        again.recycle = True
        del again
        assert runtimes.idle == []
        with pytest.raises(sandbox.quickjs.JSException, match="^Error: boom\n    at <eval>"):
            failing = sandbox.NativeContext(runtimes, 8 << 20, 1 << 20)
            failing.enter()
            failing.eval("throw new Error('boom')")
    finally:
        runtimes.close()


async def test_finalizers_of_a_run_never_run_in_the_next(rt) -> None:
    """A FinalizationRegistry callback queued when a run's context is collected would run
    in the next run's time: such a runtime is dropped instead of reused."""
    first = r"""
    var registry = new FinalizationRegistry(function () { while (true) {} });
    var kept = {};  // collected with the context only
    registry.register(kept, 1);
    """
    async with rt.pool(1) as pool:
        for _ in range(3):
            result = await rt.run(pool, first)
            assert result.status is RunStatus.SUCCESS, result.error
            after = await rt.run(pool, "console.log('next')", timeout_ms=2000)
            assert (after.status, rt.texts(after)) == (RunStatus.SUCCESS, ["next"]), after.error


async def test_a_library_logs_when_the_script_never_names_console(rt) -> None:
    from traitor.domain.library import LibraryVersion
    from traitor.runtime.abc import RunRequest
    from traitor.scheduler.libraries import prepare_library

    code = prepare_library(LibraryVersion("say", 1, "exports.hi = function (x) { console.info('hi ' + x) }", 0)).code
    async with rt.pool(1) as pool:
        request = RunRequest("lib-run", "job", "require('lib/say').hi(1)", libraries={"lib/say": (1, code)})
        result = await pool.submit(request)
    assert result.status is RunStatus.SUCCESS, result.error
    assert [(line.level, line.text) for line in result.lines] == [("info", "hi 1")]
