"""The worker process: ``python -m traitor.runtime.worker``.

It reads frames (see :mod:`traitor.runtime.protocol`) from stdin and writes frames
to stdout; anything else it prints goes to stderr, which the pool passes through.
One thread drives every run of this process: runs interleave while they wait for
host calls and timers, and — through the interrupt handler of :mod:`.sandbox` —
also while one of them computes for a long time. The loop:

1. read whatever input is available (block until the next timer or deadline when
   there is nothing to do), queue new runs, queue settled host calls, cancel;
2. expire wall-clock deadlines of idle runs and wake runs whose timer is due;
3. give every started run that is ready one slice, then start new runs while no
   started run is waiting (a run's limits count from its start), sending what the
   slices produced (console lines, host calls, results) in one frame at least every
   few milliseconds. A worker holding runs says something (a heartbeat if nothing
   else) at least every ``heartbeat`` seconds, even inside a long JS slice.

The worker ignores SIGINT (the service handles Ctrl-C and closes the pool) and dies
with its parent (``PR_SET_PDEATHSIG``); end of input makes it exit.
"""

from __future__ import annotations

import heapq
import json
import os
import select
import signal
import sys
import threading
import time
import traceback
from collections import deque
from typing import Any

from traitor.runtime import protocol, sandbox
from traitor.runtime.protocol import CALL, CANCEL, DONE, INIT, LINES, LOAD, READY, RESULT, RUN
from traitor.runtime.sandbox import STOP_CANCEL, STOP_WALL, Prelude, Sandbox

FLUSH_INTERVAL = 0.004  # seconds between frames while runs keep the worker busy
HEARTBEAT = 0.25  # seconds of silence before the worker says it is alive (default)
THREAD_STACK = 512 << 20  # reserved, not committed: the C stacks of preempted runs live here

_monotonic = time.monotonic
_time = time.time
_thread_stack = THREAD_STACK


class Worker:
    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd = rfd
        self.wfd = wfd
        self.decoder = protocol.Decoder()
        self.runs: dict[int, Sandbox] = {}
        self.ready: deque[Sandbox] = deque()  # started runs with work to do
        self.fresh: deque[Sandbox] = deque()  # received, not started (their clock is not running)
        self.timers: list[tuple[float, int]] = []  # (ms epoch, seq)
        self.deadlines: list[tuple[float, int]] = []  # (monotonic, seq)
        self.out: list[Any] = []
        self.prelude: Prelude | None = None
        #: Compiled script libraries by (name, version); the pool mirrors this set and
        #: says what to evict, so it knows which code it need not send again.
        self.libs: dict[tuple[str, int], Any] = {}
        self.eof = False
        self.slice = 0.05
        self.heartbeat = HEARTBEAT
        self.last_sent = _monotonic()
        self.depth = 0
        self._poll = select.poll()
        self._poll.register(rfd, select.POLLIN)

    # ------------------------------------------------------------------ main loop

    def serve(self) -> None:
        while self.prelude is None and not self.eof:
            self._read(None)
        if self.eof:
            return
        while not self.eof:
            if not self.ready and not self.fresh:
                self._heartbeat()
                self._flush()
                self._read(self._idle_timeout())
            else:
                self._read(0)
            self._expire()
            self._run_ready()
        self._flush()

    def _idle_timeout(self) -> float | None:
        wait = self.heartbeat if self.runs else None
        if self.deadlines:
            d = max(0.0, self.deadlines[0][0] - _monotonic())
            wait = d if wait is None else min(wait, d)
        if self.timers:
            t = max(0.0, self.timers[0][0] / 1000 - _time())
            wait = t if wait is None else min(wait, t)
        return wait

    def _run_ready(self, until: float | None = None) -> None:
        """One slice for each started run that is ready now, then start new runs,
        as long as no started run is waiting (and until the monotonic ``until``).

        Started runs come first: their wall-clock limit is running."""
        ready = self.ready
        fresh = self.fresh
        n = len(ready)
        flush_at = _monotonic() + FLUSH_INTERVAL
        while n and ready or fresh and not ready:
            now = _monotonic()
            if until is not None and now >= until:
                break
            if n and ready:
                n -= 1
                sb = ready.popleft()
                sb.ready = False
                if sb.done is not None:
                    continue
            else:
                sb = fresh.popleft()
                if sb.done is not None:
                    continue
                sb.begin()
                heapq.heappush(self.deadlines, (sb.wall_deadline, sb.seq))
            sb.step()
            self._collect(sb)
            if self.out and _monotonic() >= flush_at:
                self._flush()
                self._read(0)
                self._expire()
                flush_at = _monotonic() + FLUSH_INTERVAL

    def preempt(self) -> None:
        """Called from a run's interrupt handler after a long slice: serve the others
        for about one slice, then let it continue."""
        self._read(0)
        self._expire()
        self._run_ready(until=_monotonic() + self.slice)
        self._flush()

    def housekeeping(self) -> None:
        """Called from a run's interrupt handler every few ms of a long slice."""
        self._expire()
        self._heartbeat()
        if self.out:
            self._flush()

    def _heartbeat(self) -> None:
        """Say something at least every ``heartbeat`` seconds while holding runs: the
        pool kills a worker that stays silent past a run's deadline."""
        if self.runs and _monotonic() - self.last_sent > self.heartbeat and not self.out:
            self.out.append((LOAD, self.depth))

    def _set_depth(self, depth: int) -> None:
        self.depth = depth
        self.out.append((LOAD, depth))

    def others_waiting(self) -> bool:
        if self.ready or self.fresh or self.out:
            return True
        if self.timers and self.timers[0][0] <= _time() * 1000:
            return True
        if self.deadlines and self.deadlines[0][0] <= _monotonic():
            return True
        return bool(self._poll.poll(0))

    # ------------------------------------------------------------------ runs

    def _collect(self, sb: Sandbox) -> None:
        """Send what a slice produced; schedule the run's next slice."""
        if sb.done is not None:
            if self.runs.pop(sb.seq, None) is None:
                return  # reported already (while it was suspended)
            status, error = sb.done
            self.out.append((DONE, sb.seq, status, error, sb.started_at, sb.finished_at, sb.lines))
            sb.lines = []
            if len(self.deadlines) > 4 * len(self.runs) + 4096:
                self._compact()
            return
        out = self.out
        if sb.lines:
            out.append((LINES, sb.seq, sb.lines))
            sb.lines = []
        if sb.calls:
            for call_id, module, fn, args in sb.calls:
                out.append((CALL, sb.seq, call_id, module, fn, args))
            sb.calls = []
        if sb.yielded or sb.inbox or sb.rewake:
            sb.rewake = False
            self._wake(sb)
        elif sb.next_at and sb.next_at != sb.armed:
            sb.armed = sb.next_at
            heapq.heappush(self.timers, (sb.next_at, sb.seq))

    def _compact(self) -> None:
        """Drop heap entries of finished runs (they are skipped lazily otherwise)."""
        runs = self.runs
        for heap in (self.deadlines, self.timers):
            heap[:] = [entry for entry in heap if entry[1] in runs]
            heapq.heapify(heap)

    def _wake(self, sb: Sandbox) -> None:
        if sb.done is not None:
            return
        if sb.executing:
            sb.rewake = True
        elif not sb.ready:
            sb.ready = True
            self.ready.append(sb)

    def _expire(self) -> None:
        timers = self.timers
        if timers:
            now_ms = int(_time() * 1000)
            while timers and timers[0][0] <= now_ms:
                at, seq = heapq.heappop(timers)
                sb = self.runs.get(seq)
                if sb is not None and sb.armed == at:
                    sb.armed = 0
                    if sb.next_at and sb.next_at <= now_ms:
                        self._wake(sb)
        deadlines = self.deadlines
        if deadlines:
            now = _monotonic()
            while deadlines and deadlines[0][0] <= now:
                _, seq = heapq.heappop(deadlines)
                sb = self.runs.get(seq)
                if sb is not None:
                    sb.kill(STOP_WALL)
                    if sb.done is not None:
                        self._collect(sb)

    # ------------------------------------------------------------------ input

    def _read(self, timeout: float | None) -> None:
        ms = -1 if timeout is None else int(timeout * 1000 + 0.999)
        if not self._poll.poll(ms):
            return
        try:
            data = os.read(self.rfd, 1 << 20)
        except OSError:
            data = b""
        if not data:
            self.eof = True
            return
        for msg in self.decoder.feed(data):
            self._handle(msg)

    def _handle(self, msg: Any) -> None:
        kind = msg[0]
        if kind == RUN:
            _, seq, script, timeout_ms, cpu_ms, memory_bytes, output_bytes, *libraries = msg
            libs = self._libraries(*libraries) if libraries else None
            sb = Sandbox(seq, script, timeout_ms, cpu_ms, memory_bytes, output_bytes, self.prelude, libs)  # type: ignore[arg-type]
            self.runs[seq] = sb
            self.fresh.append(sb)
        elif kind == RESULT:
            _, seq, call_id, ok, payload = msg
            sb = self.runs.get(seq)
            if sb is not None:
                sb.deliver(call_id, ok, payload)
                self._wake(sb)
        elif kind == CANCEL:
            sb = self.runs.get(msg[1])
            if sb is not None:
                sb.kill(STOP_CANCEL)
                if sb.done is not None:
                    self._collect(sb)
        elif kind == INIT:
            _, modules, options = msg
            hooks = sandbox.native()
            self.prelude = Prelude(modules, hooks)
            self.slice = options.get("slice_ms", 50) / 1000
            self.heartbeat = options.get("heartbeat_ms", HEARTBEAT * 1000) / 1000
            stack_bytes = options.get("stack_bytes", 2 << 20)
            # every suspended run keeps up to stack_bytes of C stack on this thread
            fits = max(0, _thread_stack // (stack_bytes * 5 // 4) - 2)
            sandbox.configure(
                preempt=self.preempt,
                housekeeping=self.housekeeping,
                on_depth=self._set_depth,
                others_waiting=self.others_waiting,
                slice_seconds=options.get("slice_ms", 50) / 1000,
                max_nesting=min(options.get("max_nesting", 16), fits),
                stack_bytes=stack_bytes,
            )
            self.out.append((READY, os.getpid(), sandbox._native_error))
            self._flush()
        else:
            print(f"traitor worker: unknown message kind {kind!r}", file=sys.stderr)

    def _libraries(self, entries: list[Any], evicted: list[Any]) -> tuple[list[Any], str]:
        """A run's script libraries (see the RUN message in ``protocol``): compile the
        ones sent with their code, keep them by (name, version), drop what the pool
        evicted; return the definitions this run needs and its links (JSON)."""
        cache = self.libs
        definitions: list[Any] = []
        links: dict[str, str | None] = {}
        seen: set[tuple[str, int]] = set()
        for spec, name, version, code in entries:
            if version <= 0:
                links[spec] = None
                continue
            key = (name, version)
            if code is not None:
                cache[key] = self.prelude.library(name, version, code)  # type: ignore[union-attr]
            definition = cache.get(key)
            if definition is None:  # the pool believed this worker had it: should not happen
                print(f"traitor worker: library {name}@{version} is not cached", file=sys.stderr)
                links[spec] = None
                continue
            links[spec] = f"{name}@{version}"
            if key not in seen:
                seen.add(key)
                definitions.append(definition)
        for name, version in evicted:
            cache.pop((name, version), None)
        return definitions, json.dumps(links)

    # ------------------------------------------------------------------ output

    def _flush(self) -> None:
        if not self.out:
            return
        data = memoryview(protocol.encode(self.out))
        self.out = []
        self.last_sent = _monotonic()
        while data:
            try:
                n = os.write(self.wfd, data)
            except BrokenPipeError:
                self.eof = True
                return
            data = data[n:]


def _die_with_parent() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before prctl
        return 1
    # Keep the protocol pipe for frames; stray prints go to stderr.
    rfd = os.dup(0)
    wfd = os.dup(1)
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    worker = Worker(rfd, wfd)
    failure: list[BaseException] = []

    def serve() -> None:
        profile = os.environ.get("TRAITOR_WORKER_PROFILE")  # a path prefix: dump cProfile stats there
        try:
            if profile:
                import cProfile

                cProfile.runctx("worker.serve()", globals(), {"worker": worker}, f"{profile}.{os.getpid()}")
            else:
                worker.serve()
        except BaseException as exc:
            failure.append(exc)
            traceback.print_exc()

    global _thread_stack
    for size in (THREAD_STACK, 64 << 20):  # a low RLIMIT_AS may refuse the big reservation
        threading.stack_size(size)
        _thread_stack = size
        thread = threading.Thread(target=serve, name="traitor-worker")
        try:
            thread.start()
            break
        except RuntimeError:
            print(f"traitor worker: cannot reserve a {size >> 20} MiB thread stack", file=sys.stderr)
    else:
        return 1
    thread.join()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: freeing thousands of objects buys nothing here.
    os._exit(1 if failure else 0)


if __name__ == "__main__":
    sys.exit(main())
