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
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Awaitable, Callable

ChangeCallback = Callable[[str, int], Awaitable[None] | None]


class Coordinator(ABC):
    node_id: str

    @abstractmethod
    async def start(self, on_change: ChangeCallback) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def owns(self, job_id: str) -> bool: ...

    @property
    @abstractmethod
    def healthy(self) -> bool: ...

    @abstractmethod
    async def publish(self, job_id: str, version: int) -> None: ...

    @abstractmethod
    def members(self) -> list[str]: ...

    async def ping(self) -> None:
        """Raise if the coordination service is unreachable (``/readyz``)."""
