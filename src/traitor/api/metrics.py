"""Prometheus metrics, fed by an engine middleware and scraped at ``/metrics``."""

from __future__ import annotations

from collections import Counter as Tally
from operator import itemgetter
from typing import TYPE_CHECKING, Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from traitor.scheduler.middleware import Middleware

if TYPE_CHECKING:
    from traitor.domain.job import Job, Run
    from traitor.scheduler.engine import Engine
    from traitor.scheduler.middleware import Fire

_SCHEDULED_AT = itemgetter(1)


class MetricsMiddleware(Middleware):
    """Counts fires and runs; gauges are read from the engine at scrape time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.fires = Counter("traitor_fires", "Fires handed over by the timing wheel", registry=r)
        self.lateness = Histogram(
            "traitor_fire_lateness_seconds", "Dispatch time minus scheduled instant", registry=r,
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60),
        )
        self.runs = Counter("traitor_runs", "Finished runs by status", ["status"], registry=r)
        self.duration = Histogram(
            "traitor_run_duration_seconds", "Run durations", registry=r,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300),
        )
        self.started = Counter("traitor_runs_started", "Runs handed to the runtime", registry=r)
        self.job_changes = Counter("traitor_job_changes", "Jobs created, changed or deleted on this node",
                                   registry=r)
        self.armed = Gauge("traitor_jobs_armed", "Jobs armed on the timing wheel", registry=r)
        self.running = Gauge("traitor_runs_running", "Runs in progress on this node", registry=r)
        self.queue = Gauge("traitor_runtime_queue_depth", "Runs waiting for a worker", registry=r)
        self.busy = Gauge("traitor_workers_busy", "Runs executing in workers", registry=r)
        self.members = Gauge("traitor_cluster_members", "Live nodes this node sees", registry=r)
        self.store_latency = Histogram("traitor_store_ping_seconds", "Store round trip at scrape", registry=r)
        # Per-event hooks run on the hot paths: they only count; refresh() (at scrape
        # time) folds the counts into the Prometheus metrics above.
        self._pending_fires: dict[int, int] = {}  # lateness (ms) -> fires not yet folded in
        self._pending_runs: dict[tuple[str, int | None], int] = {}  # (status, duration ms) -> runs
        self._pending_started = 0

    def on_fires(self, fires: Sequence[Fire], handed_at: int) -> None:
        # Fires come in bursts of thousands sharing one lateness: count them per
        # lateness here (counted in C, then a dict update per instant) and fold the counts
        # into the Prometheus metrics at scrape time (refresh), instead of two locked
        # metric updates per fire (~2.5 µs) inside the burst. Scrapes see the same values.
        pending = self._pending_fires
        if fires and fires[0][1] == fires[-1][1]:  # the usual batch: one instant (they are in order)
            counts: Iterable[tuple[int, int]] = ((fires[0][1], len(fires)),)
        else:
            counts = Tally(map(_SCHEDULED_AT, fires)).items()
        for at, count in counts:
            lateness_ms = handed_at - at
            pending[lateness_ms] = pending.get(lateness_ms, 0) + count
        if len(pending) > 1024:
            self._fold_fires()

    def _fold_fires(self) -> None:
        pending, self._pending_fires = self._pending_fires, {}
        total = 0
        for lateness_ms, count in pending.items():
            total += count
            _observe_many(self.lateness, max(lateness_ms, 0) / 1000, count)
        if total:
            self.fires.inc(total)

    def on_run_started(self, run: Run) -> None:
        self._pending_started += 1  # folded in at scrape time, as fires are

    def on_run_finished(self, run: Run, job: Job | None) -> None:
        # Counted per (status, duration in ms) and folded in at scrape time, as fires are.
        duration = run.finished_at - run.started_at if run.started_at and run.finished_at else None
        key = (run.status.value, duration)
        pending = self._pending_runs
        pending[key] = pending.get(key, 0) + 1
        if len(pending) > 1024:
            self._fold_runs()

    def _fold_runs(self) -> None:
        pending, self._pending_runs = self._pending_runs, {}
        for (status, duration), count in pending.items():
            self.runs.labels(status).inc(count)
            if duration is not None:
                _observe_many(self.duration, duration / 1000, count)
        started, self._pending_started = self._pending_started, 0
        if started:
            self.started.inc(started)

    def on_job_changed(self, job_id: str, job: Job | None) -> None:
        self.job_changes.inc()

    def refresh(self, engine: Engine) -> None:
        self._fold_fires()
        self._fold_runs()
        self.armed.set(engine.armed)
        self.running.set(engine.running)
        self.queue.set(engine.runner.queued)
        self.busy.set(engine.runner.busy)
        self.members.set(len(engine.coordinator.members()))


def _observe_many(histogram: Histogram, amount: float, count: int) -> None:
    """``histogram.observe(amount)`` ``count`` times, as one update of the sum and one bucket."""
    buckets = getattr(histogram, "_buckets", None)
    bounds = getattr(histogram, "_upper_bounds", None)
    total = getattr(histogram, "_sum", None)
    if buckets is None or bounds is None or total is None:  # another prometheus_client layout
        for _ in range(count):
            histogram.observe(amount)
        return
    total.inc(amount * count)
    for i, bound in enumerate(bounds):
        if amount <= bound:
            buckets[i].inc(count)
            break
