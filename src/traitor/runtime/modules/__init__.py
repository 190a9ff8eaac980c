"""Host modules that scripts reach with ``require(name)``.

A host module is a name and a table of functions. Scripts call them through an
asynchronous bridge: the call leaves the JS sandbox, runs here in the service
process, and settles a Promise in the script (or calls a Node-style callback).
Functions may be plain or ``async``; plain ones run in a thread so a slow plugin
cannot stall the scheduler. Arguments and results are JSON values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

HostFunction = Callable[..., Any] | Callable[..., Awaitable[Any]]


@dataclass(slots=True)
class CallContext:
    """What a host function may know about the run that called it."""

    run_id: str
    job_id: str
    services: Any = None  # the engine's shared services (store, config); see traitor.scheduler.engine


@dataclass(slots=True)
class HostModule:
    """A JS module backed by Python functions.

    ``functions`` maps JS names to callables ``f(ctx: CallContext, *args)``.
    ``source`` is optional JS evaluated inside the sandbox to wrap the raw
    functions (for example to offer a Node-style callback form); it sees
    ``__host`` (an object of promise-returning functions) and must assign
    ``module.exports``.
    """

    name: str
    functions: dict[str, HostFunction] = field(default_factory=dict)
    source: str | None = None
    origin: str = "builtin"
