"""Failure notifications: POST a JSON event to the operator's webhook.

A middleware queues one event per failed run (error, timeout, memory,
output-truncated, crashed); one background task delivers them, retrying with
backoff. Nothing here can block or slow the scheduler: the queue is bounded
and, when full, the oldest event is dropped with a log line.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

import httpx

from traitor.scheduler.middleware import Middleware

if TYPE_CHECKING:
    from traitor.domain.job import Job, Run

log = logging.getLogger("traitor.webhooks")


class WebhookMiddleware(Middleware):
    def __init__(
        self,
        url: str,
        *,
        attempts: int = 4,
        backoff: float = 1.0,
        timeout: float = 10.0,
        max_pending: int = 1000,
        node: str = "",
    ) -> None:
        self.url = url
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout
        self.node = node
        self._pending: deque[dict[str, Any]] = deque(maxlen=max_pending)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0
        self.dropped = 0

    def on_run_finished(self, run: Run, job: Job | None) -> None:
        if not run.status.failed:
            return
        from traitor.api.serialize import run_json

        if len(self._pending) == self._pending.maxlen:
            self.dropped += 1
            log.warning("webhook queue full: dropping the oldest failure event")
        self._pending.append({
            "event": "run.failed",
            "node": self.node,
            "job": {"jobId": run.job_id, "name": job.name if job else None},
            "run": run_json(run),
        })
        self._ensure_task()
        self._wake.set()

    def _ensure_task(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._deliver_forever(), name="traitor-webhooks")

    async def _deliver_forever(self) -> None:
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            while True:
                if not self._pending:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                await self._deliver(client, self._pending.popleft())

    async def _deliver(self, client: httpx.AsyncClient, event: dict[str, Any]) -> None:
        for attempt in range(self.attempts):
            try:
                response = await client.post(self.url, json=event)
                if response.status_code < 300:
                    self.delivered += 1
                    return
                reason = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                reason = f"{exc.__class__.__name__}: {exc}"
            if attempt + 1 < self.attempts:
                await asyncio.sleep(self.backoff * 2**attempt)
        log.error("webhook %s gave up on run %s after %d attempts (%s)", self.url, event["run"]["runId"],
                  self.attempts, reason)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
