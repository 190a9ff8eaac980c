"""Prometheus metrics, fed by an engine middleware and scraped at ``/metrics``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from traitor.scheduler.middleware import Middleware

if TYPE_CHECKING:
    from traitor.domain.job import Job, Run
    from traitor.scheduler.engine import Engine


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

    def on_fire(self, job_id: str, scheduled_at: int, lateness_ms: int) -> None:
        self.fires.inc()
        self.lateness.observe(max(lateness_ms, 0) / 1000)

    def on_run_started(self, run: Run) -> None:
        self.started.inc()

    def on_run_finished(self, run: Run, job: Job | None) -> None:
        self.runs.labels(run.status.value).inc()
        if run.started_at and run.finished_at:
            self.duration.observe((run.finished_at - run.started_at) / 1000)

    def on_job_changed(self, job_id: str, job: Job | None) -> None:
        self.job_changes.inc()

    def refresh(self, engine: Engine) -> None:
        self.armed.set(engine.armed)
        self.running.set(engine.running)
        self.queue.set(engine.runner.queued)
        self.busy.set(engine.runner.busy)
        self.members.set(len(engine.coordinator.members()))
