"""Worker processes that die or hang: their runs resolve, the pool heals itself."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from traitor.domain.job import RunStatus


async def test_sigkilled_worker_resolves_its_runs_as_crashed_and_is_replaced(rt) -> None:
    async with rt.pool(2) as pool:
        first_pids = pool.worker_pids()
        assert len(first_pids) == 2
        # One endless run per worker (dispatch picks the least-loaded worker).
        requests = [rt.request("while (true) {}", timeout_ms=30_000) for _ in range(2)]
        a, b = (pool.submit(req) for req in requests)
        await rt.wait_for(lambda: pool.busy == 2)
        await asyncio.sleep(0.1)
        victim = first_pids[0]
        os.kill(victim, signal.SIGKILL)  # what the kernel's OOM killer does
        done, pending = await asyncio.wait([a, b], timeout=5, return_when=asyncio.FIRST_COMPLETED)
        assert len(done) == 1
        crashed = done.pop().result()
        assert crashed.status is RunStatus.CRASHED
        assert crashed.error == "worker process died (signal 9, SIGKILL)"

        await rt.wait_for(lambda: len(pool.worker_pids()) == 2 and victim not in pool.worker_pids())
        after = await rt.run(pool, "console.log('next run works')")
        assert after.status is RunStatus.SUCCESS and rt.texts(after) == ["next run works"]

        survivor = pending.pop()
        assert not survivor.done()
        assert [pool.cancel(req.run_id) for req in requests].count(True) == 1
        assert (await asyncio.wait_for(survivor, 5)).error == "cancelled"


async def test_segfaulting_worker(rt) -> None:
    async with rt.pool(1) as pool:
        [pid] = pool.worker_pids()
        runs = [pool.submit(rt.request(f"setTimeout(function () {{ console.log({i}) }}, 5000)")) for i in range(3)]
        await rt.wait_for(lambda: pool.busy == 3)
        os.kill(pid, signal.SIGSEGV)
        results = await asyncio.wait_for(asyncio.gather(*runs), 5)
        assert {r.status for r in results} == {RunStatus.CRASHED}
        assert results[0].error == "worker process died (signal 11, SIGSEGV)"
        after = await rt.run(pool, "console.log('healed')")
        assert rt.texts(after) == ["healed"]
        assert len(pool.worker_pids()) == 1 and pool.worker_pids() != [pid]


async def test_runs_queued_while_the_only_worker_is_down_run_after_replacement(rt) -> None:
    async with rt.pool(1, runs_per_worker=1) as pool:
        [pid] = pool.worker_pids()
        endless = pool.submit(rt.request("while (true) {}", timeout_ms=30_000))
        queued = [pool.submit(rt.request(f"console.log('queued {i}')")) for i in range(5)]
        await rt.wait_for(lambda: pool.busy == 1)
        assert pool.queued == 5
        os.kill(pid, signal.SIGKILL)
        assert (await asyncio.wait_for(endless, 5)).status is RunStatus.CRASHED
        results = await asyncio.wait_for(asyncio.gather(*queued), 10)
        assert [rt.texts(r) for r in results] == [[f"queued {i}"] for i in range(5)]


async def test_hung_worker_is_killed_after_the_deadline_and_grace(rt) -> None:
    """A worker that stops answering (SIGSTOP here; a native call that never polls
    for interrupts in real life) is killed by the pool's backstop."""
    async with rt.pool(1, kill_grace=0.5) as pool:
        [pid] = pool.worker_pids()
        started = time.monotonic()
        late = pool.submit(rt.request("setTimeout(function () {}, 10000)", timeout_ms=500))
        bystander = pool.submit(rt.request("setTimeout(function () {}, 10000)", timeout_ms=20_000))
        await rt.wait_for(lambda: pool.busy == 2)
        os.kill(pid, signal.SIGSTOP)
        result = await asyncio.wait_for(late, 5)
        took = time.monotonic() - started
        assert result.status is RunStatus.TIMEOUT
        assert result.error.startswith("timed out after 0.5 s wall-clock")
        assert took < 2.5  # deadline 0.5 s + grace 0.5 s + watchdog tick, on a busy machine
        other = await asyncio.wait_for(bystander, 5)
        assert other.status is RunStatus.CRASHED
        assert "stopped responding" in other.error
        await rt.wait_for(lambda: len(pool.worker_pids()) == 1 and pool.worker_pids() != [pid])
        assert rt.texts(await rt.run(pool, "console.log('fresh worker')")) == ["fresh worker"]


async def test_workers_ignore_sigint(rt) -> None:
    async with rt.pool(1) as pool:
        [pid] = pool.worker_pids()
        os.kill(pid, signal.SIGINT)
        await asyncio.sleep(0.2)
        assert pool.worker_pids() == [pid]
        assert rt.texts(await rt.run(pool, "console.log('alive')")) == ["alive"]
