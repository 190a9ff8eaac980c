"""RedisCoordinator against a private redis-server: membership, health, changes, namespaces."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, Callable

import pytest

from clusterkit import RedisServer, free_port, redis_server  # noqa: F401 - fixture
from traitor.cluster.redis import RedisCoordinator

FAST = dict(heartbeat_interval=0.2, ttl=1.0)


async def eventually(check: Callable[[], bool], timeout: float, step: float = 0.02) -> float:
    """Wait until ``check()``; return the seconds it took (fail after ``timeout``)."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not true after {timeout}s")
        await asyncio.sleep(step)
    return time.monotonic() - started


class Node:
    """A coordinator plus what its callbacks received."""

    def __init__(self, url: str, cluster: str, node_id: str, **options: Any) -> None:
        self.coordinator = RedisCoordinator(url, cluster=cluster, node_id=node_id, **options)
        self.changes: list[tuple[str, int]] = []
        self.membership_events = 0
        self.coordinator.add_membership_listener(self._on_members)

    def _on_members(self) -> None:
        self.membership_events += 1

    async def _on_change(self, job_id: str, version: int) -> None:
        self.changes.append((job_id, version))

    async def start(self) -> "Node":
        await self.coordinator.start(self._on_change)
        return self

    async def close(self, leave: bool = True) -> None:
        await self.coordinator.close(leave=leave)


@pytest.fixture
async def nodes(redis_server: RedisServer):  # noqa: F811
    made: list[Node] = []

    async def make(node_id: str, cluster: str = "c1", **options: Any) -> Node:
        node = await Node(redis_server.url, cluster, node_id, **options).start()
        made.append(node)
        return node

    yield make
    for node in made:
        await node.close()


async def test_two_nodes_see_each_other_within_2s_with_default_settings(nodes) -> None:
    a = await nodes("a")
    assert a.coordinator.members() == ["a"] and a.coordinator.healthy
    b = await nodes("b")
    assert b.coordinator.members() == ["a", "b"]  # b read the set when it joined
    took = await eventually(lambda: a.coordinator.members() == ["a", "b"], 2.0)
    assert took <= 1.5  # one heartbeat interval (1 s) at most
    assert a.membership_events >= 2  # joined itself, then saw b
    # The same view gives the same owner everywhere, and every job has exactly one owner.
    jobs = [str(uuid.uuid4()) for _ in range(500)]
    assert all(a.coordinator.owns(j) != b.coordinator.owns(j) for j in jobs)
    assert {a.coordinator.owner(j) for j in jobs} == {"a", "b"}


async def test_a_crashed_node_disappears_after_ttl_and_a_leaving_one_at_once(nodes) -> None:
    a = await nodes("a", **FAST)
    b = await nodes("b", **FAST)
    c = await nodes("c", **FAST)
    await eventually(lambda: a.coordinator.members() == ["a", "b", "c"], 2.0)
    events = a.membership_events
    stopped = time.monotonic()
    await b.close(leave=False)  # as if killed: its entry stays until it expires
    await eventually(lambda: a.coordinator.members() == ["a", "c"], 3.0)
    gone_after = time.monotonic() - stopped
    await eventually(lambda: c.coordinator.members() == ["a", "c"], 1.0)
    assert 0.6 <= gone_after <= 1.0 + 0.2 + 0.5, gone_after  # ttl (+ one interval + slack), not sooner
    assert a.membership_events > events
    assert all(a.coordinator.owns(j) or c.coordinator.owns(j) for j in (str(uuid.uuid4()) for _ in range(200)))
    await c.close()  # graceful: leaves the set at once
    took = await eventually(lambda: a.coordinator.members() == ["a"], 1.0)
    assert took <= 0.5


async def test_changes_reach_the_other_nodes_not_the_sender(nodes) -> None:
    a = await nodes("a", **FAST)
    b = await nodes("b", **FAST)
    c = await nodes("c", **FAST)
    await eventually(lambda: all(n.coordinator.subscribed for n in (a, b, c)), 1.0)
    await a.coordinator.publish("job-1", 3)
    await a.coordinator.publish("job-2", 1)
    await eventually(lambda: len(b.changes) == 2 and len(c.changes) == 2, 2.0)
    assert b.changes == [("job-1", 3), ("job-2", 1)] == c.changes
    await asyncio.sleep(0.2)
    assert a.changes == []


async def test_clusters_sharing_one_redis_never_see_each_other(nodes) -> None:
    x1 = await nodes("n1", cluster="x", **FAST)
    y1 = await nodes("n1", cluster="y", **FAST)  # the same node id in another cluster
    y2 = await nodes("n2", cluster="y", **FAST)
    await eventually(lambda: all(n.coordinator.subscribed for n in (x1, y1, y2)), 1.0)
    await eventually(lambda: y1.coordinator.members() == ["n1", "n2"], 2.0)
    await asyncio.sleep(0.5)
    assert x1.coordinator.members() == ["n1"]
    await y2.coordinator.publish("job", 1)
    await x1.coordinator.publish("job", 2)
    await eventually(lambda: y1.changes == [("job", 1)], 2.0)
    await asyncio.sleep(0.3)
    assert x1.changes == [] and y1.changes == [("job", 1)] and y2.changes == []
    assert all(x1.coordinator.owns(str(i)) for i in range(100))  # alone in its cluster


async def test_health_follows_redis_down_and_back(redis_server: RedisServer, nodes) -> None:  # noqa: F811
    a = await nodes("a", **FAST)
    b = await nodes("b", **FAST)
    await eventually(lambda: a.coordinator.members() == ["a", "b"], 2.0)
    assert a.coordinator.healthy and b.coordinator.healthy
    await asyncio.to_thread(redis_server.stop)
    stopped = time.monotonic()
    # Healthy only while the others cannot consider it dead yet: ttl minus a margin.
    await eventually(lambda: not a.coordinator.healthy and not b.coordinator.healthy, 2.0)
    assert time.monotonic() - stopped <= a.coordinator.ttl
    assert not any(a.coordinator.owns(j) and a.coordinator.healthy for j in ("x", "y"))
    await asyncio.sleep(1.0)  # a while down: the nodes keep retrying, nothing crashes
    await asyncio.to_thread(redis_server.start)  # same port, empty data
    back = await eventually(lambda: a.coordinator.healthy and b.coordinator.healthy, 3.0)
    assert back <= 1.5
    await eventually(lambda: a.coordinator.members() == ["a", "b"] == b.coordinator.members(), 2.0)
    await a.coordinator.ping()
    # Change delivery resumes on fresh subscriptions (promptly: the heartbeat that gets
    # through wakes the subscriber up).
    await eventually(lambda: a.coordinator.subscribed and b.coordinator.subscribed, 1.0)
    await a.coordinator.publish("after-restart", 7)
    await eventually(lambda: ("after-restart", 7) in b.changes, 3.0)


async def test_a_node_started_while_redis_is_down_joins_when_it_comes_up(tmp_path) -> None:
    server = RedisServer(tmp_path / "late", port=free_port())
    node = await Node(server.url, "c1", "late", **FAST).start()  # does not raise
    try:
        assert not node.coordinator.healthy and not node.coordinator.owns("job")
        with pytest.raises(Exception):
            await node.coordinator.ping()
        await node.coordinator.publish("job", 1)  # best effort: no exception
        await asyncio.to_thread(server.start)
        await eventually(lambda: node.coordinator.healthy, 3.0)
        assert node.coordinator.members() == ["late"] and node.coordinator.owns("job")
    finally:
        await node.close()
        server.stop()


async def test_membership_listeners_may_be_async_and_failures_are_contained(nodes) -> None:
    calls: list[str] = []

    async def slow_listener() -> None:
        await asyncio.sleep(0)
        calls.append("async")

    def broken() -> None:
        raise RuntimeError("boom")

    node = Node((await nodes("probe", **FAST)).coordinator.url, "c1", "a", **FAST)
    node.coordinator.add_membership_listener(broken)
    node.coordinator.add_membership_listener(slow_listener)
    await node.start()
    try:
        assert calls == ["async"] and node.coordinator.healthy
    finally:
        await node.close()


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        RedisCoordinator("redis://x", cluster="c", node_id="", ttl=5)
    with pytest.raises(ValueError):
        RedisCoordinator("redis://x", cluster="c", node_id="n", heartbeat_interval=2, ttl=1)
    coordinator = RedisCoordinator("redis://x", cluster="c", node_id="n")
    assert coordinator.healthy_for == 4.0  # ttl 5 s minus a one-interval margin
    assert coordinator.members_key == "traitor:{c}:nodes" and coordinator.channel == "traitor:{c}:changes"


async def test_a_new_follow_reaches_the_other_nodes_at_once_not_at_the_next_heartbeat(nodes) -> None:
    slow = dict(heartbeat_interval=5.0, ttl=20.0)  # a heartbeat's read of the hash could not explain it
    a, b = await nodes("a", **slow), await nodes("b", **slow)
    await eventually(lambda: a.coordinator.subscribed and b.coordinator.subscribed, 2.0)
    job_id = str(uuid.uuid4())
    received: list[tuple[str, Any]] = []
    stop = a.coordinator.follow(job_id, lambda kind, data: received.append((kind, data)))
    took = await eventually(lambda: b.coordinator.followed_elsewhere(job_id), 4.0)
    assert took < 1.0, f"b saw the follow after {took:.2f}s: a heartbeat, not the notice"
    assert not a.coordinator.followed_elsewhere(job_id)  # a's own follow is not "elsewhere" for a
    b.coordinator.relay(job_id, "line", {"text": "hello"})
    await eventually(lambda: received == [("line", {"text": "hello"})], 2.0)
    stop()
