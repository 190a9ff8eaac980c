"""Engine middleware: hooks that observe or extend what the engine does.

As in Dramatiq, cross-cutting features (metrics, failure webhooks, logging)
subclass :class:`Middleware` and are passed to the engine; every hook is
optional and called synchronously on the event loop, so a hook must be quick
and must never raise (exceptions are logged and swallowed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from traitor.domain.job import Job, Run, Trigger

    #: (job_id, scheduled_at, trigger, attempt), as queued for dispatch.
    Fire = tuple[str, int, Trigger, int]


class Middleware:
    def on_fires(self, fires: Sequence[Fire], handed_at: int) -> None:
        """The wheel's due fires were queued for dispatch at ``handed_at`` (ms).

        Called once per batch (cron instants are whole seconds, so a batch can hold
        thousands of fires): each fire's lateness is ``handed_at - fire[1]``. Keep it
        linear and cheap: the batch's dispatch waits for every hook."""

    def on_run_started(self, run: Run) -> None:
        """A claimed run was handed to the runtime."""

    def on_run_finished(self, run: Run, job: Job | None) -> None:
        """A run reached a final status (including skipped and missed)."""

    def on_job_changed(self, job_id: str, job: Job | None) -> None:
        """A job was created, changed or deleted (``job`` is ``None``) on this node."""
