"""A runner that resolves every run at once as a success, running nothing.

For measuring and testing the layers above the runtime (scheduler, cluster,
library resolution) without worker processes: benchmarks and tests use it.
"""

from __future__ import annotations

import asyncio

from traitor.domain.job import RunStatus
from traitor.domain.timeutil import now_ms
from traitor.runtime.abc import ConsoleListener, RunRequest, RunResult, ScriptRunner


class InstantRunner(ScriptRunner):
    """Counts submitted runs; with ``record=True`` also keeps every request in ``requests``."""

    def __init__(self, *, record: bool = False) -> None:
        self.submitted = 0
        self.requests: list[RunRequest] | None = [] if record else None

    async def start(self) -> None:
        return None

    async def close(self, grace: float = 10.0) -> None:
        return None

    def submit(self, request: RunRequest, listener: ConsoleListener | None = None) -> asyncio.Future[RunResult]:
        self.submitted += 1
        if self.requests is not None:
            self.requests.append(request)
        future: asyncio.Future[RunResult] = asyncio.get_running_loop().create_future()
        at = now_ms()
        future.set_result(RunResult(RunStatus.SUCCESS, at, at))
        return future

    def cancel(self, run_id: str) -> bool:
        return False

    @property
    def busy(self) -> int:
        return 0

    @property
    def queued(self) -> int:
        return 0
