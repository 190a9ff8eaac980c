"""The single-process coordinator: this node owns every job."""

from __future__ import annotations

from traitor.cluster.abc import ChangeCallback, Coordinator


class StandaloneCoordinator(Coordinator):
    owns_all = True

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id

    async def start(self, on_change: ChangeCallback) -> None:
        return None

    async def close(self) -> None:
        return None

    def owns(self, job_id: str) -> bool:
        return True

    @property
    def healthy(self) -> bool:
        return True

    async def publish(self, job_id: str, version: int) -> None:
        return None

    def members(self) -> list[str]:
        return [self.node_id]
