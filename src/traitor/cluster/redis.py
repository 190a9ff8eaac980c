"""The leaderless cluster on Redis: membership, a consistent-hash ring, change notification.

Keys (``C`` is the cluster name; the braces are a Redis Cluster *hash tag*, so every
key of one cluster lives in one slot and the heartbeat script may touch them all)::

    traitor:{C}:nodes          ZSET  member = node id, score = expiry (ms, Redis clock)
    traitor:{C}:node:<node id> STRING node info (JSON), SET PX ttl: "this node is alive"
    traitor:{C}:changes        pub/sub channel of job changes

Membership. Every ``heartbeat_interval`` each node runs one Lua script (one round
trip) that reads Redis ``TIME``, refreshes its node key, sets its score to
``now + ttl``, prunes expired members and returns the live ones. Expiry uses the
Redis clock only, so skew between the nodes' clocks does not matter. Every node
builds the same :class:`~traitor.cluster.ring.HashRing` from the same list, so all
of them agree on the owner of each job without talking to each other.

Health. A node is ``healthy`` while its last successful heartbeat was sent less
than ``ttl - margin`` ago (default margin: ``max(heartbeat_interval, ttl / 5)``).
Others consider it dead only when ``ttl`` has passed since that heartbeat reached
Redis, so a node stops running jobs *before* anybody else starts running them. A
node that cannot reach Redis keeps retrying with backoff (it never exits) and
becomes healthy again after its next successful heartbeat, which is also a fresh
read of the member list.

Take-over. Whenever the member list changes or health comes back, the membership
listeners run; the engine registers ``Engine.take_over``, which queues the fires it
remembered as "not mine" and now owns. The store's claim (one row per job, instant
and attempt) decides, so a fire is never run twice even if several nodes queue it.

Join after arming. When attached to an engine, a node sends its first heartbeat
only once the engine has armed its jobs, so no job is handed to a node that does
not have it on its wheel yet.

Changes. ``publish`` sends ``{"n": node, "j": job_id, "v": version}`` on the
channel; the subscriber calls ``on_change`` for messages of other nodes. Pub/sub
drops messages while a connection is down, so every ``reconcile_interval`` (and
at once after a reconnect or when health comes back) the node compares the
versions of enabled jobs in the store with the ones it armed
(``Engine.reconcile``) and refreshes the differences.

Store. A node that cannot reach the store could not claim the fires it owns, so
after two failed checks in a row (one per interval) it stops being healthy and
leaves the member set; the others take its share over. It rejoins when the store
answers again.

Crashed runs. When a member has been gone for ``crash_grace`` seconds (default
``2 x ttl``: long enough to ride out a Redis restart, after which every node
re-registers within one interval), the live member that owns the dead member's
id on the ring marks the runs the dead node left ``running`` as ``crashed``. A
node starting up does the same for runs its previous incarnation left behind.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import socket
import time
from typing import Any, Awaitable, Callable

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from traitor.cluster.abc import ChangeCallback, Coordinator, FollowListener
from traitor.cluster.relay import FollowRelay
from traitor.cluster.ring import DEFAULT_VNODES, HashRing
from traitor.domain.job import RunStatus
from traitor.domain.timeutil import now_ms
from traitor.domain.urls import safe_url

log = logging.getLogger("traitor.cluster")

Listener = Callable[[], Awaitable[Any] | Any]

#: One round trip per heartbeat: refresh this node, prune the dead, read the living.
#: KEYS: members zset, this node's key. ARGV: node id, ttl ms, node info, zset ttl ms.
HEARTBEAT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[2], ARGV[3], 'PX', ttl)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {now, redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')}
"""

#: Leave at once (a graceful shutdown): the others take over without waiting for the ttl.
LEAVE_LUA = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return 1
"""


def keys_for(cluster: str, prefix: str = "traitor") -> tuple[str, str, str]:
    """``(members zset, node key prefix, changes channel)`` of ``cluster``."""
    base = f"{prefix}:{{{cluster}}}"
    return f"{base}:nodes", f"{base}:node:", f"{base}:changes"


def follow_keys_for(cluster: str, prefix: str = "traitor") -> tuple[str, str]:
    """``(followed hash, follow events channel)`` of ``cluster`` (see ``relay.py``)."""
    base = f"{prefix}:{{{cluster}}}"
    return f"{base}:followed", f"{base}:follow"


class RedisCoordinator(Coordinator):
    """A cluster node's view of the cluster, kept in Redis. See the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        cluster: str = "default",
        node_id: str,
        heartbeat_interval: float = 1.0,
        ttl: float = 5.0,
        vnodes: int = DEFAULT_VNODES,
        reconcile_interval: float = 5.0,
        health_margin: float | None = None,
        crash_grace: float | None = None,
        op_timeout: float | None = None,
        prefix: str = "traitor",
    ) -> None:
        if not node_id:
            raise ValueError("a cluster node needs a node id")
        if heartbeat_interval <= 0 or ttl <= heartbeat_interval:
            raise ValueError("ttl must be longer than the heartbeat interval (several intervals: no flapping)")
        self.url = url
        self.cluster = cluster
        self.node_id = node_id
        self.heartbeat_interval = heartbeat_interval
        self.ttl = ttl
        self.vnodes = vnodes
        self.reconcile_interval = reconcile_interval
        margin = max(heartbeat_interval, ttl / 5) if health_margin is None else health_margin
        #: Seconds after the last successful heartbeat (sent) during which this node runs jobs.
        self.healthy_for = max(ttl - margin, heartbeat_interval / 2)
        self.crash_grace = 2 * ttl if crash_grace is None else crash_grace
        #: Bound on one Redis command, so a hung Redis cannot stall the heartbeat.
        self.op_timeout = op_timeout if op_timeout is not None else max(0.2, min(2 * heartbeat_interval, ttl / 3))
        self.members_key, self._node_prefix, self.channel = keys_for(cluster, prefix)
        self.node_key = self._node_prefix + node_id
        self.follows = FollowRelay(node_id, *follow_keys_for(cluster, prefix), op_timeout=self.op_timeout)

        self._redis: aioredis.Redis | None = None
        self._sub_redis: aioredis.Redis | None = None
        self._heartbeat_script: Any = None
        self._on_change: ChangeCallback | None = None
        self._listeners: list[Listener] = []
        self._engine: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._started_ms = now_ms()
        self._info = json.dumps({"node": node_id, "host": socket.gethostname(), "pid": os.getpid(),
                                 "started": self._started_ms})

        self._ring = HashRing((), vnodes)
        self._members: list[str] = []
        self._last_ok = float("-inf")  # monotonic instant the last successful heartbeat was sent
        self._reconcile_now = asyncio.Event()
        self._redis_back = asyncio.Event()  # set when a heartbeat succeeds after failures
        #: True while the change channel is subscribed.
        self.subscribed = False
        self._gone: dict[str, float] = {}  # departed member -> monotonic instant it was first missed
        self._failures = 0
        self._store_ok = True  # False while the attached engine's store does not answer
        #: Counters for tests, /metrics and the benchmark.
        self.stats = {"heartbeats": 0, "heartbeat_failures": 0, "ring_changes": 0, "messages_in": 0,
                      "messages_out": 0, "reconciled": 0, "crash_marked": 0}

    # ------------------------------------------------------------------ wiring
    def add_membership_listener(self, callback: Listener) -> None:
        """Call ``callback()`` (sync or async) after the member list changed or this
        node became healthy again: the moment to take over fires of departed nodes."""
        self._listeners.append(callback)

    def attach(self, engine: Any) -> None:
        """Bind to the engine (called by ``Engine.start`` before :meth:`start`):
        membership changes trigger ``engine.take_over``, the reconciliation loop
        drives ``engine.reconcile`` from ``engine.store``, and the first heartbeat
        waits until the engine has armed its jobs."""
        self._engine = engine
        self.add_membership_listener(engine.take_over)

    # ------------------------------------------------------------------ lifecycle
    def _client(self, **options: Any) -> aioredis.Redis:
        return aioredis.Redis.from_url(
            self.url,
            socket_connect_timeout=self.op_timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
            client_name=_client_name(f"traitor:{self.cluster}:{self.node_id}"),
            **options,
        )

    async def start(self, on_change: ChangeCallback) -> None:
        self._on_change = on_change
        self._closing = False
        # A bad URL raises here (ValueError), which the CLI reports as a start-up failure.
        self._redis = self._client(socket_timeout=self.op_timeout, max_connections=8)
        self._sub_redis = self._client(socket_timeout=None, socket_keepalive=True)
        self._heartbeat_script = self._redis.register_script(HEARTBEAT_LUA)
        self.follows.bind(self._redis)
        loop = asyncio.get_running_loop()
        if self._engine is None:
            # Not attached to an engine (tests, tools): join now if Redis answers.
            await self._heartbeat_once()
        else:
            # Before this life claims anything (the engine arms its jobs after this).
            await self._mark_own_crashed()
        self._tasks = [
            loop.create_task(self._heartbeat_loop(), name="traitor-heartbeat"),
            loop.create_task(self._subscribe_loop(), name="traitor-subscribe"),
            loop.create_task(self.follows.announce_loop(), name="traitor-follow-announce"),
            loop.create_task(self.follows.publish_loop(), name="traitor-follow-relay"),
        ]
        if self._engine is not None:
            self._tasks.append(loop.create_task(self._reconcile_loop(), name="traitor-reconcile"))
            self._tasks.append(loop.create_task(self._store_watch_loop(), name="traitor-store-watch"))
        log.info("cluster %r: node %s connecting to %s", self.cluster, self.node_id, safe_url(self.url))

    async def close(self, leave: bool = True) -> None:
        """Stop heartbeating and listening. With ``leave`` (the default) also leave the
        member set at once, so the others take over without waiting for the ttl;
        ``leave=False`` behaves like a crash (tests use it)."""
        if self._closing:
            return
        self._closing = True
        for task in self._tasks:
            task.cancel()
        # The loops also stop on ``_closing`` (Python 3.11's wait_for can swallow a cancel).
        _, pending = await asyncio.wait(self._tasks, timeout=max(2.0, 2 * self.op_timeout)) if self._tasks else ((), ())
        for task in pending:
            log.warning("cluster task %s did not stop", task.get_name())
        self._tasks = []
        if leave:
            await self._leave()
            await self.follows.leave()
        self._members = []
        self._ring = HashRing((), self.vnodes)
        self._last_ok = float("-inf")
        for client in (self._redis, self._sub_redis):
            if client is not None:
                try:
                    await client.aclose()
                except Exception:
                    pass
        self._redis = self._sub_redis = None
        self.follows.bind(None)

    # ------------------------------------------------------------------ the interface
    def owns(self, job_id: str) -> bool:
        return self._ring.owner(job_id) == self.node_id

    def owner(self, job_id: str) -> str | None:
        """The member that runs ``job_id`` in this node's current view."""
        return self._ring.owner(job_id)

    @property
    def healthy(self) -> bool:
        return (
            (time.monotonic() - self._last_ok) < self.healthy_for and self._store_ok and self.node_id in self._ring
        )

    @property
    def ring(self) -> HashRing:
        return self._ring

    def members(self) -> list[str]:
        return list(self._members)

    async def ping(self) -> None:
        if self._redis is None:
            raise RuntimeError("the Redis coordinator is not started")
        await asyncio.wait_for(self._redis.ping(), self.op_timeout)

    async def publish(self, job_id: str, version: int) -> None:
        if self._redis is None or self._failures:
            # Redis is not answering: do not make the client wait; reconciliation covers it.
            return
        message = json.dumps({"n": self.node_id, "j": job_id, "v": version}, separators=(",", ":"))
        try:
            await asyncio.wait_for(self._redis.publish(self.channel, message), self.op_timeout)
            self.stats["messages_out"] += 1
        except Exception as exc:
            # Best effort: the other nodes' reconciliation picks the change up.
            log.warning("could not announce the change of job %s (%s); other nodes will reconcile", job_id, exc)

    def followed_elsewhere(self, job_id: str) -> bool:
        return self.follows.followed_elsewhere(job_id)

    def relay(self, job_id: str, kind: str, data: Any) -> None:
        self.follows.relay(job_id, kind, data)

    def follow(self, job_id: str, listener: FollowListener) -> Callable[[], None]:
        return self.follows.follow(job_id, listener)

    # ------------------------------------------------------------------ membership
    async def _heartbeat_once(self) -> bool:
        """One heartbeat; ``True`` on success. Never raises (except cancellation)."""
        assert self._redis is not None
        sent = time.monotonic()
        was_healthy = self.healthy
        try:
            _now, raw = await asyncio.wait_for(
                self._heartbeat_script(
                    keys=[self.members_key, self.node_key],
                    args=[self.node_id, int(self.ttl * 1000), self._info, int(max(60.0, 10 * self.ttl) * 1000)],
                ),
                self.op_timeout,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failures += 1
            self.stats["heartbeat_failures"] += 1
            if self._failures == 1 or self._failures % 30 == 0:
                state = "still healthy for now" if self.healthy else "not running any job"
                log.warning("cluster %r: heartbeat to Redis failed (%s: %s), %d in a row; %s",
                            self.cluster, exc.__class__.__name__, exc, self._failures, state)
            return False
        if self._failures:
            log.info("cluster %r: Redis reachable again after %d failed heartbeats", self.cluster, self._failures)
            self._failures = 0
            self._redis_back.set()
        self.stats["heartbeats"] += 1
        self._last_ok = sent
        members = sorted({m.decode() if isinstance(m, bytes) else str(m) for m in raw})
        changed = members != self._members
        if changed:
            old = set(self._members)
            self._members = members
            self._ring = HashRing(members, self.vnodes)
            self.stats["ring_changes"] += 1
            joined, left = sorted(set(members) - old), sorted(old - set(members))
            log.info("cluster %r: members %s (joined %s, left %s)", self.cluster, members, joined or "-",
                     left or "-")
            moment = time.monotonic()
            for member in left:
                if member != self.node_id:
                    self._gone.setdefault(member, moment)
        for member in list(self._gone):
            if member in self._ring:
                del self._gone[member]
        if not was_healthy:
            log.info("cluster %r: node %s is healthy (members %s)", self.cluster, self.node_id, members)
            self._reconcile_now.set()
        if changed or not was_healthy:
            await self._notify()
        return True

    async def _notify(self) -> None:
        for callback in list(self._listeners):
            try:
                result = callback()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("membership listener %r failed", callback)

    async def _heartbeat_loop(self) -> None:
        engine = self._engine
        if engine is not None:
            # Join only once the engine has armed its jobs (see "Join after arming").
            while not getattr(engine, "started", True) and not self._closing:
                await asyncio.sleep(0.02)
        backoff = min(0.1, self.heartbeat_interval)
        while not self._closing:
            started = time.monotonic()
            try:
                if not self._store_ok:
                    delay = self.heartbeat_interval  # out of the cluster until the store answers
                elif await self._heartbeat_once():
                    backoff = min(0.1, self.heartbeat_interval)
                    await self._after_heartbeat()
                    await self.follows.refresh()
                    delay = self.heartbeat_interval - (time.monotonic() - started)
                else:
                    # Retry quickly at first (a Redis restart takes a moment), never slower than the interval.
                    delay = backoff
                    backoff = min(backoff * 2, self.heartbeat_interval)
                    if self._redis is not None and self._failures % 5 == 0:
                        await self._reset_pool()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not end the heartbeat for good
                log.exception("cluster heartbeat loop error")
                delay = self.heartbeat_interval
            await asyncio.sleep(max(0.0, delay))

    async def _store_watch_loop(self) -> None:
        """Leave the cluster while this node cannot reach the store.

        A node that Redis sees alive owns its share of the jobs; if it cannot claim
        them in the store, they would be lost. So after two failed checks in a row it
        stops counting as healthy and leaves the member set: the others take its
        jobs (and the fires it remembered) over. It rejoins once the store answers.
        """
        failures = 0
        timeout = max(self.op_timeout, self.ttl / 2)
        while not self._closing:
            try:
                await asyncio.wait_for(self._engine.store.ping(), timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                if failures >= 2 and self._store_ok:
                    self._store_ok = False
                    log.warning("cluster %r: node %s cannot reach the store (%s: %s); it leaves the cluster "
                                "until the store answers", self.cluster, self.node_id, exc.__class__.__name__, exc)
                    await self._leave()
            else:
                failures = 0
                if not self._store_ok:
                    log.info("cluster %r: the store answers again; node %s rejoins", self.cluster, self.node_id)
                    self._store_ok = True
            await asyncio.sleep(self.heartbeat_interval)

    async def _leave(self) -> None:
        self._last_ok = float("-inf")
        if self._redis is None:
            return
        try:
            await asyncio.wait_for(
                self._redis.eval(LEAVE_LUA, 2, self.members_key, self.node_key, self.node_id), self.op_timeout
            )
        except Exception as exc:  # the others will see the ttl expire instead
            log.debug("leaving the member set failed: %s", exc)

    async def _reset_pool(self) -> None:
        """Drop pooled connections (a restarted Redis leaves them half-open)."""
        try:
            assert self._redis is not None
            await self._redis.connection_pool.disconnect(inuse_connections=True)
        except Exception:
            pass

    async def _after_heartbeat(self) -> None:
        """Mark runs of members gone for ``crash_grace`` as crashed (one live node does it)."""
        if not self._gone or self._engine is None:
            return
        now = time.monotonic()
        for member, since in list(self._gone.items()):
            if now - since < self.crash_grace:
                continue
            del self._gone[member]
            if self._ring.owner(member) != self.node_id:
                continue  # another live node is the one that cleans up after ``member``
            await self._mark_crashed(member, f"the node {member} running it left the cluster")

    async def _mark_own_crashed(self) -> None:
        """Runs this node id left ``running`` in an earlier life cannot be running now."""
        try:
            await asyncio.wait_for(
                self._mark_crashed(self.node_id, f"the node {self.node_id} restarted while it was running",
                                   before=self._started_ms),
                10.0,
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("marking the runs of an earlier life of this node as crashed failed")

    async def _mark_crashed(self, node: str, reason: str, before: int | None = None) -> int:
        try:
            count = await mark_crashed(self._engine.store, node, reason, before=before)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("marking the runs of node %s as crashed failed", node)
            return 0
        if count:
            self.stats["crash_marked"] += count
            log.warning("cluster %r: %d run(s) of node %s marked crashed (%s)", self.cluster, count, node, reason)
        return count

    # ------------------------------------------------------------------ changes
    async def _subscribe_loop(self) -> None:
        backoff = 0.1
        first = True
        follow_channel = (self.follows.channel, self.follows.channel.encode())
        while not self._closing:
            pubsub = None
            try:
                assert self._sub_redis is not None
                pubsub = self._sub_redis.pubsub(ignore_subscribe_messages=True)
                await asyncio.wait_for(pubsub.subscribe(self.channel, self.follows.channel), self.op_timeout)
                if not first:
                    log.info("cluster %r: change channel subscribed again; reconciling", self.cluster)
                    self._reconcile_now.set()  # messages sent while we were away are lost
                first = False
                backoff = 0.1
                self.subscribed = True
                while not self._closing:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    if message.get("channel") in follow_channel:
                        self.follows.deliver(message.get("data"))
                    else:
                        await self._deliver(message.get("data"))
            except asyncio.CancelledError:
                self.subscribed = False
                if pubsub is not None:
                    await _close_quietly(pubsub)
                raise
            except Exception as exc:
                self.subscribed = False
                if pubsub is not None:
                    await _close_quietly(pubsub)
                log.debug("change subscription lost (%s); retrying in %.1fs", exc, backoff)
                first = False
                # Retry after the backoff, or as soon as a heartbeat gets through again.
                self._redis_back.clear()
                try:
                    await asyncio.wait_for(self._redis_back.wait(), backoff)
                except asyncio.TimeoutError:
                    pass
                backoff = min(backoff * 2, self.heartbeat_interval)

    async def _deliver(self, data: Any) -> None:
        try:
            message = json.loads(data)
            node, job_id, version = message["n"], message["j"], int(message["v"])
        except Exception:
            log.warning("ignored a malformed change message on %s: %r", self.channel, data)
            return
        if node == self.node_id or not isinstance(job_id, str):
            return
        self.stats["messages_in"] += 1
        if self._on_change is None:
            return
        try:
            result = self._on_change(job_id, version)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("applying the change of job %s failed; reconciliation will retry", job_id)

    async def _reconcile_loop(self) -> None:
        while not self._closing:
            try:
                await asyncio.wait_for(self._reconcile_now.wait(), self.reconcile_interval)
            except asyncio.TimeoutError:
                pass
            self._reconcile_now.clear()
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("reconciliation with the store failed (%s: %s); retrying", exc.__class__.__name__, exc)

    async def reconcile(self) -> int:
        """Refresh every job whose stored version differs from the one armed here."""
        engine = self._engine
        if engine is None or not hasattr(engine, "reconcile"):
            return 0
        versions = await engine.store.job_versions()
        count = await engine.reconcile(versions)
        if count:
            self.stats["reconciled"] += count
            log.info("cluster %r: reconciliation refreshed %d job(s)", self.cluster, count)
        return count


async def mark_crashed(store: Any, node: str, reason: str, *, before: int | None = None) -> int:
    """Mark runs ``node`` left ``running`` (started before ``before`` ms, if given) as crashed.

    Uses the store's own ``mark_crashed(node, before, finished_at, error)`` when it has one
    (one atomic statement); otherwise lists running runs and finishes those of ``node``.
    """
    finished = now_ms()
    native = getattr(store, "mark_crashed", None)
    if native is not None:
        return int(await native(node, before, finished, reason))
    from traitor.store.abc import RunQuery

    stale = []
    offset = 0
    while True:
        runs, total = await store.list_runs(RunQuery(status=RunStatus.RUNNING, offset=offset, limit=1000))
        for run in runs:
            if run.node == node and run.status is RunStatus.RUNNING and (
                before is None or (run.started_at or run.scheduled_at) < before
            ):
                stale.append(run)
        offset += len(runs)
        if not runs or offset >= total:
            break
    for run in stale:
        run.status = RunStatus.CRASHED
        run.finished_at = finished
        run.error = reason
    if stale:
        await store.finish_runs(stale)
    return len(stale)


async def _close_quietly(pubsub: Any) -> None:
    try:
        await asyncio.wait_for(pubsub.aclose(), 1.0)
    except Exception:
        pass


def _client_name(name: str) -> str:
    """CLIENT SETNAME refuses spaces and newlines."""
    return "".join(c if c.isprintable() and not c.isspace() else "_" for c in name)
