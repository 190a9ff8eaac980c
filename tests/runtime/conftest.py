"""Fixtures for the runtime tests: real worker processes and small host modules."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from typing import Any, AsyncIterator

import pytest
import pytest_asyncio

from traitor.runtime.abc import RunRequest, RunResult
from traitor.runtime.modules import CallContext, HostModule
from traitor.runtime.pool import WorkerPool

_ids = itertools.count(1)

#: What the host functions below observed (test modules may inspect it).
calls: dict[str, Any] = {}


async def add(ctx: CallContext, a: float, b: float) -> float:
    await asyncio.sleep(0.005)
    return a + b


def mul(ctx: CallContext, a: float, b: float) -> dict[str, Any]:
    return {"value": a * b, "thread": threading.current_thread() is not threading.main_thread()}


def fail(ctx: CallContext, message: str) -> None:
    raise ValueError(message)


async def whoami(ctx: CallContext) -> dict[str, Any]:
    return {"run": ctx.run_id, "job": ctx.job_id, "services": ctx.services}


async def echo(ctx: CallContext, value: Any) -> Any:
    return value


async def slow(ctx: CallContext, key: str, seconds: float) -> str:
    calls[key] = "started"
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        calls[key] = "cancelled"
        raise
    calls[key] = "finished"
    return "late"


def nan(ctx: CallContext) -> float:
    return float("nan")


#: A Node-style wrapper: callback(err, result) when a callback is given, else a Promise.
CALLBACK_SOURCE = """
function wrap(fn) {
  return function () {
    var args = Array.prototype.slice.call(arguments);
    var cb = typeof args[args.length - 1] === "function" ? args.pop() : null;
    var p = fn.apply(null, args);
    if (!cb) return p;
    p.then(function (r) { cb(null, r); }, function (e) { cb(e); });
  };
}
module.exports = { add: wrap(__host.add), fail: wrap(__host.fail) };
"""

MODULES = {
    "calc": HostModule(
        "calc",
        {"add": add, "mul": mul, "fail": fail, "whoami": whoami, "echo": echo, "slow": slow, "nan": nan},
    ),
    "cbcalc": HostModule("cbcalc", {"add": add, "fail": fail}, source=CALLBACK_SOURCE),
}

SERVICES = {"name": "test-services"}


class Helpers:
    """Small helpers for the tests, as the ``rt`` fixture (test modules can't import conftest)."""

    calls = calls
    modules = MODULES
    services = SERVICES

    @staticmethod
    def request(script: str, **limits: Any) -> RunRequest:
        n = next(_ids)
        return RunRequest(run_id=f"run-{n}", job_id=f"job-{n}", script=script, **limits)

    @staticmethod
    async def run(pool: WorkerPool, script: str, **limits: Any) -> RunResult:
        return await asyncio.wait_for(pool.submit(Helpers.request(script, **limits)), 60)

    @staticmethod
    def texts(result: RunResult) -> list[str]:
        return [line.text for line in result.lines]

    @staticmethod
    @contextlib.asynccontextmanager
    async def pool(workers: int = 2, **options: Any) -> AsyncIterator[WorkerPool]:
        """A pool of its own, for tests that kill workers or close the pool."""
        options.setdefault("modules", MODULES)
        options.setdefault("services", SERVICES)
        p = WorkerPool(workers, **options)
        await p.start()
        try:
            yield p
        finally:
            await p.close(grace=0.5)

    @staticmethod
    async def wait_for(predicate: Any, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached in time")
            await asyncio.sleep(0.02)


@pytest.fixture
def rt() -> type[Helpers]:
    return Helpers


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def shared_pool() -> AsyncIterator[WorkerPool]:
    """Two workers shared by the tests of one module (tests must leave them usable).

    Tests using it run in the module's event loop: ``pytestmark =
    pytest.mark.asyncio(loop_scope="module")``.
    """
    p = WorkerPool(2, modules=MODULES, services=SERVICES)
    await p.start()
    yield p
    await p.close(grace=1)
