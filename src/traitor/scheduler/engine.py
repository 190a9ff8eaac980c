"""The engine: arms enabled jobs on the timing wheel, fires them, runs them once.

Fire path (all on the event loop, no task per fire):

1. The :class:`~traitor.scheduler.wheel.WheelDriver` hands every entry due at
   an instant to :meth:`Engine._on_due` in one call. A cron job is re-armed on
   the loop's next turn from its *scheduled* instant, so lateness never accumulates.
2. Fires this node does not own (cluster mode) are remembered briefly so a
   node can take them over if their owner dies; owned ones queue for dispatch.
3. One dispatcher task reads the due jobs in one batch, applies the overlap
   and misfire policies, claims the runs in the store (the claim is the
   exactly-once arbiter: one row per job and instant) and submits the claimed
   ones to the runtime.
4. Results are buffered and written in batches by one flusher task.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import socket
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Callable, Iterable, Iterator, Sequence

from traitor.cluster.abc import Coordinator
from traitor.cluster.standalone import StandaloneCoordinator
from traitor.domain.job import ExecType, Job, JobState, Misfire, Overlap, Run, RunStatus, Trigger, new_id, new_run_id
from traitor.domain.limits import Limits
from traitor.domain.timeutil import now_ms
from traitor.runtime.abc import ConsoleLine, RunRequest, RunResult, ScriptRunner
from traitor.scheduler.libraries import LIBRARY_KEY_PREFIX, LibraryResolver
from traitor.scheduler.middleware import Middleware
from traitor.scheduler.schedules import Schedule, schedule_for
from traitor.scheduler.wheel import TimingWheel, WheelDriver
from traitor.store import codec
from traitor.store.abc import JobStore, get_jobs

log = logging.getLogger("traitor.engine")

#: A fire waiting for dispatch: (job_id, scheduled_at, trigger, attempt).
Fire = tuple[str, int, Trigger, int]
LineListener = Callable[[ConsoleLine], None]

#: Fires read, claimed and submitted together (larger batches are split).
DISPATCH_CHUNK = 1000

#: Pseudo job id under which the service-wide pause is stored (kv) and announced (changes).
SERVICE_KEY = "::service"


@dataclass(slots=True)
class EngineConfig:
    node_id: str = field(default_factory=socket.gethostname)
    #: IANA zone of jobs that name none (``--timezone``).
    timezone: str = "UTC"
    limits: Limits = field(default_factory=Limits)
    #: Seconds between writes of finished runs (they are batched).
    flush_interval: float = 0.05
    #: Seconds between prunes of old runs.
    prune_interval: float = 300.0
    #: Retry backoff: first delay and ceiling, seconds (doubled per attempt, with jitter).
    retry_base: float = 1.0
    retry_cap: float = 300.0
    #: Seconds a fire this node did not own is remembered for take-over.
    takeover_window: float = 30.0
    #: Fires a job at its concurrency cap may queue; more are recorded as skipped.
    max_queued_per_job: int = 100


def concurrency_cap(job: Job) -> int:
    """Runs of ``job`` allowed at once: its ``maxConcurrent``, else 1 unless overlap is allow."""
    if job.max_concurrent is not None:
        return job.max_concurrent
    return 1_000_000 if job.overlap is Overlap.ALLOW else 1


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    # A burst allocates tuples per fire: keep the cyclic GC (a dozen young
    # collections per 5,000 fires) out of the burst; it runs right after.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _next_fires(batch: list[tuple[int, str, object]], skip: set[str]) -> list[tuple[str, int, object]]:
    """Wheel entries re-arming the cron jobs of a fired batch at their next fire (one
    next-fire look-up per run of fires sharing a schedule and an instant)."""
    out: list[tuple[str, int, object]] = []
    add = out.append
    last_schedule: object = None
    last_at = nxt = None
    for at, job_id, schedule in batch:
        if schedule is None or job_id in skip:
            continue
        if schedule is not last_schedule or at != last_at:
            last_schedule, last_at = schedule, at
            nxt = schedule.next_after(at)  # type: ignore[attr-defined]
        if nxt is not None:
            add((job_id, nxt, schedule))
    return out


#: Seconds between two progress lines while a start-up arms its jobs.
ARMING_LOG_EVERY = 2.0


class _ArmingProgress:
    """Logs how a long start-up arming goes (a million jobs take seconds), every
    :data:`ARMING_LOG_EVERY` seconds, so an operator sees it move."""

    def __init__(self) -> None:
        self.every = ARMING_LOG_EVERY
        self.started = time.monotonic()
        self.next_at = self.started + self.every

    def step(self, read: int) -> None:
        now = time.monotonic()
        if now >= self.next_at:
            self.next_at = now + self.every
            log.info("arming: %d enabled jobs read so far (%.0f/s)", read, read / (now - self.started))


class Engine:
    """Owns the wheel; arms, fires and runs jobs. One per process."""

    def __init__(
        self,
        store: JobStore,
        runner: ScriptRunner,
        coordinator: Coordinator | None = None,
        config: EngineConfig | None = None,
        middleware: Sequence[Middleware] = (),
    ) -> None:
        self.store = store
        self.runner = runner
        self.config = config or EngineConfig()
        self.coordinator = coordinator or StandaloneCoordinator(self.config.node_id)
        self.middleware = list(middleware)
        self.limits = self.config.limits
        self.wheel = TimingWheel(now_ms())
        self.driver = WheelDriver(self.wheel, self._on_due)
        self.paused = False
        #: Script libraries: found, fetched and attached to each run's request.
        self.libraries = LibraryResolver(store)
        self._due: list[Fire] = []
        self._due_event = asyncio.Event()
        self._finished: list[tuple[Run, Job | None]] = []
        self._running: dict[str, int] = {}
        self._queued: dict[str, deque[Fire]] = {}
        self._followers: dict[str, list[LineListener]] = {}
        self._done_watchers: dict[str, list[Callable[[Run], None]]] = {}
        self._job_followers: dict[str, list[Callable[[Run], None]]] = {}
        self._unowned: deque[tuple[int, Fire]] = deque()
        self._tasks: list[asyncio.Task[None]] = []
        self._retry_handles: set[asyncio.TimerHandle] = set()
        self._closing = False
        self.started = False
        #: Cluster mode only: the version of each job as armed here, for reconciliation.
        self._versions: dict[str, int] | None = None
        #: Fired batches whose cron jobs await re-arming (see _on_due), and the jobs
        #: armed or disarmed meanwhile, which keep their new state.
        self._rearm_pending: list[list[tuple[int, str, object]]] | None = None
        self._rearm_cancelled: set[str] = set()
        #: Runs whose events go to followers on other nodes: run id -> job id.
        self._relayed: dict[str, str] = {}

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await self.store.start()
        await self.runner.start()
        attach = getattr(self.coordinator, "attach", None)
        if attach is not None:
            # A cluster coordinator (cluster/redis.py): membership changes call take_over,
            # and it reconciles armed jobs with the store through reconcile().
            self._versions = {}
            attach(self)
        await self.coordinator.start(self._on_remote_change)
        self.paused = await self.store.kv_get(SERVICE_KEY, "paused") == "1"
        armed = await self.arm_all()
        # Long-lived objects (armed entries, schedules) need no cyclic GC; freezing
        # them keeps full collections from pausing the loop for 100s of ms.
        gc.collect()
        gc.freeze()
        self.driver.start()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._dispatch_loop(), name="traitor-dispatch"),
            loop.create_task(self._flush_loop(), name="traitor-flush"),
            loop.create_task(self._prune_loop(), name="traitor-prune"),
        ]
        self.started = True
        log.info("engine started on node %s: %d jobs armed", self.config.node_id, armed)

    async def close(self, grace: float = 10.0) -> None:
        """Stop firing, let running scripts finish within ``grace`` seconds, flush, close."""
        if self._closing:
            return
        self._closing = True
        self.driver.stop()
        for handle in self._retry_handles:
            handle.cancel()
        await self.runner.close(grace)
        await asyncio.sleep(0)  # let result callbacks land in the finish buffer
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._flush_finished()
        for mw in self.middleware:
            close = getattr(mw, "close", None)
            if close is not None:
                await close()
        await self.coordinator.close()
        await self.store.close()
        gc.unfreeze()
        log.info("engine stopped")

    # ------------------------------------------------------------------ arming
    def _schedule(self, job: Job) -> Schedule:
        return schedule_for(job.cron or "", job.timezone or self.config.timezone)

    def arm(self, job: Job, after: int | None = None) -> int | None:
        """Arm ``job`` for its next fire after ``after`` (default now); return that instant."""
        if not job.enabled:
            self.disarm(job.job_id)
            return None
        if self._versions is not None:
            self._versions[job.job_id] = job.version
        if self._rearm_pending is not None:
            self._rearm_cancelled.add(job.job_id)
        if job.exec_type is ExecType.TIMING:
            schedule = self._schedule(job)
            at = schedule.next_after(now_ms() if after is None else after)
            payload: Schedule | None = schedule
        else:
            at, payload = job.exec_at, None
        if at is None:
            self.driver.disarm(job.job_id)
            self._queued.pop(job.job_id, None)
            return None
        self.driver.arm(job.job_id, at, payload)
        return at

    def disarm(self, job_id: str) -> None:
        if self._rearm_pending is not None:
            self._rearm_cancelled.add(job_id)
        self.driver.disarm(job_id)
        self._queued.pop(job_id, None)
        if self._versions is not None:
            self._versions.pop(job_id, None)

    def next_fire(self, job: Job) -> int | None:
        """The armed instant of an enabled job (what responses show as ``nextExecTime``)."""
        if not job.enabled:
            return None
        return self.wheel.when(job.job_id)

    def preview_fire(self, job: Job) -> int | None:
        """The next fire ``job`` would have if it were enabled now."""
        if job.exec_type is ExecType.DELAY:
            return job.exec_at
        return self._schedule(job).next_after(now_ms())

    async def arm_all(self) -> int:
        """Arm every enabled job from the store, applying misfire policies to fires
        whose instant passed while the service was down."""
        count = read = 0
        now = now_ms()
        versions = self._versions
        progress = _ArmingProgress()
        async for batch in self.store.iter_jobs(enabled_only=True):
            entries = []
            for job in batch:
                if versions is not None:
                    versions[job.job_id] = job.version
                entry = self._plan_cold(job, now)
                if entry is not None:
                    entries.append(entry)
            self.wheel.arm_many(entries)
            count += len(entries)
            read += len(batch)
            progress.step(read)
            await asyncio.sleep(0)
        if self._due:
            self._due_event.set()
        return count

    def _plan_cold(self, job: Job, now: int) -> tuple[str, int, Schedule | None] | None:
        grace_ms = self._grace_ms(job)
        if job.exec_type is ExecType.DELAY:
            if job.exec_at is None:
                return None
            if job.exec_at >= now - grace_ms:
                return (job.job_id, job.exec_at, None)
            self._misfired(job, [job.exec_at])
            return None
        schedule = self._schedule(job)
        reference = max(job.last_exec_time or 0, job.updated_at)
        first = schedule.next_after(reference)
        if first is None:
            return None
        if first < now - grace_ms:
            limit = self.limits.misfire_max_catchup if job.misfire is Misfire.ALL else 1
            missed = schedule.fires_between(reference, now - grace_ms, limit)
            self._misfired(job, missed)
            first = schedule.next_after(now - grace_ms)
            if first is None:
                return None
        return (job.job_id, first, schedule)

    def _misfired(self, job: Job, missed: list[int]) -> None:
        """Apply the job's misfire policy to instants that passed unserved."""
        if not missed:
            return
        if job.misfire is Misfire.SKIP:
            run = self._new_run(job.job_id, missed[-1], Trigger.MISFIRE, 0)
            run.status = RunStatus.MISSED
            run.finished_at = now_ms()
            run.error = f"missed {len(missed)} fire(s) while no node could run them (misfire=skip)"
            self._record_final(run, job)
            return
        chosen = missed if job.misfire is Misfire.ALL else missed[-1:]
        self._due.extend((job.job_id, at, Trigger.MISFIRE, 0) for at in chosen)

    def _grace_ms(self, job: Job) -> int:
        grace = job.misfire_grace if job.misfire_grace is not None else self.limits.misfire_grace
        return int(grace * 1000)

    # ------------------------------------------------------------------ firing
    def _on_due(self, batch: list[tuple[int, str, object]]) -> None:
        """Called by the wheel driver with every entry due now (on the loop).

        Hands the fires over first and re-arms their cron jobs on the loop's next
        turn, after the dispatcher has started on them: the last fire of a burst of
        thousands then waits only for the hand-over of those before it, not for their
        next-fire look-ups and re-arming as well."""
        first = self._rearm_pending is None
        if first:
            self._rearm_pending, self._rearm_cancelled = [], set()
        self._rearm_pending.append(batch)  # before the hooks: they may arm or disarm these jobs
        with _cyclic_gc_paused():
            self._hand_over(batch)
        if first:  # scheduled after the dispatcher's wake-up, so it runs after it
            asyncio.get_running_loop().call_soon(self._rearm_fired)

    def _hand_over(self, batch: list[tuple[int, str, object]]) -> None:
        now = now_ms()
        scheduled = Trigger.SCHEDULE
        fires = [(job_id, at, scheduled, 0) for at, job_id, _ in batch]
        runnable = self.coordinator.healthy and not self.paused
        if runnable and self.coordinator.owns_all:
            self._due.extend(fires)
        else:
            owns = self.coordinator.owns
            queue, remember = self._due.append, self._unowned.append
            for fire in fires:
                if runnable and owns(fire[0]):
                    queue(fire)
                else:
                    remember((now, fire))
        self._forget_old_unowned(now)
        if self._due:
            self._due_event.set()
        for mw in self.middleware:
            mw.on_fires(fires, now)

    def _rearm_fired(self) -> None:
        """Arm each fired cron job at its next fire, unless it was armed or disarmed
        since it fired (an update or a delete wins over the old schedule)."""
        batches, cancelled = self._rearm_pending or [], self._rearm_cancelled
        self._rearm_pending = None
        if self._closing:
            return
        with _cyclic_gc_paused():
            rearm: list[tuple[str, int, object]] = []
            for batch in batches:
                rearm.extend(_next_fires(batch, cancelled))
            if rearm:
                self.driver.arm_many(rearm)

    def _forget_old_unowned(self, now: int) -> None:
        horizon = now - int(self.config.takeover_window * 1000)
        unowned = self._unowned
        while unowned and unowned[0][0] < horizon:
            unowned.popleft()

    def take_over(self) -> int:
        """Queue remembered fires this node now owns (their owner left the ring).

        The claim in the store still decides: a fire its first owner already
        ran is not run again.
        """
        if not self.coordinator.healthy or self.paused:
            return 0
        keep: deque[tuple[int, Fire]] = deque()
        taken = 0
        for seen, fire in self._unowned:
            if self.coordinator.owns(fire[0]):
                self._due.append(fire)
                taken += 1
            else:
                keep.append((seen, fire))
        self._unowned = keep
        if taken:
            self._due_event.set()
        return taken

    def enqueue(self, fires: Iterable[Fire]) -> None:
        self._due.extend(fires)
        self._due_event.set()

    async def _dispatch_loop(self) -> None:
        while True:
            await self._due_event.wait()
            self._due_event.clear()
            batch, self._due = self._due, []
            # A burst goes in chunks, so that the first runs reach the workers while
            # the next ones are still being read and claimed.
            for start in range(0, len(batch), DISPATCH_CHUNK):
                fires = batch[start : start + DISPATCH_CHUNK]
                try:
                    await self._dispatch(fires)
                except Exception:
                    log.exception("dispatch of %d fires failed; they are retried once", len(fires))
                    await asyncio.sleep(0.5)
                    try:
                        await self._dispatch(fires)
                    except Exception:
                        # Kept like unowned fires: a cluster node queues them again when it
                        # is healthy again (take_over; the claim still decides).
                        log.exception("dispatch of %d fires failed again; kept for take-over", len(fires))
                        seen = now_ms()
                        self._unowned.extend((seen, fire) for fire in fires)

    async def _dispatch(self, fires: list[Fire]) -> None:
        jobs = await get_jobs(self.store, list({fire[0] for fire in fires}))
        now = now_ms()
        to_claim: list[tuple[Run, Job]] = []
        for fire in fires:
            job_id, at, trigger, attempt = fire
            job = jobs.get(job_id)
            if job is None or (trigger is Trigger.SCHEDULE and not job.enabled):
                continue
            if trigger is Trigger.SCHEDULE and now - at > self._grace_ms(job):
                if job.misfire is Misfire.SKIP:
                    self._misfired(job, [at])
                    continue
            if self._running.get(job_id, 0) >= concurrency_cap(job):
                self._hold(job, fire, now)
                continue
            self._running[job_id] = self._running.get(job_id, 0) + 1
            to_claim.append((self._new_run(job_id, at, trigger, attempt), job))
        if not to_claim:
            return
        try:
            claimed = {run.run_id for run in await self.store.claim_runs([run for run, _ in to_claim])}
        except BaseException:
            for run, _ in to_claim:  # nothing started: the jobs are not busy
                self._release(run.job_id)
            raise
        stop_delays: list[tuple[str, int, JobState | None]] = []
        for run, job in to_claim:
            if run.run_id in claimed:
                self._start(run, job)
            else:
                self._release(run.job_id)
                if job.exec_type is ExecType.DELAY and run.trigger is not Trigger.MANUAL:
                    stop_delays.append((job.job_id, run.scheduled_at, JobState.STOPPED))
        if stop_delays:
            await self.store.set_last_exec(stop_delays)

    def _hold(self, job: Job, fire: Fire, now: int) -> None:
        """A fire found the job at its concurrency cap: skip it or queue it, as the job says."""
        queued = self._queued.setdefault(job.job_id, deque())
        if job.overlap is Overlap.SKIP or len(queued) >= self.config.max_queued_per_job:
            run = self._new_run(job.job_id, fire[1], fire[2], fire[3])
            run.status = RunStatus.SKIPPED
            run.finished_at = now
            why = "overlap=skip" if job.overlap is Overlap.SKIP else f"{len(queued)} fires already queued"
            run.error = f"skipped: {self._running.get(job.job_id, 0)} run(s) still going ({why})"
            self._record_final(run, job)
            if not queued:
                del self._queued[job.job_id]
        else:
            queued.append(fire)

    def _new_run(self, job_id: str, at: int, trigger: Trigger, attempt: int) -> Run:
        return Run(new_run_id(), job_id, at, trigger=trigger, attempt=attempt, node=self.config.node_id)

    def _request(self, run_id: str, job: Job) -> RunRequest:
        timeout = job.timeout if job.timeout is not None else self.limits.default_timeout
        memory = job.memory_limit if job.memory_limit is not None else self.limits.default_memory_mib
        timeout_ms = int(timeout * 1000)
        return RunRequest(
            run_id=run_id,
            job_id=job.job_id,
            script=job.script,
            timeout_ms=timeout_ms,
            cpu_ms=min(timeout_ms, int(self.limits.cpu_time * 1000)),
            memory_bytes=memory * 1024 * 1024,
            output_bytes=self.limits.output_bytes,
        )

    def _start(self, run: Run, job: Job) -> None:
        run.started_at = now_ms()
        # Followers first: a runner may emit console lines as soon as it has the run.
        for callback in self._job_followers.pop(job.job_id, ()):
            callback(run)
        if self.coordinator.followed_elsewhere(job.job_id):
            self._relayed[run.run_id] = job.job_id
            self.coordinator.relay(job.job_id, "run", codec.run_values(run))
        future = self.libraries.submit(self.runner, self._request(run.run_id, job), partial(self._emit_line, run.run_id))
        future.add_done_callback(partial(self._run_done, run, job))
        for mw in self.middleware:
            mw.on_run_started(run)

    def _emit_line(self, run_id: str, line: ConsoleLine) -> None:
        for listener in self._followers.get(run_id, ()):
            listener(line)
        job_id = self._relayed.get(run_id)
        if job_id is not None:
            self.coordinator.relay(job_id, "line", [run_id, line.ts, line.level, line.text])

    def _run_done(self, run: Run, job: Job, future: asyncio.Future[RunResult]) -> None:
        self._release(job.job_id)
        if future.cancelled():
            run.status, run.error = RunStatus.CRASHED, "the run was cancelled by a shutdown"
            run.finished_at = now_ms()
        else:
            exc = future.exception()
            if exc is not None:
                run.status, run.error, run.finished_at = RunStatus.CRASHED, f"runtime fault: {exc}", now_ms()
            else:
                result = future.result()
                run.status, run.error, run.output = result.status, result.error, result.output
                run.started_at, run.finished_at = result.started_at, result.finished_at
        self._followers.pop(run.run_id, None)
        for watcher in self._done_watchers.pop(run.run_id, ()):
            watcher(run)
        relayed_job = self._relayed.pop(run.run_id, None)
        if relayed_job is not None:
            self.coordinator.relay(relayed_job, "status", codec.run_values(replace(run, output="")))
        self._record_final(run, job)
        if run.status.failed and run.attempt < job.retries and not self._closing:
            self._schedule_retry(run)
        queued = self._queued.get(job.job_id)
        if queued:
            self.enqueue([queued.popleft()])
            if not queued:
                del self._queued[job.job_id]

    def _release(self, job_id: str) -> None:
        left = self._running.get(job_id, 1) - 1
        if left > 0:
            self._running[job_id] = left
        else:
            self._running.pop(job_id, None)

    def _schedule_retry(self, run: Run) -> None:
        delay = min(self.config.retry_base * 2**run.attempt, self.config.retry_cap)
        delay *= 0.5 + random.random() / 2  # jitter keeps retries of many jobs apart
        fire = (run.job_id, run.scheduled_at, Trigger.RETRY, run.attempt + 1)
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def fire_retry() -> None:
            self._retry_handles.discard(handle)
            self.enqueue([fire])

        handle = loop.call_later(delay, fire_retry)
        self._retry_handles.add(handle)

    def _record_final(self, run: Run, job: Job | None) -> None:
        self._finished.append((run, job))
        for mw in self.middleware:
            try:
                mw.on_run_finished(run, job)
            except Exception:
                log.exception("middleware %r failed in on_run_finished", mw)

    # ------------------------------------------------------------------ writing results
    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.flush_interval)
            try:
                await self._flush_finished()
            except Exception:
                log.exception("writing finished runs failed; retrying")

    async def _flush_finished(self) -> None:
        if not self._finished:
            return
        batch, self._finished = self._finished, []
        try:
            await self.store.finish_runs([run for run, _ in batch])
        except Exception:
            self._finished[:0] = batch
            raise
        last: dict[str, tuple[str, int, JobState | None]] = {}
        for run, job in batch:
            if job is None or run.status is RunStatus.SKIPPED:
                continue
            if run.status is RunStatus.MISSED:
                if job.exec_type is ExecType.DELAY:  # its one moment is gone: the job stops
                    last.setdefault(job.job_id, (job.job_id, job.last_exec_time, JobState.STOPPED))  # type: ignore[arg-type]
                continue
            scheduled = run.trigger is not Trigger.MANUAL
            stop = JobState.STOPPED if job.exec_type is ExecType.DELAY and scheduled else None
            when = run.started_at or run.scheduled_at
            previous = last.get(job.job_id)
            if previous is None or (previous[1] or 0) < when:
                if stop is None and previous is not None:
                    stop = previous[2]  # JobState.STOPPED is 0: no `or` here
                last[job.job_id] = (job.job_id, when, stop)
        if last:
            await self.store.set_last_exec(list(last.values()))
            for job_id, _, state in last.values():
                if state is JobState.STOPPED:
                    self.disarm(job_id)

    async def _prune_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.prune_interval)
            try:
                horizon = now_ms() - int(self.limits.runs_kept_days * 86_400_000)
                removed = await self.store.prune_runs(self.limits.runs_kept_per_job, horizon)
                if removed:
                    log.info("pruned %d old runs", removed)
            except Exception:
                log.exception("pruning run history failed")

    # ------------------------------------------------------------------ manual runs
    async def trigger(self, job: Job) -> Run:
        """Run ``job`` now, outside its schedule; the run is recorded like any other."""
        run = self._new_run(job.job_id, now_ms(), Trigger.MANUAL, 0)
        claimed = await self.store.claim_runs([run])
        if not claimed:
            raise RuntimeError("could not record the manual run")
        self._running[job.job_id] = self._running.get(job.job_id, 0) + 1
        self._start(run, job)
        return run

    def follow_run(
        self, run_id: str, listener: LineListener, on_done: Callable[[Run], None] | None = None
    ) -> Callable[[], None]:
        """Receive console lines of a running run, then ``on_done(run)``; returns an unsubscribe function."""
        listeners = self._followers.setdefault(run_id, [])
        listeners.append(listener)
        watchers = self._done_watchers.setdefault(run_id, [])
        if on_done is not None:
            watchers.append(on_done)

        def unsubscribe() -> None:
            if listener in listeners:
                listeners.remove(listener)
            if on_done in watchers:
                watchers.remove(on_done)

        return unsubscribe

    def on_next_run(self, job_id: str, callback: Callable[[Run], None]) -> Callable[[], None]:
        """Call ``callback`` with the next run of ``job_id`` this node starts."""
        callbacks = self._job_followers.setdefault(job_id, [])
        callbacks.append(callback)

        def unsubscribe() -> None:
            if callback in callbacks:
                callbacks.remove(callback)

        return unsubscribe

    def follow_job(
        self,
        job_id: str,
        on_run: Callable[[Run], None],
        on_line: Callable[[Run, ConsoleLine], None],
        on_done: Callable[[Run], None],
    ) -> Callable[[], None]:
        """Follow every run of ``job_id`` that starts from now on, on this node or on
        any other node of the cluster: ``on_run`` as it starts, ``on_line`` for each
        console line, ``on_done`` with its final state. Returns the function that
        stops following."""
        next_run: list[Callable[[], None]] = []
        live: dict[str, Callable[[], None]] = {}  # local runs followed: run id -> stop
        remote: dict[str, Run] = {}  # runs on other nodes, by id

        def done(run: Run) -> None:
            live.pop(run.run_id, None)
            on_done(run)

        def local_run(run: Run) -> None:
            next_run[:] = [self.on_next_run(job_id, local_run)]
            on_run(run)
            live[run.run_id] = self.follow_run(run.run_id, partial(on_line, run), done)

        def remote_event(kind: str, data: Any) -> None:
            if kind == "line":
                run_id, ts, level, text = data
                if run_id in remote:
                    on_line(remote[run_id], ConsoleLine(int(ts), str(level), str(text)))
                return
            run = codec.run_from_row(data)
            if kind == "run":
                remote[run.run_id] = run
                on_run(run)
            elif kind == "status" and remote.pop(run.run_id, None) is not None:
                on_done(run)

        next_run.append(self.on_next_run(job_id, local_run))
        stop_remote = self.coordinator.follow(job_id, remote_event)

        def stop() -> None:
            for step in [*next_run, *live.values(), stop_remote]:
                step()

        return stop

    def debug(self, job: Job, listener: LineListener, script: str | None = None) -> tuple[str, asyncio.Future[RunResult]]:
        """Run a script now, streaming console lines to ``listener``; nothing is stored.

        Returns the run id (for :meth:`cancel_debug`) and the result future.
        """
        request = self._request(f"debug-{new_id()}", job)
        if script is not None:
            request.script = script
        return request.run_id, self.libraries.submit(self.runner, request, listener)

    def cancel_debug(self, run_id: str) -> None:
        self.libraries.cancel(self.runner, run_id)

    # ------------------------------------------------------------------ cluster
    async def _on_remote_change(self, job_id: str, version: int) -> None:
        if job_id == SERVICE_KEY:
            self.paused = await self.store.kv_get(SERVICE_KEY, "paused") == "1"
            log.info("service %s by another node", "paused" if self.paused else "resumed")
            return
        if job_id.startswith(LIBRARY_KEY_PREFIX):
            await self.libraries.invalidate(job_id[len(LIBRARY_KEY_PREFIX) :])
            return
        await self.refresh_job(job_id)

    async def set_paused(self, paused: bool) -> None:
        """Pause or resume firing on every node; the state survives restarts.

        While paused, due fires are dropped (not queued): resuming does not
        replay them. Manual triggers and debug runs still work.
        """
        await self.store.kv_set(SERVICE_KEY, "paused", "1" if paused else "0")
        self.paused = paused
        await self.coordinator.publish(SERVICE_KEY, int(paused))
        log.info("service %s", "paused" if paused else "resumed")

    async def refresh_job(self, job_id: str) -> Job | None:
        """Re-read a job from the store and arm or disarm it to match."""
        job = await self.store.get_job(job_id)
        if job is None or not job.enabled:
            self.disarm(job_id)
        else:
            self.arm(job)
        return job

    async def reconcile(self, versions: dict[str, int]) -> int:
        """Cluster mode: refresh every job whose ``{job_id: version}`` in the store (enabled
        jobs only) differs from the version armed here; return how many were refreshed.

        Catches changes whose pub/sub message was lost. Each candidate is re-read, so a
        job changed after ``versions`` was read is armed as it is now.
        """
        armed = self._versions
        if armed is None:
            return 0
        stale = [job_id for job_id, version in versions.items() if armed.get(job_id) != version]
        stale += [job_id for job_id in armed if job_id not in versions]
        for start in range(0, len(stale), 1000):
            chunk = stale[start : start + 1000]
            jobs = await get_jobs(self.store, chunk)
            for job_id in chunk:
                job = jobs.get(job_id)
                if job is None or not job.enabled:
                    self.disarm(job_id)
                else:
                    self.arm(job)
        return len(stale)

    # ------------------------------------------------------------------ stats
    @property
    def armed(self) -> int:
        return len(self.wheel)

    @property
    def running(self) -> int:
        return sum(self._running.values())
