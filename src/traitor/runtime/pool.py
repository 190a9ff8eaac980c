"""The worker pool: runs scripts in QuickJS worker processes.

:class:`WorkerPool` implements :class:`~traitor.runtime.abc.ScriptRunner`. Each
worker is a ``python -m traitor.runtime.worker`` process speaking the frame
protocol of :mod:`traitor.runtime.protocol` over its stdin/stdout; its stderr is
the service's stderr.

* Dispatch: a worker holds up to ``runs_per_worker`` runs at once (they interleave
  inside it while they wait for host calls and timers, and a long computation is
  preempted every ``slice_ms`` so the others proceed); each new run goes to the
  ready worker with the fewest preempted (CPU-bound) runs, then the fewest runs;
  beyond that, runs wait in a FIFO queue of at most ``max_queue`` runs. Runs
  submitted in the same event-loop iteration go to a worker in one frame, and the
  worker answers in frames too. A run's limits count from when its worker starts it.
* Limits are enforced inside the worker. The pool is the backstop: a worker that has
  been silent for ``kill_grace`` seconds while a run is past its deadline is
  SIGKILLed; such runs end as ``timeout``, the others on that worker as ``crashed``.
* A worker that dies (signal, OOM killer, crash) resolves all its runs as
  ``crashed`` and is replaced; queued runs carry on.
* Host calls (``require(name).fn(...)`` in a script) run here, on the event loop:
  ``async`` functions as tasks, plain functions in a thread (``asyncio.to_thread``).
  When a run ends, its pending calls are cancelled.
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import json
import logging
import signal
import sys
import time
from collections import OrderedDict, deque
from typing import Any, Mapping

from traitor.domain.job import RunStatus
from traitor.domain.library import parse_specifier
from traitor.runtime import protocol
from traitor.runtime.abc import ConsoleLine, ConsoleListener, RunRequest, RunResult, ScriptRunner
from traitor.runtime.cores import usable_cores
from traitor.runtime.modules import CallContext, HostModule
from traitor.runtime.protocol import CALL, CANCEL, DONE, INIT, LINES, LOAD, READY, RESULT, RUN

log = logging.getLogger(__name__)

_STATUS = {s.value: s for s in RunStatus}
_QUEUED, _RUNNING, _DONE = 0, 1, 2
#: Library versions a worker keeps compiled (more than one run may load: 256), and
#: about how much code (bytes of their sources).
LIBRARY_CACHE = 1024
LIBRARY_CACHE_BYTES = 64 << 20
_monotonic = time.monotonic


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class QueueFullError(RuntimeError):
    """``submit`` while ``max_queue`` runs are already waiting."""


class _Run:
    __slots__ = (
        "seq", "request", "listener", "future", "lines", "state", "worker",
        "deadline", "dispatched_at", "calls", "outcome", "message",
    )  # fmt: skip

    def __init__(self, seq: int, request: RunRequest, listener: ConsoleListener | None, future: asyncio.Future) -> None:
        self.seq = seq
        self.request = request
        self.listener = listener
        self.future = future
        self.lines: list[ConsoleLine] = []
        self.state = _QUEUED
        self.worker: _Worker | None = None
        self.deadline = 0.0  # monotonic backstop
        self.dispatched_at = 0
        self.calls: dict[int, asyncio.Task] | None = None
        self.outcome: tuple[RunStatus, str] | None = None  # forced by the pool (backstop kill)
        self.message: tuple = ()


class _Worker(asyncio.SubprocessProtocol):
    """One worker process and the pool's view of it."""

    def __init__(self, pool: WorkerPool, number: int) -> None:
        self.pool = pool
        self.number = number
        self.transport: asyncio.SubprocessTransport | None = None
        self.stdin: asyncio.WriteTransport | None = None
        self.pid = 0
        self.runs: dict[int, _Run] = {}
        self.outbox: list[Any] = []
        self.flush_pending = False
        self.decoder = protocol.Decoder()
        self.ready = False
        self.depth = 0  # runs suspended under preemptions (LOAD messages)
        self.alive = True
        self.exited = False
        self.spawned_at = self.last_heard = _monotonic()
        self.death_reason: str | None = None  # set when the pool kills it
        self.started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        #: Script libraries this worker has compiled, (name, version) -> size of the code,
        #: in LRU order: the worker keeps exactly these (it drops what a RUN message lists
        #: as evicted).
        self.libs: OrderedDict[tuple[str, int], int] = OrderedDict()
        self.lib_bytes = 0

    # SubprocessProtocol -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.pid = self.transport.get_pid()  # type: ignore[union-attr]
        self.stdin = self.transport.get_pipe_transport(0)  # type: ignore[union-attr,assignment]

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd != 1 or not self.alive:
            return
        self.last_heard = _monotonic()
        try:
            messages = self.decoder.feed(data)
        except protocol.ProtocolError as exc:
            log.error("worker %d sent garbage (%s); killing it", self.pid, exc)
            self.kill("worker process sent an invalid frame")
            return
        try:
            self.pool._on_messages(self, messages)
        except Exception:
            log.exception("worker %d: bad message; killing it", self.pid)
            self.kill("worker process sent an invalid message")

    def process_exited(self) -> None:
        self.exited = True
        # Output written just before exit may still be in the pipe: connection_lost
        # follows once stdout is drained. Don't wait forever for it.
        asyncio.get_running_loop().call_later(2.0, self.pool._on_worker_dead, self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool._on_worker_dead(self)

    # pool side ----------------------------------------------------------------

    def send(self, message: Any) -> None:
        self.outbox.append(message)
        if not self.flush_pending:
            self.flush_pending = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self.flush_pending = False
        if not self.outbox:
            return
        data = protocol.encode(self.outbox)
        self.outbox = []
        if self.alive and self.stdin is not None and not self.stdin.is_closing():
            self.stdin.write(data)

    def kill(self, reason: str | None = None) -> None:
        if reason and self.death_reason is None:
            self.death_reason = reason
        if self.transport is not None and not self.exited:
            try:
                self.transport.send_signal(signal.SIGKILL)
            except (ProcessLookupError, OSError):
                pass

    def returncode_text(self) -> str:
        code = self.transport.get_returncode() if self.transport is not None else None
        if code is None:
            return "worker process died"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = "unknown"
            return f"worker process died (signal {-code}, {name})"
        return f"worker process exited with code {code}"


class WorkerPool(ScriptRunner):
    """Runs scripts in ``workers`` QuickJS worker processes (default: one per usable core, see :func:`usable_cores`).

    ``modules`` are the host modules scripts may ``require`` (by mapping key);
    ``services`` is handed to host functions in their :class:`CallContext`.
    ``submit`` raises :class:`QueueFullError` when ``max_queue`` runs already wait.

    Tuning (keyword-only): ``runs_per_worker`` runs in flight per worker;
    ``slice_ms`` of CPU before a busy run lets the other runs of its worker proceed;
    ``kill_grace`` seconds past a run's deadline before the pool kills its worker;
    ``stack_bytes`` of C stack per run (QuickJS frames take ≈ 1.7 KB: 2 MiB ≈ 1,200
    nested calls); ``max_nesting`` preempted runs at most on one worker's stack.

    Cancelling a returned future abandons a run that has not started yet; to stop a
    running one use :meth:`cancel`.
    """

    def __init__(
        self,
        workers: int | None = None,
        modules: Mapping[str, HostModule] | None = None,
        services: object = None,
        max_queue: int = 100_000,
        *,
        runs_per_worker: int = 64,
        slice_ms: int = 50,
        kill_grace: float = 1.0,
        stack_bytes: int = 2 << 20,
        max_nesting: int = 16,
        python: str = sys.executable,
    ) -> None:
        if not 256 << 10 <= stack_bytes <= 16 << 20:
            raise ValueError("stack_bytes must be between 256 KiB and 16 MiB")
        if not 0 <= max_nesting <= 64 or (max_nesting + 1) * stack_bytes > 480 << 20:
            # the worker's thread stack (512 MiB, reserved lazily) holds the suspended runs' stacks
            raise ValueError("max_nesting must be between 0 and 64, and (max_nesting + 1) * stack_bytes < 480 MiB")
        self._size = max(1, workers or usable_cores())
        self._modules: dict[str, HostModule] = dict(modules or {})
        self._services = services
        self._max_queue = max_queue
        self._per_worker = max(1, runs_per_worker)
        self._kill_grace = kill_grace
        self._python = python
        self._options = {
            "slice_ms": slice_ms,
            "max_nesting": max_nesting,
            "stack_bytes": stack_bytes,
            "heartbeat_ms": max(20, min(250, int(kill_grace * 250))),
        }
        self._table = {
            name: ([str(fn) for fn in module.functions], module.source) for name, module in self._modules.items()
        }
        self._is_async = {
            (name, fn): _is_coroutine_function(f)
            for name, module in self._modules.items()
            for fn, f in module.functions.items()
        }
        self._loop: asyncio.AbstractEventLoop | None = None
        self._workers: list[_Worker] = []
        self._spawning = 0
        self._spawn_failures = 0
        self._spawn_tasks: set[asyncio.Task] = set()
        self._queue: deque[_Run] = deque()
        self._queued = 0
        self._busy = 0
        self._active: dict[str, _Run] = {}
        self._seq = 0
        self._dispatch_pending = False
        self._started = False
        self._closed = False
        self._closing_reason: str | None = None
        self._watchdog: asyncio.Task | None = None
        self._numbers = 0
        self.hooks_error: str | None = None

    # ------------------------------------------------------------------ ScriptRunner

    async def start(self) -> None:
        if self._started:
            return
        if self._closed:
            raise RuntimeError("the worker pool is closed")
        self._loop = asyncio.get_running_loop()
        self._started = True
        workers = await asyncio.gather(*(self._spawn() for _ in range(self._size)), return_exceptions=True)
        errors = [w for w in workers if isinstance(w, BaseException)]
        if errors:
            for w in self._workers:
                w.kill()
            self._started = False
            raise RuntimeError(f"could not start the worker processes: {errors[0]}") from errors[0]
        self._watchdog = self._loop.create_task(self._watch(), name="traitor-pool-watchdog")
        self._dispatch_soon()

    async def close(self, grace: float = 10.0) -> None:
        if self._closed:
            return
        self._closed = True
        while self._queue:
            run = self._queue.popleft()
            if run.state == _QUEUED:
                self._queued -= 1
                self._finish(run, RunStatus.ERROR, "cancelled: the runner is closing")
        pending = [run.future for run in self._active.values() if run.state == _RUNNING]
        if pending and grace > 0:
            await asyncio.wait(pending, timeout=grace)
        self._closing_reason = "the runner closed before the run finished"
        for task in list(self._spawn_tasks):
            task.cancel()
        workers = list(self._workers)
        for w in workers:
            if w.stdin is not None:
                w.flush()
                w.stdin.close()  # end of input: the worker exits
        await self._wait_exited(workers, 0.5)
        for w in workers:
            w.kill()
        await self._wait_exited(workers, 2.0)
        for w in workers:
            self._on_worker_dead(w)
        if self._watchdog is not None:
            self._watchdog.cancel()
        for run in list(self._active.values()):
            self._finish(run, RunStatus.CRASHED, self._closing_reason)

    @staticmethod
    async def _wait_exited(workers: list[_Worker], timeout: float) -> None:
        deadline = _monotonic() + timeout
        while any(not w.exited for w in workers) and _monotonic() < deadline:
            await asyncio.sleep(0.01)

    def submit(self, request: RunRequest, listener: ConsoleListener | None = None) -> asyncio.Future[RunResult]:
        if self._closed:
            raise RuntimeError("the worker pool is closed")
        if self._queued >= self._max_queue:
            raise QueueFullError(f"{self._queued} runs are already waiting for a worker")
        if request.run_id in self._active:
            raise ValueError(f"run {request.run_id} is already submitted")
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        if type(request.script) is not str:
            raise TypeError("RunRequest.script must be a str")
        future = loop.create_future()
        self._seq += 1
        run = _Run(self._seq, request, listener, future)
        run.message = (
            RUN,
            run.seq,
            request.script,
            _positive(request.timeout_ms),
            _positive(request.cpu_ms),
            _positive(request.memory_bytes),
            _positive(request.output_bytes),
        )
        self._active[request.run_id] = run
        self._queue.append(run)
        self._queued += 1
        if not self._dispatch_pending:
            self._dispatch_pending = True
            loop.call_soon(self._dispatch)
        return future

    def cancel(self, run_id: str) -> bool:
        run = self._active.get(run_id)
        if run is None:
            return False
        if run.state == _QUEUED:
            self._queued -= 1
            self._finish(run, RunStatus.ERROR, "cancelled")
        elif run.state == _RUNNING and run.worker is not None:
            run.worker.send((CANCEL, run.seq))
        return True

    @property
    def busy(self) -> int:
        return self._busy

    @property
    def queued(self) -> int:
        return self._queued

    # ------------------------------------------------------------------ extras

    @property
    def size(self) -> int:
        """The number of workers the pool keeps running."""
        return self._size

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (ready or starting)."""
        return [w.pid for w in self._workers if w.alive and w.pid]

    # ------------------------------------------------------------------ workers

    async def _spawn(self) -> _Worker:
        assert self._loop is not None
        self._numbers += 1
        self._spawning += 1
        try:
            worker = _Worker(self, self._numbers)
            await self._loop.subprocess_exec(
                lambda: worker,
                self._python,
                "-m",
                "traitor.runtime.worker",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=None,
            )
            self._workers.append(worker)
            worker.send((INIT, self._table, self._options))
            try:
                await asyncio.wait_for(asyncio.shield(worker.started), 60)
            except BaseException:
                worker.kill("worker process did not start")
                raise
            return worker
        finally:
            self._spawning -= 1

    def _replace(self) -> None:
        if self._closed or len(self._workers) + self._spawning >= self._size:
            return
        delay = min(5.0, 0.1 * (2 ** min(self._spawn_failures, 6))) if self._spawn_failures else 0.0

        async def respawn() -> None:
            try:
                if delay:
                    await asyncio.sleep(delay)
                if self._closed:
                    return
                await self._spawn()
                self._spawn_failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:
                self._spawn_failures += 1
                log.exception("could not start a worker process")
            finally:
                self._spawn_tasks.discard(task)
                if not self._closed:
                    self._replace()
                    self._dispatch_soon()

        assert self._loop is not None
        task = self._loop.create_task(respawn(), name="traitor-pool-respawn")
        self._spawn_tasks.add(task)

    def _on_worker_dead(self, w: _Worker) -> None:
        if not w.alive:
            return
        w.alive = False
        w.ready = False
        if w in self._workers:
            self._workers.remove(w)
        if not w.started.done():
            w.started.set_exception(RuntimeError(w.returncode_text()))
            w.started.exception()  # mark retrieved
            self._spawn_failures += 1
        reason = self._closing_reason or w.death_reason or w.returncode_text()
        if w.runs:
            log.warning("%s; %d run(s) lost", reason, len(w.runs))
        for run in list(w.runs.values()):
            if run.outcome is not None:
                self._finish(run, *run.outcome)
            else:
                self._finish(run, RunStatus.CRASHED, reason)
        w.runs.clear()
        if w.transport is not None:
            w.transport.close()
        self._replace()
        self._dispatch_soon()

    async def _watch(self) -> None:
        """The backstop: kill workers that stopped answering or never started.

        A worker holding runs talks at least every ``kill_grace / 4`` (at most 0.25 s):
        results, or a heartbeat from its loop and from inside long JS slices. One that
        has been silent for ``kill_grace`` seconds while a run is past its deadline
        (counted from dispatch) is stuck — in a native call that never polls for
        interrupts, say. A busy worker that still talks is trusted to end its runs."""
        while True:
            await asyncio.sleep(0.1)
            now = _monotonic()
            for w in list(self._workers):
                if not w.alive:
                    continue
                if not w.ready:
                    if now - w.spawned_at > 60:
                        w.kill("worker process did not start")
                    continue
                if now - w.last_heard < self._kill_grace:
                    continue
                late = [run for run in w.runs.values() if now > run.deadline]
                if late:
                    for run in late:
                        run.outcome = (
                            RunStatus.TIMEOUT,
                            f"timed out after {run.request.timeout_ms / 1000:.1f} s wall-clock "
                            "(the worker did not stop the run and was killed)",
                        )
                    log.error("worker %d missed the deadline of %d run(s); killing it", w.pid, len(late))
                    w.kill("worker process killed: it stopped responding")

    # ------------------------------------------------------------------ dispatch

    def _dispatch_soon(self) -> None:
        if not self._dispatch_pending and self._loop is not None and not self._loop.is_closed():
            self._dispatch_pending = True
            self._loop.call_soon(self._dispatch)

    def _dispatch(self) -> None:
        self._dispatch_pending = False
        queue = self._queue
        if not queue:
            return
        cap = self._per_worker
        saturated = self._options["max_nesting"]
        loads = [
            (w.depth, len(w.runs), w.number, w)
            for w in self._workers
            if w.ready and w.alive and len(w.runs) < cap and (w.depth < saturated or not w.runs)
        ]
        if not loads:
            return
        heapq.heapify(loads)
        grace = self._kill_grace
        now = _monotonic()
        now_ms = _now_ms()
        while queue:
            depth, load, number, w = loads[0]
            if load >= cap:
                break
            run = queue.popleft()
            if run.state != _QUEUED:
                continue
            self._queued -= 1
            if run.future.cancelled():  # the caller gave up before the run started
                run.state = _DONE
                self._active.pop(run.request.run_id, None)
                continue
            message = run.message
            run.state = _RUNNING
            run.worker = w
            run.dispatched_at = now_ms
            run.deadline = now + message[3] / 1000 + grace
            w.runs[run.seq] = run
            self._busy += 1
            if run.request.libraries:
                message = message + _libraries_for(w, run.request.libraries)
            w.send(message)
            heapq.heapreplace(loads, (depth, load + 1, number, w))

    # ------------------------------------------------------------------ worker messages

    def _on_messages(self, w: _Worker, messages: list[Any]) -> None:
        runs = w.runs
        freed = False
        for msg in messages:
            kind = msg[0]
            if kind == DONE:
                _, seq, status, error, started, finished, lines = msg
                run = runs.pop(seq, None)
                if run is None:
                    continue
                if lines:
                    self._lines(run, lines)
                self._resolve(run, _STATUS[status], started, finished, error)
                freed = True
            elif kind == LINES:
                run = runs.get(msg[1])
                if run is not None:
                    self._lines(run, msg[2])
            elif kind == CALL:
                _, seq, call_id, module, fn, args = msg
                run = runs.get(seq)
                if run is not None:
                    self._host_call(w, run, call_id, module, fn, args)
            elif kind == LOAD:
                before, w.depth = w.depth, msg[1]
                if w.depth < before:
                    freed = True
            elif kind == READY:
                w.ready = True
                self.hooks_error = msg[2]
                if msg[2]:
                    log.warning("worker %d runs without native QuickJS hooks: %s", w.pid, msg[2])
                if not w.started.done():
                    w.started.set_result(None)
                freed = True
            else:
                raise ValueError(f"unknown message kind {kind!r}")
        if freed and self._queue:
            self._dispatch_soon()

    def _lines(self, run: _Run, lines: list[Any]) -> None:
        out = run.lines
        listener = run.listener
        for ts, level, text in lines:
            line = ConsoleLine(ts, level, text)
            out.append(line)
            if listener is not None:
                try:
                    listener(line)
                except Exception:
                    log.exception("console listener of run %s failed", run.request.run_id)

    def _resolve(self, run: _Run, status: RunStatus, started: int, finished: int, error: str | None) -> None:
        if run.state == _DONE:
            return
        if run.state == _RUNNING:
            self._busy -= 1
        run.state = _DONE
        self._active.pop(run.request.run_id, None)
        if run.calls:
            for task in run.calls.values():
                task.cancel()
            run.calls = None
        future = run.future
        if not future.done():
            future.set_result(RunResult(status, started, finished, run.lines, error))

    def _finish(self, run: _Run, status: RunStatus, error: str | None) -> None:
        """Resolve a run the pool ends itself (queued cancel, crash, close)."""
        if run.state == _DONE:
            return
        if run.worker is not None:
            run.worker.runs.pop(run.seq, None)
        now = _now_ms()
        self._resolve(run, status, run.dispatched_at or now, now, error)

    # ------------------------------------------------------------------ host calls

    def _host_call(self, w: _Worker, run: _Run, call_id: int, module: str, fn: str, args_json: str) -> None:
        mod = self._modules.get(module)
        func = mod.functions.get(fn) if mod is not None else None
        if func is None:
            w.send((RESULT, run.seq, call_id, False, f"{module}.{fn} is not a function"))
            return
        try:
            args = json.loads(args_json)
            if type(args) is not list:
                raise ValueError("arguments must be a list")
        except ValueError as exc:
            w.send((RESULT, run.seq, call_id, False, f"invalid arguments: {exc}"))
            return
        assert self._loop is not None
        task = self._loop.create_task(self._call(w, run, call_id, func, self._is_async.get((module, fn), False), args))
        if run.calls is None:
            run.calls = {}
        run.calls[call_id] = task

    async def _call(self, w: _Worker, run: _Run, call_id: int, func: Any, is_async: bool, args: list[Any]) -> None:
        ctx = CallContext(run.request.run_id, run.request.job_id, self._services)
        try:
            if is_async:
                value = await func(ctx, *args)
            else:
                value = await asyncio.to_thread(func, ctx, *args)
                if inspect.isawaitable(value):
                    value = await value
            try:
                payload = json.dumps(value, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"the host function returned a value that is not JSON: {exc}") from None
            ok = True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            ok = False
            payload = str(exc) or type(exc).__name__
        finally:
            if run.calls is not None:
                run.calls.pop(call_id, None)
        if run.state == _RUNNING and run.worker is w and w.alive:
            w.send((RESULT, run.seq, call_id, ok, payload))


def _libraries_for(w: _Worker, libraries: Mapping[str, tuple[int, str]]) -> tuple[list[Any], list[Any]]:
    """The two extra items of a RUN message: each library with its code only when the
    worker does not have it compiled yet, and the versions it should drop."""
    cache = w.libs
    entries: list[Any] = []
    used = set()
    for spec, (version, code) in libraries.items():
        parsed = parse_specifier(spec) if version > 0 else None
        if parsed is None:
            entries.append((spec, "", 0, None))
            continue
        key = (parsed[0], int(version))
        used.add(key)
        if key in cache:
            cache.move_to_end(key)
            entries.append((spec, key[0], key[1], None))
        else:
            cache[key] = len(code)
            w.lib_bytes += len(code)
            entries.append((spec, key[0], key[1], code))
    evicted = []
    while len(cache) > LIBRARY_CACHE or w.lib_bytes > LIBRARY_CACHE_BYTES:
        oldest = next(iter(cache))
        if oldest in used:  # everything older is gone: this run's own libraries stay
            break
        w.lib_bytes -= cache.pop(oldest)
        evicted.append(oldest)
    return entries, evicted


def _positive(value: Any) -> int:
    return max(1, int(value))


def _is_coroutine_function(func: Any) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(getattr(func, "__call__", None))
