"""Following runs across a Redis cluster: who follows which job, and the relay of
run events from the node running a job to the nodes whose clients follow it.

Who follows. A hash ``<base>:followed`` holds one field per (node, job) followed
by a client on that node; its value is an expiry (Unix ms). The node refreshes its
fields every ``refresh_s`` while followed and deletes them when its last follower
of the job leaves; the fields of a node that died expire and are pruned by
whichever node reads them. Every node reads the hash after each heartbeat into a
set, so :meth:`FollowRelay.followed_elsewhere` answers from memory at every run
start. A new follow is also announced on the channel (kind ``followed``) right
after its field is written, so the others see it within a Redis round trip
instead of a heartbeat; an ended follow is seen at the next read of the hash
(until then the node running the job relays events nobody reads).

Events. They travel on the pub/sub channel ``<base>:follow`` as
``{"n": node, "j": job, "k": kind, "d": data}``. A run never waits for Redis: its
events go into a bounded outbox that one task drains in pipelines (events beyond
the bound, or lost while Redis is down, are dropped and counted). The
coordinator's subscriber hands events of other nodes to :meth:`deliver`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from typing import Any, Callable

import redis.asyncio as aioredis

from traitor.cluster.abc import FollowListener
from traitor.domain.timeutil import now_ms

log = logging.getLogger("traitor.cluster")

#: Separates the node id from the job id in a field of the followed hash.
_SEP = "\x1f"
#: Kind of the notice that a node's clients started following a job.
FOLLOWED = "followed"


class FollowRelay:
    def __init__(
        self,
        node_id: str,
        hash_key: str,
        channel: str,
        *,
        op_timeout: float,
        refresh_s: float = 5.0,
        outbox_limit: int = 10_000,
    ) -> None:
        self.node_id = node_id
        self.hash_key = hash_key
        self.channel = channel
        self.op_timeout = op_timeout
        self.refresh_s = refresh_s
        #: A field outlives three missed refreshes, then counts as left behind.
        self.expiry_ms = int(refresh_s * 3 * 1000)
        self.outbox_limit = outbox_limit
        self._redis: aioredis.Redis | None = None
        self._listeners: dict[str, list[FollowListener]] = {}
        self._followed: frozenset[str] = frozenset()
        self._outbox: deque[str] = deque()
        self._outbox_ready = asyncio.Event()
        self._announce_now = asyncio.Event()
        self._forget: set[str] = set()
        #: Jobs whose first follower on this node came since the last announcement.
        self._new: set[str] = set()
        #: FOLLOWED notices of other nodes: job -> when it came (monotonic).
        self._noticed: dict[str, float] = {}
        #: Counters for tests and logs.
        self.stats = {"relayed": 0, "dropped": 0, "delivered": 0}

    def bind(self, client: aioredis.Redis | None) -> None:
        self._redis = client

    # ------------------------------------------------------------------ the interface
    def followed_elsewhere(self, job_id: str) -> bool:
        return job_id in self._followed

    def relay(self, job_id: str, kind: str, data: Any) -> None:
        if len(self._outbox) >= self.outbox_limit:
            self.stats["dropped"] += 1
            return
        self._outbox.append(self._event(job_id, kind, data))
        self._outbox_ready.set()

    def _event(self, job_id: str, kind: str, data: Any) -> str:
        return json.dumps({"n": self.node_id, "j": job_id, "k": kind, "d": data}, separators=(",", ":"))

    def follow(self, job_id: str, listener: FollowListener) -> Callable[[], None]:
        listeners = self._listeners.setdefault(job_id, [])
        listeners.append(listener)
        self._forget.discard(job_id)
        if len(listeners) == 1:
            self._new.add(job_id)
            self._announce_now.set()

        def unfollow() -> None:
            if listener in listeners:
                listeners.remove(listener)
            if not listeners and self._listeners.get(job_id) is listeners:
                del self._listeners[job_id]
                self._new.discard(job_id)
                self._forget.add(job_id)
                self._announce_now.set()

        return unfollow

    def deliver(self, data: Any) -> None:
        """An event from the channel: hand it to this node's listeners of its job."""
        try:
            event = json.loads(data)
            node, job_id, kind, payload = event["n"], event["j"], event["k"], event["d"]
        except Exception:
            log.warning("ignored a malformed follow event on %s: %r", self.channel, data)
            return
        if node == self.node_id:
            return
        if kind == FOLLOWED:
            self._followed = self._followed | {job_id}
            self._noticed[job_id] = time.monotonic()
            return
        for listener in list(self._listeners.get(job_id, ())):
            self.stats["delivered"] += 1
            try:
                listener(kind, payload)
            except Exception:
                log.exception("a follow listener of job %s failed", job_id)

    # ------------------------------------------------------------------ upkeep
    async def refresh(self) -> None:
        """Read which jobs other nodes follow (after each heartbeat); prune expired fields."""
        if self._redis is None:
            return
        asked = time.monotonic()
        try:
            fields = await asyncio.wait_for(self._redis.hgetall(self.hash_key), self.op_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # keep the last answer; the next heartbeat tries again
            log.debug("reading followed jobs failed: %s", exc)
            return
        now = now_ms()
        followed, expired = set(), []
        for raw_field, raw_expiry in fields.items():
            field = raw_field.decode() if isinstance(raw_field, bytes) else raw_field
            node, _, job_id = field.partition(_SEP)
            if int(raw_expiry) < now:
                expired.append(field)
            elif node != self.node_id:
                followed.add(job_id)
        # A notice that came while the read was on its way may be newer than the answer.
        self._noticed = {job_id: at for job_id, at in self._noticed.items() if at >= asked}
        self._followed = frozenset(followed | self._noticed.keys())
        if expired:
            try:
                await asyncio.wait_for(self._redis.hdel(self.hash_key, *expired), self.op_timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # pruned by the next reader
                log.debug("pruning followed jobs failed: %s", exc)

    async def announce_loop(self) -> None:
        """Keep this node's followed jobs in the hash: at once on a change, then every ``refresh_s``."""
        while True:
            try:
                await asyncio.wait_for(self._announce_now.wait(), self.refresh_s)
            except asyncio.TimeoutError:
                pass
            self._announce_now.clear()
            try:
                await self._announce()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down: the next round tries again
                log.debug("announcing followed jobs failed: %s", exc)

    async def _announce(self) -> None:
        if self._redis is None:
            return
        forget, self._forget = self._forget, set()
        if forget:
            await asyncio.wait_for(self._redis.hdel(self.hash_key, *map(self._field, forget)), self.op_timeout)
        if self._listeners:
            new, self._new = self._new, set()
            expiry = now_ms() + self.expiry_ms
            mapping = {self._field(job_id): expiry for job_id in self._listeners}
            try:
                await asyncio.wait_for(self._redis.hset(self.hash_key, mapping=mapping), self.op_timeout)
            except BaseException:
                self._new |= new & self._listeners.keys()  # announced by the next round
                raise
            # The field first, then the notice: a node that reads the hash in between
            # already sees the follow, so none can drop it again.
            notices = [self._event(job_id, FOLLOWED, None) for job_id in new if job_id in self._listeners]
            if notices:
                await self._publish(notices)

    async def publish_loop(self) -> None:
        """Send the outbox in pipelines, in order; what Redis refuses is dropped and counted."""
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            while self._outbox:
                batch = [self._outbox.popleft() for _ in range(min(len(self._outbox), 500))]
                try:
                    await self._publish(batch)
                    self.stats["relayed"] += len(batch)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.stats["dropped"] += len(batch)
                    log.debug("relaying %d follow event(s) failed: %s", len(batch), exc)

    async def _publish(self, batch: list[str]) -> None:
        if self._redis is None:
            raise RuntimeError("not connected")
        pipe = self._redis.pipeline(transaction=False)
        for message in batch:
            pipe.publish(self.channel, message)
        await asyncio.wait_for(pipe.execute(), self.op_timeout)

    async def leave(self) -> None:
        """Remove this node's fields (a graceful shutdown)."""
        if self._redis is None or not self._listeners:
            return
        try:
            await asyncio.wait_for(self._redis.hdel(self.hash_key, *map(self._field, self._listeners)),
                                   self.op_timeout)
        except Exception as exc:  # they expire anyway
            log.debug("removing followed jobs failed: %s", exc)

    def _field(self, job_id: str) -> str:
        return f"{self.node_id}{_SEP}{job_id}"
