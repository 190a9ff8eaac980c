"""The cluster interface: who runs which job, and change notification between nodes.

``standalone.py`` is the single-process coordinator (it owns every job);
``redis.py`` is the leaderless cluster on Redis. Contract:

* ``owns(job_id)`` answers from memory in O(log n) at most: it is called for
  every fire. All live nodes converge on the same answer for a job.
* ``healthy`` is ``False`` while this node cannot see the cluster; the engine
  then runs nothing (another node will).
* ``publish`` announces that a job changed; every other node's ``on_change``
  callback receives ``(job_id, version)`` soon after. Delivery is best effort:
  the engine also reconciles from the store periodically.
* Following: a client may follow a job's runs (console included) on any node,
  while the runs happen on the job's owner. ``follow(job_id, listener)`` on the
  client's node makes ``followed_elsewhere(job_id)`` true on the others within
  a round trip to the coordination service (a heartbeat at worst, when that
  notice is lost); while it is, the node running the job ``relay``s the run's
  events, which reach the follower's ``listener``. Best effort, in order per
  sending node; the standalone coordinator has nothing to relay.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Awaitable, Callable

ChangeCallback = Callable[[str, int], Awaitable[None] | None]
#: ``(kind, data)`` of a relayed follow event: ``run`` / ``status`` (a run as
#: ``codec.run_values``) or ``line`` (``[ts, level, text]``).
FollowListener = Callable[[str, Any], None]


class Coordinator(ABC):
    node_id: str

    @abstractmethod
    async def start(self, on_change: ChangeCallback) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def owns(self, job_id: str) -> bool: ...

    #: ``True`` when ``owns`` answers ``True`` for every job (one node alone): the
    #: engine then hands a due batch over without asking per fire.
    owns_all: bool = False

    @property
    @abstractmethod
    def healthy(self) -> bool: ...

    @abstractmethod
    async def publish(self, job_id: str, version: int) -> None: ...

    @abstractmethod
    def members(self) -> list[str]: ...

    async def ping(self) -> None:
        """Raise if the coordination service is unreachable (``/readyz``)."""

    # ------------------------------------------------------------------ following
    def followed_elsewhere(self, job_id: str) -> bool:
        """Whether a client on another node follows ``job_id``. Answers from memory:
        it is asked at every run start."""
        return False

    def relay(self, job_id: str, kind: str, data: Any) -> None:
        """Send a follow event of ``job_id`` to the nodes following it. Never blocks
        or raises; events may be dropped when the coordination service is down."""

    def follow(self, job_id: str, listener: FollowListener) -> Callable[[], None]:
        """Receive the events other nodes relay for ``job_id``; returns the function
        that stops it."""
        return lambda: None
