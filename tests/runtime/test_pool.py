"""The worker pool as a user of ScriptRunner sees it: scripts, output, lifecycle."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from traitor.domain.job import RunStatus
from traitor.runtime.abc import ConsoleLine, RunResult
from traitor.runtime.pool import QueueFullError, WorkerPool

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_hello_world(shared_pool: WorkerPool, rt) -> None:
    before = int(time.time() * 1000)
    result = await rt.run(shared_pool, 'console.log("hello world")')
    after = int(time.time() * 1000)
    assert result.status is RunStatus.SUCCESS
    assert result.error is None
    assert [(line.level, line.text) for line in result.lines] == [("log", "hello world")]
    assert before - 5 <= result.lines[0].ts <= after + 5
    assert before - 5 <= result.started_at <= result.finished_at <= after + 5
    assert result.output.endswith("log   hello world")


async def test_es5_script_of_the_original_service(shared_pool: WorkerPool, rt) -> None:
    script = r"""
    var greeting = greet("traitor");          // function declarations are hoisted
    function greet(name) { return "hi " + name; }
    function Counter(start) { this.n = start; }
    Counter.prototype.next = function () { return ++this.n; };
    var c = new Counter(41);
    var sum = (function () {
      var s = 0;
      for (var i = 0; i < arguments.length; i++) s += arguments[i];
      return s;
    })(1, 2, 3);
    console.log(greeting, c.next(), sum, typeof undefinedThing, JSON.stringify({a: [1, "x"]}));
    """
    result = await rt.run(shared_pool, script)
    assert result.status is RunStatus.SUCCESS, result.error
    assert rt.texts(result) == ['hi traitor 42 6 undefined {"a":[1,"x"]}']


async def test_es6_script(shared_pool: WorkerPool, rt) -> None:
    script = r"""
    class Animal {
      #secret = 1;
      constructor(name) { this.name = name; }
      speak() { return `${this.name} makes a sound`; }
    }
    class Dog extends Animal { speak() { return `${super.speak()} (woof)`; } }
    const double = (x) => x * 2;
    const { a, ...rest } = { a: 1, b: 2, c: 3 };
    const m = new Map([[1, "one"]]);
    let total = [1, 2, 3].map(double).reduce((s, x) => s + x, 0);
    console.log(new Dog("Rex").speak(), total, a, Object.keys(rest).join(""), m.get(1), rest?.zz ?? "none", 2n ** 64n);
    """
    result = await rt.run(shared_pool, script)
    assert result.status is RunStatus.SUCCESS, result.error
    assert rt.texts(result) == ["Rex makes a sound (woof) 12 1 bc one none 18446744073709551616n"]


async def test_console_levels_and_formatting(shared_pool: WorkerPool, rt) -> None:
    script = r"""
    console.log("a", 1, true, null, undefined, {x: [1, 2]}, [3]);
    console.info("%s is %d years old", "Bob", 42.0);
    console.warn("warned");
    console.error(new Error("bad thing"));
    console.debug("dbg");
    var cyclic = {name: "c"}; cyclic.self = cyclic;
    console.log(cyclic);
    console.log();
    console.log("ünïcödé ✓ 😀");
    """
    result = await rt.run(shared_pool, script)
    assert result.status is RunStatus.SUCCESS, result.error
    levels = [line.level for line in result.lines]
    assert levels == ["log", "info", "warn", "error", "debug", "log", "log", "log"]
    out = rt.texts(result)
    assert out[0] == 'a 1 true null undefined {"x":[1,2]} [3]'
    assert out[1] == "Bob is 42 years old"
    assert out[3].startswith("Error: bad thing\n    at ")
    assert out[5] == '{"name":"c","self":"[Circular]"}'
    assert out[6] == ""
    assert out[7] == "ünïcödé ✓ 😀"


async def test_console_extras(shared_pool: WorkerPool, rt) -> None:
    script = r"""
    function where() { console.trace("here", 1); }
    where();
    console.assert(1 === 1, "not shown");
    console.assert(1 === 2, "shown", {n: 2});
    console.count(); console.count("x"); console.count();
    console.time("t"); console.timeEnd("t");
    console.dir({d: 1});
    console.log("%o and %j and 100%%", [1], {a: "b"});
    """
    result = await rt.run(shared_pool, script)
    assert result.status is RunStatus.SUCCESS, result.error
    out = rt.texts(result)
    assert out[0].startswith("Trace: here 1\n    at where (<input>:2:")
    assert "prelude" not in out[0]
    assert out[1:5] == ['Assertion failed: shown {"n":2}', "default: 1", "x: 1", "default: 2"]
    assert out[5].startswith("t: ") and out[5].endswith("ms")
    assert out[6:] == ['{"d":1}', '[1] and {"a":"b"} and 100%']


async def test_async_await_and_timer_ordering(shared_pool: WorkerPool, rt) -> None:
    script = r"""
    const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
    setTimeout(() => {
      console.log("timeout 0 a");
      Promise.resolve().then(() => console.log("microtask inside timer"));
    }, 0);
    setTimeout(() => console.log("timeout 0 b"), 0);
    setTimeout(() => console.log("timeout 30"), 30);
    (async () => {
      console.log("async start");
      await null;
      console.log("after await");
      await sleep(60);
      console.log("after sleep 60");
    })();
    Promise.resolve().then(() => console.log("microtask"));
    console.log("sync end");
    """
    started = time.monotonic()
    result = await rt.run(shared_pool, script)
    assert result.status is RunStatus.SUCCESS, result.error
    assert rt.texts(result) == [
        "async start",
        "sync end",
        "after await",
        "microtask",
        "timeout 0 a",
        "microtask inside timer",
        "timeout 0 b",
        "timeout 30",
        "after sleep 60",
    ]
    assert time.monotonic() - started >= 0.06


async def test_pending_timer_keeps_the_run_alive(shared_pool: WorkerPool, rt) -> None:
    result = await rt.run(shared_pool, 'setTimeout(function () { console.log("late") }, 250)')
    assert result.status is RunStatus.SUCCESS
    assert rt.texts(result) == ["late"]
    assert result.finished_at - result.started_at >= 240


async def test_set_interval_and_clear_interval(shared_pool: WorkerPool, rt) -> None:
    script = r"""
    var n = 0;
    var id = setInterval(function (label) {
      n++;
      console.log(label, n);
      if (n === 3) clearInterval(id);
    }, 10, "tick");
    var never = setTimeout(function () { console.log("never") }, 5);
    clearTimeout(never);
    setImmediate(function () { console.log("immediate") });
    """
    result = await rt.run(shared_pool, script)
    assert result.status is RunStatus.SUCCESS, result.error
    assert rt.texts(result) == ["immediate", "tick 1", "tick 2", "tick 3"]


async def test_interval_never_cleared_runs_until_the_timeout(shared_pool: WorkerPool, rt) -> None:
    result = await rt.run(shared_pool, 'setInterval(function () { console.log("x") }, 50)', timeout_ms=400)
    assert result.status is RunStatus.TIMEOUT
    assert result.error == "timed out after 0.4 s wall-clock"
    assert 2 <= len(result.lines) <= 9  # fewer when the machine is busy: no catch-up


async def test_thrown_error_carries_the_stack(shared_pool: WorkerPool, rt) -> None:
    script = 'console.log("before");\nfunction explode() { throw new Error("kaput"); }\nexplode();\nconsole.log("after");'
    result = await rt.run(shared_pool, script)
    assert result.status is RunStatus.ERROR
    assert result.error.startswith("Error: kaput\n")
    assert "at explode" in result.error
    assert rt.texts(result) == ["before"]


async def test_error_thrown_by_a_timer_callback(shared_pool: WorkerPool, rt) -> None:
    script = 'function later() { throw new TypeError("late failure") }\nsetTimeout(later, 1);\nsetTimeout(function () { console.log("not reached") }, 50);'
    result = await rt.run(shared_pool, script)
    assert result.status is RunStatus.ERROR
    assert result.error.startswith("TypeError: late failure")
    assert "at later" in result.error
    assert "prelude" not in result.error
    assert rt.texts(result) == []


async def test_unhandled_rejection_is_an_error(shared_pool: WorkerPool, rt) -> None:
    result = await rt.run(shared_pool, 'Promise.reject(new Error("nobody catches me"))')
    assert result.status is RunStatus.ERROR
    assert "nobody catches me" in result.error
    assert result.error.startswith("Unhandled promise rejection: Error: nobody catches me")


async def test_rejection_in_an_async_function_is_an_error(shared_pool: WorkerPool, rt) -> None:
    script = "async function job() { await null; throw new RangeError('out of range'); }\njob();"
    result = await rt.run(shared_pool, script)
    assert result.status is RunStatus.ERROR
    assert "RangeError: out of range" in result.error
    assert "at job" in result.error


async def test_rejections_handled_later_in_the_same_turn_are_fine(shared_pool: WorkerPool, rt) -> None:
    script = r"""
    var p = Promise.reject(new Error("handled"));
    p.catch(function (e) { console.log("caught", e.message) });
    (async () => { try { await Promise.reject(new Error("x")) } catch (e) { console.log("caught x") } })();
    """
    result = await rt.run(shared_pool, script)
    assert result.status is RunStatus.SUCCESS, result.error
    assert sorted(rt.texts(result)) == ["caught handled", "caught x"]


async def test_syntax_error(shared_pool: WorkerPool, rt) -> None:
    result = await rt.run(shared_pool, 'console.log("fine");\nvar x = ;')
    assert result.status is RunStatus.ERROR
    assert result.error.startswith("SyntaxError")
    assert ":2:" in result.error  # the line of the script
    assert result.lines == []


async def test_throwing_a_value_that_is_not_an_error(shared_pool: WorkerPool, rt) -> None:
    result = await rt.run(shared_pool, 'throw "plain string"')
    assert result.status is RunStatus.ERROR
    assert result.error == "Uncaught plain string"


async def test_top_level_promise_and_await_in_async_iife(shared_pool: WorkerPool, rt) -> None:
    script = "(async () => { const v = await new Promise((r) => setTimeout(() => r(7), 20)); console.log('value', v); })()"
    result = await rt.run(shared_pool, script)
    assert result.status is RunStatus.SUCCESS
    assert rt.texts(result) == ["value 7"]


async def test_every_run_gets_a_fresh_context(shared_pool: WorkerPool, rt) -> None:
    script = r"""
    console.log(typeof leaked, typeof leakedFn, typeof globalThis.leakedProp, Array.prototype.leaked === undefined);
    var leaked = 1;
    var leakedFn = function () {};
    globalThis.leakedProp = 2;
    Array.prototype.leaked = 3;
    console = { log: function () {} };
    """
    results = await asyncio.gather(*(rt.run(shared_pool, script) for _ in range(6)))
    results += [await rt.run(shared_pool, script) for _ in range(4)]
    for result in results:
        assert result.status is RunStatus.SUCCESS, result.error
        assert rt.texts(result) == ["undefined undefined undefined true"]


async def test_100_concurrent_runs_each_get_their_own_output(shared_pool: WorkerPool, rt) -> None:
    script = "var id = %d; setTimeout(function () { console.log('run', id); console.log('square', id * id); }, id %% 7);"
    results = await asyncio.gather(*(rt.run(shared_pool, script % i) for i in range(100)))
    for i, result in enumerate(results):
        assert result.status is RunStatus.SUCCESS, result.error
        assert rt.texts(result) == [f"run {i}", f"square {i * i}"]


async def test_listener_gets_lines_in_order_as_they_come_and_before_the_result(shared_pool: WorkerPool, rt) -> None:
    script = r"""
    console.log("first");
    setTimeout(function () { console.log("second"); console.log("third"); }, 400);
    """
    seen: list[tuple[float, ConsoleLine]] = []
    future = shared_pool.submit(rt.request(script), lambda line: seen.append((time.monotonic(), line)))
    lines_at_resolution: list[int] = []
    future.add_done_callback(lambda f: lines_at_resolution.append(len(seen)))
    result: RunResult = await future
    resolved = time.monotonic()
    assert [line.text for _, line in seen] == ["first", "second", "third"]
    assert lines_at_resolution == [3]
    assert resolved - seen[0][0] >= 0.3  # streamed while the run was still going
    assert [line for _, line in seen] == result.lines


async def test_a_failing_listener_does_not_break_the_run(shared_pool: WorkerPool, rt) -> None:
    def listener(line: ConsoleLine) -> None:
        raise RuntimeError("listener bug")

    result = await shared_pool.submit(rt.request('console.log("x")'), listener)
    assert result.status is RunStatus.SUCCESS
    assert rt.texts(result) == ["x"]


async def test_duplicate_run_id_is_refused(shared_pool: WorkerPool, rt) -> None:
    req = rt.request("setTimeout(function () {}, 100)")
    first = shared_pool.submit(req)
    with pytest.raises(ValueError):
        shared_pool.submit(req)
    assert (await first).status is RunStatus.SUCCESS


async def test_busy_queued_and_cancel(rt) -> None:
    async with rt.pool(1, runs_per_worker=1) as pool:
        loop_req = rt.request("while (true) {}", timeout_ms=20_000)
        looping = pool.submit(loop_req)
        waiting = [pool.submit(rt.request(f"console.log({i})")) for i in range(3)]
        await rt.wait_for(lambda: pool.busy == 1)
        assert pool.queued == 3

        assert pool.cancel("no-such-run") is False
        extra_req = rt.request("console.log('never')")
        extra = pool.submit(extra_req)
        assert pool.queued == 4
        assert pool.cancel(extra_req.run_id) is True
        cancelled = await extra
        assert cancelled.status is RunStatus.ERROR and cancelled.error == "cancelled"
        assert pool.queued == 3

        started = time.monotonic()
        assert pool.cancel(loop_req.run_id) is True
        stopped = await asyncio.wait_for(looping, 5)
        assert stopped.status is RunStatus.ERROR and stopped.error == "cancelled"
        assert time.monotonic() - started < 1.0
        results = await asyncio.gather(*waiting)
        assert [rt.texts(r) for r in results] == [["0"], ["1"], ["2"]]
        assert pool.busy == 0 and pool.queued == 0


async def test_cancel_a_run_waiting_for_a_host_call(rt) -> None:
    async with rt.pool(1) as pool:
        req = rt.request("require('calc').slow('cancel-wait', 30).then(function () { console.log('done') })")
        future = pool.submit(req)
        await rt.wait_for(lambda: rt.calls.get("cancel-wait") == "started")
        assert pool.cancel(req.run_id)
        result = await asyncio.wait_for(future, 5)
        assert result.status is RunStatus.ERROR and result.error == "cancelled"
        await rt.wait_for(lambda: rt.calls.get("cancel-wait") == "cancelled")


async def test_queue_limit_and_submit_after_close(rt) -> None:
    pool = WorkerPool(1, max_queue=2, runs_per_worker=1)
    # Not started: everything waits in the queue.
    a = pool.submit(rt.request("1"))
    b = pool.submit(rt.request("2"))
    with pytest.raises(QueueFullError):
        pool.submit(rt.request("3"))
    await pool.start()
    assert (await a).status is RunStatus.SUCCESS
    assert (await b).status is RunStatus.SUCCESS
    await pool.close()
    with pytest.raises(RuntimeError):
        pool.submit(rt.request("4"))


async def test_close_waits_for_running_runs_then_resolves_leftovers(rt) -> None:
    pool = WorkerPool(1, runs_per_worker=2)
    await pool.start()
    short = pool.submit(rt.request("setTimeout(function () { console.log('finished in grace') }, 100)"))
    endless = pool.submit(rt.request("while (true) {}", timeout_ms=60_000))
    queued = pool.submit(rt.request("console.log('never started')"))
    await rt.wait_for(lambda: pool.busy == 2)
    pids = pool.worker_pids()
    started = time.monotonic()
    await pool.close(grace=0.5)
    assert time.monotonic() - started < 3
    assert rt.texts(await short) == ["finished in grace"]
    leftover = await endless
    assert leftover.status is RunStatus.CRASHED
    assert "closed" in leftover.error
    never = await queued
    assert never.status is RunStatus.ERROR and "cancelled" in never.error
    assert pool.worker_pids() == []
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
