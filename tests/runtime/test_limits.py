"""Limits: every run ends, with the status that names the limit, and the pool carries on."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from traitor.domain.job import RunStatus
from traitor.runtime.pool import WorkerPool

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_endless_loop_times_out_while_other_runs_complete(shared_pool: WorkerPool, rt) -> None:
    started = time.monotonic()
    endless = asyncio.ensure_future(rt.run(shared_pool, "while (true) {}", timeout_ms=1000))
    others = [rt.run(shared_pool, f"console.log('other {i}')") for i in range(20)]
    done = await asyncio.gather(*others)
    others_took = time.monotonic() - started
    assert [rt.texts(r) for r in done] == [[f"other {i}"] for i in range(20)]
    assert others_took < 1.0
    result = await endless
    took = time.monotonic() - started
    assert result.status is RunStatus.TIMEOUT
    assert result.error == "timed out after 1.0 s wall-clock"
    assert 0.95 <= took < 2.0


async def test_a_busy_run_does_not_starve_the_others_in_its_worker(rt) -> None:
    async with rt.pool(1) as pool:
        started = time.monotonic()
        busy_req = rt.request("var x = 0; while (true) { x++ }", timeout_ms=3000)
        busy = pool.submit(busy_req)
        await asyncio.sleep(0.1)  # the loop is running now
        quick = [pool.submit(rt.request(f"setTimeout(function () {{ console.log({i}) }}, 10)")) for i in range(10)]
        results = await asyncio.gather(*quick)
        assert [rt.texts(r) for r in results] == [[str(i)] for i in range(10)]
        assert time.monotonic() - started < 1.5
        assert not busy.done()
        assert pool.cancel(busy_req.run_id)
        assert (await busy).error == "cancelled"


async def test_a_busy_worker_is_not_mistaken_for_a_hung_one(rt) -> None:
    async with rt.pool(1, kill_grace=0.5) as pool:
        heavy = pool.submit(rt.request("for (;;) {}", timeout_ms=1500))
        await asyncio.sleep(0.1)
        light = pool.submit(rt.request("setTimeout(function () {}, 5000)", timeout_ms=200))
        assert (await light).error == "timed out after 0.2 s wall-clock"
        assert (await heavy).error == "timed out after 1.5 s wall-clock"


async def test_a_preempted_run_still_ends_on_time(rt) -> None:
    """A run suspended under a later CPU-bound run can't unwind before it; it is
    reported at its deadline anyway."""
    async with rt.pool(1) as pool:
        started = time.monotonic()
        first = pool.submit(rt.request("for (;;) {}", timeout_ms=600))
        await asyncio.sleep(0.1)
        second_req = rt.request("for (;;) {}", timeout_ms=5000)
        second = pool.submit(second_req)
        result = await first
        assert result.error == "timed out after 0.6 s wall-clock"
        assert time.monotonic() - started < 1.2
        assert not second.done()
        pool.cancel(second_req.run_id)
        assert (await second).error == "cancelled"


async def test_cpu_limit_is_distinct_from_the_wall_clock_limit(shared_pool: WorkerPool, rt) -> None:
    started = time.monotonic()
    result = await rt.run(shared_pool, "var n = 0; for (;;) { n += Math.sqrt(n) }", cpu_ms=300, timeout_ms=5000)
    assert result.status is RunStatus.TIMEOUT
    assert result.error == "CPU limit of 0.3 s exceeded"
    assert time.monotonic() - started < 4


async def test_waiting_does_not_use_cpu_time(shared_pool: WorkerPool, rt) -> None:
    script = "setTimeout(function () { console.log('woke') }, 400)"
    result = await rt.run(shared_pool, script, cpu_ms=100, timeout_ms=5000)
    assert result.status is RunStatus.SUCCESS
    assert rt.texts(result) == ["woke"]


async def test_timeout_is_uncatchable_and_keeps_earlier_output(shared_pool: WorkerPool, rt) -> None:
    script = r"""
    console.log("before the loop");
    try { while (true) {} } catch (e) { console.log("caught", e) } finally { console.log("finally") }
    """
    result = await rt.run(shared_pool, script, timeout_ms=300)
    assert result.status is RunStatus.TIMEOUT
    assert rt.texts(result) == ["before the loop"]


async def test_timeout_inside_promise_jobs(shared_pool: WorkerPool, rt) -> None:
    script = "(async function spin() { for (;;) { await null } })()"
    result = await rt.run(shared_pool, script, timeout_ms=400)
    assert result.status is RunStatus.TIMEOUT
    assert "wall-clock" in result.error


async def test_memory_hog_ends_as_memory_and_the_pool_carries_on(shared_pool: WorkerPool, rt) -> None:
    script = "let a = []; while (true) a.push(new Array(1e5).fill(1))"
    result = await rt.run(shared_pool, script)
    assert result.status is RunStatus.MEMORY
    assert result.error == "out of memory: limit 64 MiB"
    small = await rt.run(shared_pool, "var a = []; while (true) a.push('x'.repeat(1e5) + a.length)", memory_bytes=8 << 20)
    assert small.status is RunStatus.MEMORY
    assert small.error == "out of memory: limit 8 MiB"
    after = await rt.run(shared_pool, "console.log('still fine')")
    assert after.status is RunStatus.SUCCESS and rt.texts(after) == ["still fine"]


async def test_memory_error_caught_by_the_script_is_its_business(shared_pool: WorkerPool, rt) -> None:
    script = r"""
    var big = [];
    try { while (true) big.push(new Array(1e5).fill(1)) } catch (e) { big = null; console.log("recovered") }
    """
    result = await rt.run(shared_pool, script, memory_bytes=16 << 20)
    assert result.status in (RunStatus.SUCCESS, RunStatus.MEMORY)
    if result.status is RunStatus.SUCCESS:
        assert rt.texts(result) == ["recovered"]


async def test_output_flood_is_truncated_at_the_limit(shared_pool: WorkerPool, rt) -> None:
    script = 'var i = 0; while (true) { try { console.log("line " + i++ + " ünï") } catch (e) {} }'
    result = await rt.run(shared_pool, script, output_bytes=4096)
    assert result.status is RunStatus.OUTPUT_TRUNCATED
    assert result.error == "output truncated at 4096 bytes"
    marker = result.lines[-1]
    assert marker.text == "\u2026 output truncated at 4096 bytes"
    body = sum(len(line.text.encode()) + 1 for line in result.lines[:-1])
    assert 4000 <= body <= 4096
    assert rt.texts(result)[0] == "line 0 ünï"


async def test_one_huge_line_is_cut(shared_pool: WorkerPool, rt) -> None:
    result = await rt.run(shared_pool, "console.log('é'.repeat(100000)); console.log('after')", output_bytes=1001)
    assert result.status is RunStatus.OUTPUT_TRUNCATED
    assert rt.texts(result)[0] == "é" * 500
    assert rt.texts(result)[1].startswith("\u2026 output truncated")


async def test_deep_recursion_is_an_error_not_a_crash(shared_pool: WorkerPool, rt) -> None:
    result = await rt.run(shared_pool, "function down(n) { return down(n + 1) + 1 }\ndown(0)")
    assert result.status is RunStatus.ERROR
    assert "Maximum call stack size exceeded" in result.error
    caught = await rt.run(shared_pool, "function down(n) { return down(n + 1) + 1 }\ntry { down(0) } catch (e) { console.log(e.name) }")
    assert caught.status is RunStatus.SUCCESS and rt.texts(caught) == ["RangeError"]
    deep_enough = await rt.run(shared_pool, "function d(n) { return n ? d(n - 1) + 1 : 0 }\nconsole.log(d(500))")
    assert rt.texts(deep_enough) == ["500"]


async def test_limits_without_the_native_hooks(rt, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback (binding time limit, source prelude) still enforces every limit."""
    monkeypatch.setenv("TRAITOR_QJS_HOOKS", "0")
    async with rt.pool(1) as pool:
        assert pool.hooks_error == "disabled by TRAITOR_QJS_HOOKS=0"
        hello = await rt.run(pool, "setTimeout(function () { console.log('hello', {a: 1}) }, 5)")
        assert hello.status is RunStatus.SUCCESS and rt.texts(hello) == ['hello {"a":1}']
        wall = await rt.run(pool, "while (true) {}", timeout_ms=300)
        # the binding's limit counts CPU time: on a busy machine the pool's backstop may win
        assert wall.status is RunStatus.TIMEOUT
        assert wall.error.startswith("timed out after 0.3 s wall-clock")
        cpu = await rt.run(pool, "while (true) {}", timeout_ms=5000, cpu_ms=200)
        assert (cpu.status, cpu.error) == (RunStatus.TIMEOUT, "CPU limit of 0.2 s exceeded")
        mem = await rt.run(pool, "let a = []; while (true) a.push(new Array(1e5).fill(1))", memory_bytes=16 << 20)
        assert mem.status is RunStatus.MEMORY
        flood = await rt.run(pool, "while (true) console.log('flood')", output_bytes=100)
        assert flood.status is RunStatus.OUTPUT_TRUNCATED
        calc = await rt.run(pool, "require('calc').add(2, 3).then(function (v) { console.log(v) })")
        assert rt.texts(calc) == ["5"]
    assert os.environ.get("TRAITOR_QJS_HOOKS") == "0"  # restored by monkeypatch afterwards
