"""Engine middleware: hooks that observe or extend what the engine does.

As in Dramatiq, cross-cutting features (metrics, failure webhooks, logging)
subclass :class:`Middleware` and are passed to the engine; every hook is
optional and called synchronously on the event loop, so a hook must be quick
and must never raise (exceptions are logged and swallowed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from traitor.domain.job import Job, Run


class Middleware:
    def on_fire(self, job_id: str, scheduled_at: int, lateness_ms: int) -> None:
        """The wheel handed a due fire to the engine, ``lateness_ms`` after its instant."""

    def on_run_started(self, run: Run) -> None:
        """A claimed run was handed to the runtime."""

    def on_run_finished(self, run: Run, job: Job | None) -> None:
        """A run reached a final status (including skipped and missed)."""

    def on_job_changed(self, job_id: str, job: Job | None) -> None:
        """A job was created, changed or deleted (``job`` is ``None``) on this node."""
