"""The runtime interface: run one JavaScript program under limits.

A runner executes :class:`RunRequest` objects and resolves each with a
:class:`RunResult`. Contract for every implementation:

* A fresh JS context per run: nothing leaks from one run to the next.
* Limits always apply: wall-clock (``timeout_ms``), CPU (``cpu_ms``), JS heap
  (``memory_bytes``) and console output (``output_bytes``). Hitting one ends the
  run with the matching status; the runner stays usable.
* A run ends when its top-level code, every pending host call and every timer
  have finished. An uncaught exception or unhandled rejection is ``error`` with
  the JS stack in ``RunResult.error``.
* A crashed worker resolves its runs as ``crashed`` and is replaced.
* ``listener`` (if given) receives each console line as soon as the runner
  sees it, on the event loop, in order, before the result resolves.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable

from traitor.domain.job import RunStatus


@dataclass(slots=True)
class RunRequest:
    run_id: str
    job_id: str
    script: str
    timeout_ms: int = 30_000
    cpu_ms: int = 10_000
    memory_bytes: int = 64 * 1024 * 1024
    output_bytes: int = 64 * 1024
    #: Script libraries the run may ``require`` (see ``traitor.scheduler.libraries``):
    #: ``{specifier: (version, code)}`` with specifiers as the code writes them
    #: (``"lib/fmt"``, ``"lib/fmt@3"``) and ``code`` the library's CommonJS body
    #: (``traitor.runtime.jsmodules``). Version 0 marks a library that does not exist.
    #: Two specifiers resolving to one version carry the same code.
    libraries: dict[str, tuple[int, str]] | None = None


@dataclass(slots=True)
class ConsoleLine:
    ts: int  # ms since epoch
    level: str  # log | info | warn | error | debug
    text: str

    def format(self) -> str:
        """The line as stored in a run's ``output``: ``<RFC 3339> <level> <text>``."""
        from traitor.domain.timeutil import to_rfc3339

        return f"{to_rfc3339(self.ts)} {self.level:<5} {self.text}"


@dataclass(slots=True)
class RunResult:
    status: RunStatus
    started_at: int  # ms
    finished_at: int  # ms
    lines: list[ConsoleLine] = field(default_factory=list)
    error: str | None = None

    @property
    def output(self) -> str:
        return "\n".join(line.format() for line in self.lines)


ConsoleListener = Callable[[ConsoleLine], None]


class ScriptRunner(ABC):
    @abstractmethod
    async def start(self) -> None:
        """Start workers; return when they can take runs."""

    @abstractmethod
    async def close(self, grace: float = 10.0) -> None:
        """Stop taking runs, let running ones finish for ``grace`` seconds, then kill."""

    @abstractmethod
    def submit(self, request: RunRequest, listener: ConsoleListener | None = None) -> asyncio.Future[RunResult]:
        """Queue a run; the future resolves with its result (never raises for script faults)."""

    @abstractmethod
    def cancel(self, run_id: str) -> bool:
        """Stop a queued or running run; it resolves as ``error`` with reason "cancelled"."""

    @property
    @abstractmethod
    def busy(self) -> int:
        """Runs started and not finished."""

    @property
    @abstractmethod
    def queued(self) -> int:
        """Runs submitted and not started."""
