"""Engines in one process on a private Redis and PostgreSQL: reconciliation and take-over.

The script runner is a stub that finishes every run at once, so these tests look at
the cluster logic only (the fault test runs real node processes).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import AsyncIterator

import pytest

from clusterkit import PG_URL, RedisServer, redis_server, requires_pg  # noqa: F401 - fixture
from traitor.cluster.redis import RedisCoordinator
from traitor.domain.job import ExecType, Job, JobState, Run, RunStatus, new_id
from traitor.domain.timeutil import now_ms
from traitor.runtime.abc import ConsoleLine, RunRequest, RunResult, ScriptRunner
from traitor.scheduler.engine import Engine, EngineConfig
from traitor.store import open_store
from traitor.store.abc import RunQuery

pytestmark = requires_pg

FAST = dict(heartbeat_interval=0.2, ttl=1.0, reconcile_interval=0.5)


from traitor.runtime.instant import InstantRunner  # noqa: E402


async def eventually(check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.fixture
async def add_node(redis_server: RedisServer) -> AsyncIterator:  # noqa: F811
    """``await add_node(node_id)``: a started engine of this test's cluster (``add_node.name``)."""
    name = f"eng_{uuid.uuid4().hex[:10]}"
    engines: list[Engine] = []

    async def add(node_id: str, runner: ScriptRunner | None = None) -> Engine:
        coordinator = RedisCoordinator(redis_server.url, cluster=name, node_id=node_id, **FAST)
        engine = Engine(open_store(PG_URL, namespace=name), runner or InstantRunner(), coordinator,
                        EngineConfig(node_id=node_id, timezone="UTC"))
        engines.append(engine)
        await engine.start()
        return engine

    add.name = name  # type: ignore[attr-defined]
    try:
        yield add
    finally:
        for engine in engines:
            await engine.close(1.0)
        import asyncpg

        conn = await asyncpg.connect(PG_URL)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "traitor_{name}" CASCADE')
        finally:
            await conn.close()


@pytest.fixture
async def cluster(add_node) -> tuple[str, list[Engine]]:
    """Two engines, "a" and "b", that see each other."""
    a, b = await add_node("a"), await add_node("b")
    await eventually(lambda: a.coordinator.members() == ["a", "b"] == b.coordinator.members(), 3.0)
    return add_node.name, [a, b]


def every_second(name: str = "tick") -> Job:
    return Job(job_id=new_id(), exec_type=ExecType.TIMING, name=name, cron="* * * * * *", script="1",
               state=JobState.RUNNABLE, timezone="UTC")


async def test_reconciliation_applies_changes_whose_message_was_lost(cluster) -> None:
    _, (a, b) = cluster
    job = every_second()
    await a.store.add_job(job)  # written, never announced: as if the message were lost
    await eventually(lambda: a.wheel.when(job.job_id) is not None and b.wheel.when(job.job_id) is not None, 3.0)
    stopped = job.replace(state=JobState.STOPPED, version=job.version + 1)
    await b.store.update_job(stopped)
    await eventually(lambda: a.wheel.when(job.job_id) is None and b.wheel.when(job.job_id) is None, 3.0)
    assert await a.reconcile({}) == 0  # nothing armed, nothing stored enabled: nothing to do


async def test_a_published_change_is_armed_on_the_other_node_at_once(cluster) -> None:
    _, (a, b) = cluster
    job = every_second()
    await a.store.add_job(job)
    a.arm(job)
    await a.coordinator.publish(job.job_id, job.version)
    started = time.monotonic()
    await eventually(lambda: b.wheel.when(job.job_id) is not None, 2.0)
    assert time.monotonic() - started < 0.4  # well before the 0.5 s reconciliation


async def test_the_survivor_takes_over_every_fire_of_a_dead_node(cluster) -> None:
    _, (a, b) = cluster
    jobs, armed = await arm_everywhere([a, b], 12)
    assert {a.coordinator.owner(j.job_id) for j in jobs} == {"a", "b"}
    await asyncio.sleep(1.5)
    killed = now_ms()
    # b dies: it stops firing and heartbeating without leaving the member set.
    b.driver.stop()
    await b.coordinator.close(leave=False)
    await asyncio.sleep(4.0)
    first, last = max(armed, (killed // 1000 - 1) * 1000), (now_ms() // 1000 - 1) * 1000
    runs, slots, expected = await fires_in(a.store, jobs, first, last)
    assert len(runs) == len(slots)  # none twice
    assert expected <= slots, f"missing: {sorted(expected - slots)[:10]}"
    late = max(r.started_at - r.scheduled_at for r in runs if r.started_at)
    # ttl 1 s + interval 0.2 s after b's last heartbeat, plus dispatch
    assert late <= 2000, late
    assert a.coordinator.members() == ["a"]


class BreakableStore:
    """Delegates to a real store; while ``broken`` every call fails like a lost connection."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.broken = False

    def __getattr__(self, name: str):
        attr = getattr(self._inner, name)
        if self.broken and callable(attr) and name != "close":
            async def unreachable(*args, **kwargs):
                raise ConnectionError("the store is unreachable (test)")

            return unreachable
        return attr


async def fires_in(store, jobs: list[Job], first: int, last: int) -> tuple[list, set, set]:
    """Runs of ``jobs`` scheduled in [first, last], their slots, and the slots expected."""
    runs = []
    for job in jobs:
        page, _ = await store.list_runs(RunQuery(job_id=job.job_id, since=first, until=last + 1, limit=1000))
        runs += page
    slots = {(r.job_id, r.scheduled_at) for r in runs}
    expected = {(j.job_id, t) for j in jobs for t in range(first, last + 1, 1000)}
    return runs, slots, expected


async def arm_everywhere(engines: list[Engine], count: int) -> tuple[list[Job], int]:
    """Create ``count`` every-second jobs on the first engine; return them and the first
    instant every engine has them armed for."""
    a = engines[0]
    jobs = [every_second(f"j{i}") for i in range(count)]
    for job in jobs:
        await a.store.add_job(job)
        a.arm(job)
        await a.coordinator.publish(job.job_id, job.version)
    await eventually(lambda: all(e.wheel.when(j.job_id) is not None for e in engines for j in jobs), 2.0)
    return jobs, (now_ms() // 1000 + 1) * 1000


async def test_a_node_that_loses_the_store_leaves_and_the_others_run_its_share(cluster) -> None:
    _, (a, b) = cluster
    jobs, armed = await arm_everywhere([a, b], 12)
    b.store = BreakableStore(b.store)  # the engine and its coordinator now go through it
    await asyncio.sleep(1.2)
    broken = now_ms()
    b.store.broken = True
    await eventually(lambda: a.coordinator.members() == ["a"], 3.0)  # b left on its own
    assert not b.coordinator.healthy
    await asyncio.sleep(2.0)
    b.store.broken = False
    await eventually(lambda: a.coordinator.members() == ["a", "b"] and b.coordinator.healthy, 4.0)
    await asyncio.sleep(1.2)
    first, last = max(armed, (broken // 1000 - 1) * 1000), (now_ms() // 1000 - 1) * 1000
    runs, slots, expected = await fires_in(a.store, jobs, first, last)
    assert len(runs) == len(slots)
    assert expected <= slots, f"missing: {sorted(expected - slots)[:10]}"


async def test_fires_during_a_redis_outage_longer_than_health_run_when_it_is_back(
    cluster, redis_server: RedisServer  # noqa: F811
) -> None:
    _, (a, b) = cluster
    jobs, armed = await arm_everywhere([a, b], 12)
    await asyncio.sleep(1.2)
    down = now_ms()
    await asyncio.to_thread(redis_server.stop)
    await eventually(lambda: not a.coordinator.healthy and not b.coordinator.healthy, 2.0)
    await asyncio.sleep(2.0)  # nobody may run anything now: nobody knows who is alive
    await asyncio.to_thread(redis_server.start)
    await eventually(lambda: a.coordinator.healthy and b.coordinator.healthy, 3.0)
    await eventually(lambda: a.coordinator.members() == ["a", "b"] == b.coordinator.members(), 3.0)
    await asyncio.sleep(1.2)
    first, last = max(armed, (down // 1000 - 1) * 1000), (now_ms() // 1000 - 1) * 1000
    runs, slots, expected = await fires_in(a.store, jobs, first, last)
    assert len(runs) == len(slots)
    assert expected <= slots, f"missing: {sorted(expected - slots)[:10]}"
    # A second boundary fell in the first of the 2 s nobody was healthy: run late, not lost.
    assert max(r.started_at - r.scheduled_at for r in runs if r.started_at) >= 900


async def test_fires_during_a_store_outage_for_everybody_run_when_it_is_back(cluster) -> None:
    _, (a, b) = cluster
    jobs, armed = await arm_everywhere([a, b], 12)
    a.store, b.store = BreakableStore(a.store), BreakableStore(b.store)
    await asyncio.sleep(1.2)
    down = now_ms()
    a.store.broken = b.store.broken = True  # claims fail until both nodes leave the cluster
    await eventually(lambda: not a.coordinator.healthy and not b.coordinator.healthy, 3.0)
    await asyncio.sleep(1.5)
    a.store.broken = b.store.broken = False
    await eventually(lambda: a.coordinator.members() == ["a", "b"] == b.coordinator.members()
                     and a.coordinator.healthy and b.coordinator.healthy, 5.0)
    await asyncio.sleep(1.5)
    first, last = max(armed, (down // 1000 - 1) * 1000), (now_ms() // 1000 - 1) * 1000
    runs, slots, expected = await fires_in(a.store, jobs, first, last)
    assert len(runs) == len(slots)
    assert expected <= slots, f"missing: {sorted(expected - slots)[:10]}"


async def test_runs_left_running_are_marked_crashed(
    cluster, add_node, redis_server: RedisServer  # noqa: F811
) -> None:
    name, (a, b) = cluster
    stale = [Run(new_id(), f"job-{node}", now_ms() - 60_000, node=node, started_at=now_ms() - 59_000)
             for node in ("ghost", "c")]
    assert len(await a.store.claim_runs(stale)) == 2
    # A node that dies while its run is going: one survivor marks it once the node is gone
    # for crash_grace (2 x ttl).
    ghost = RedisCoordinator(redis_server.url, cluster=name, node_id="ghost", **FAST)
    await ghost.start(lambda job_id, version: None)
    await eventually(lambda: "ghost" in a.coordinator.members() and "ghost" in b.coordinator.members(), 2.0)
    await ghost.close(leave=False)
    await eventually(lambda: "ghost" not in a.coordinator.members(), 3.0)
    await eventually(lambda: a.coordinator.stats["crash_marked"] + b.coordinator.stats["crash_marked"] == 1, 4.0)
    run = await a.store.get_run(stale[0].run_id)
    assert run is not None and run.status is RunStatus.CRASHED and "ghost" in (run.error or "")
    # A node that restarts with the same id marks what its earlier life left running.
    c = await add_node("c")
    run = await a.store.get_run(stale[1].run_id)
    assert run is not None and run.status is RunStatus.CRASHED and "restarted" in (run.error or "")
    assert c.coordinator.stats["crash_marked"] == 1


class TalkingRunner(InstantRunner):
    """Prints two console lines per run (naming the node), then succeeds."""

    def __init__(self, node_id: str) -> None:
        super().__init__()
        self.node_id = node_id

    def submit(self, request: RunRequest, listener=None) -> asyncio.Future[RunResult]:
        if listener is not None:
            listener(ConsoleLine(now_ms(), "info", f"hello from {self.node_id}"))
            listener(ConsoleLine(now_ms(), "warn", f"bye from {self.node_id}"))
        return super().submit(request, listener)


class FollowLog:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []  # (kind, run id, detail)

    def on_run(self, run: Run) -> None:
        self.events.append(("run", run.run_id, run.status.value))

    def on_line(self, run: Run, line: ConsoleLine) -> None:
        self.events.append(("line", run.run_id, f"{line.level} {line.text}"))

    def on_done(self, run: Run) -> None:
        self.events.append(("done", run.run_id, run.status.value))

    def follow(self, engine: Engine, job_id: str):
        """Follow ``job_id`` through ``engine``; returns the function that stops it."""
        return engine.follow_job(job_id, self.on_run, self.on_line, self.on_done)

    def runs(self) -> dict[str, list[tuple[str, str]]]:
        by_run: dict[str, list[tuple[str, str]]] = {}
        for kind, run_id, detail in self.events:
            by_run.setdefault(run_id, []).append((kind, detail))
        return by_run

    def finished(self) -> int:
        return sum(1 for events in self.runs().values() if events[-1][0] == "done")


@pytest.fixture
async def talking(add_node) -> tuple[Engine, Engine]:
    """Nodes "a" and "b", whose runs print two lines naming their node, seeing each other."""
    a, b = await add_node("a", TalkingRunner("a")), await add_node("b", TalkingRunner("b"))
    await eventually(lambda: a.coordinator.members() == ["a", "b"] == b.coordinator.members(), 3.0)
    return a, b


def every_second_owned_by(engine: Engine, node: str) -> Job:
    job = every_second()
    while engine.coordinator.owner(job.job_id) != node:
        job = every_second()
    return job


async def test_a_client_on_one_node_follows_runs_on_the_other(talking) -> None:
    a, b = talking
    job = every_second_owned_by(a, "b")
    followed = FollowLog()
    stop = followed.follow(a, job.job_id)
    await eventually(lambda: b.coordinator.followed_elsewhere(job.job_id), 2.0)  # by the notice
    await a.store.add_job(job)
    a.arm(job), b.arm(job)
    await eventually(lambda: followed.finished() >= 2, 5.0)
    for events in list(followed.runs().values())[:2]:
        assert events == [("run", "running"), ("line", "info hello from b"), ("line", "warn bye from b"),
                          ("done", "success")]
    stop()
    await eventually(lambda: not b.coordinator.followed_elsewhere(job.job_id), 2.0)
    seen = len(followed.events)
    await asyncio.sleep(1.5)
    assert len(followed.events) == seen, "events kept coming after the client stopped following"


async def test_a_run_on_the_followers_own_node_is_streamed_once(talking) -> None:
    a, b = talking
    job = every_second_owned_by(a, "a")
    on_a, on_b = FollowLog(), FollowLog()
    stops = [on_a.follow(a, job.job_id), on_b.follow(b, job.job_id)]
    await eventually(lambda: a.coordinator.followed_elsewhere(job.job_id), 2.0)
    await a.store.add_job(job)
    a.arm(job), b.arm(job)
    await eventually(lambda: on_b.finished() >= 2, 5.0)
    await asyncio.sleep(0.3)
    expected = [("run", "running"), ("line", "info hello from a"), ("line", "warn bye from a"), ("done", "success")]
    for log in (on_a, on_b):
        finished = [events for events in log.runs().values() if events[-1][0] == "done"]
        assert len(finished) >= 2 and all(events == expected for events in finished)
    for stop in stops:
        stop()
