"""Cluster benchmark: fire throughput with 1 and 3 nodes, and take-over time after a kill -9.

    .venv/bin/python bench/cluster_bench.py [--jobs 2000] [--seconds 10] [--workers 2] [--json]

Needs ``redis-server`` on the PATH (a private instance is started on a free port) and
PostgreSQL at ``$TRAITOR_TEST_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``).
Each phase uses a fresh cluster name, so its own schema, dropped at the end.

Phases
------
1. ``throughput-1``: ``--jobs`` jobs firing every second (``* * * * * *``,
   ``console.log(1)``) on one node. Jobs are written straight into the store, stopped,
   before the node starts (creating them over HTTP is not what is measured), then
   enabled in the store once the nodes run, without any announcement: the nodes'
   periodic reconciliation arms them. After a warm-up, the run rows of each whole
   second of the measuring window are counted in PostgreSQL: fires/s (rows per
   second), coverage (rows / expected) and the start lateness
   (``started_at - scheduled_at``) percentiles. A lateness that grows through the
   window means the nodes cannot keep up with that rate.
2. ``throughput-3``: the same with three nodes (per-node split reported).
3. ``takeover``: three nodes; one is ``kill -9``-ed. Reported: seconds from the kill
   until the dead node's jobs ran again on the survivors (first and last fire
   that was taken over), the largest lateness of any fire of the window
   (the take-over figure), and how many fires of the window have no run.

All processes share this machine: with few CPUs, three nodes plus PostgreSQL and
Redis compete for the same cores, so the 3-node figure shows correctness of the
split more than scaling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

PG_URL = os.environ.get("TRAITOR_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Redis:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


class Node:
    def __init__(self, name: str, workdir: Path, redis_url: str, cluster: str, workers: int) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        data = workdir / cluster / name
        data.mkdir(parents=True, exist_ok=True)
        self.log_path = data / "node.out"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "traitor", "-m", "multi", "-r", redis_url, "--store", PG_URL, "-c", cluster,
             "-p", str(self.port), "--data-dir", str(data), "--workers", str(workers), "--node-id", name,
             "--timezone", "UTC", "--log-level", "warning"],
            stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready in {timeout}s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


async def seed_jobs(cluster: str, count: int) -> list[str]:
    """Write ``count`` stopped every-second jobs straight into the store."""
    from traitor.domain.job import ExecType, Job, JobState, new_id
    from traitor.store import open_store

    store = open_store(PG_URL, namespace=cluster)
    await store.start()
    ids = []
    try:
        for i in range(count):
            job = Job(job_id=new_id(), exec_type=ExecType.TIMING, name=f"bench-{i}", cron="* * * * * *",
                      script="console.log(1)", state=JobState.STOPPED, timezone="UTC")
            await store.add_job(job)
            ids.append(job.job_id)
    finally:
        await store.close()
    return ids


async def enable_jobs(cluster: str, ids: list[str]) -> None:
    """Enable the jobs in the store only, without any announcement: the running nodes
    pick them up through their periodic reconciliation (within 5 s), and arm them from
    now, so there is no start-up backlog of past fires in what is measured."""
    from traitor.domain.job import JobState
    from traitor.domain.timeutil import now_ms
    from traitor.store import open_store

    store = open_store(PG_URL, namespace=cluster)
    await store.start()
    try:
        for job_id in ids:
            job = await store.get_job(job_id)
            assert job is not None
            await store.update_job(job.replace(state=JobState.RUNNABLE, version=job.version + 1, updated_at=now_ms()))
    finally:
        await store.close()


def schema_of(cluster: str) -> str:
    from traitor.store.codec import namespace_token

    return f"traitor_{namespace_token(cluster)}"


async def query(sql: str, *args: Any) -> list[Any]:
    import asyncpg

    conn = await asyncpg.connect(PG_URL)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


def percentile(values: list[int], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


async def window_stats(cluster: str, first_ms: int, last_ms: int, jobs: int) -> dict[str, Any]:
    schema = schema_of(cluster)
    per_second = await query(
        f'SELECT scheduled_at, count(*) AS n FROM "{schema}".runs WHERE scheduled_at BETWEEN $1 AND $2 '
        "GROUP BY scheduled_at ORDER BY scheduled_at", first_ms, last_ms)
    per_node = await query(
        f'SELECT node, count(*) AS n FROM "{schema}".runs WHERE scheduled_at BETWEEN $1 AND $2 GROUP BY node',
        first_ms, last_ms)
    late = [r["late"] for r in await query(
        f'SELECT started_at - scheduled_at AS late FROM "{schema}".runs '
        "WHERE scheduled_at BETWEEN $1 AND $2 AND started_at IS NOT NULL", first_ms, last_ms)]
    trend = await query(
        f'SELECT scheduled_at, percentile_disc(0.5) WITHIN GROUP (ORDER BY started_at - scheduled_at) AS p50 '
        f'FROM "{schema}".runs WHERE scheduled_at IN ($1, $2) AND started_at IS NOT NULL GROUP BY scheduled_at '
        "ORDER BY scheduled_at", first_ms, last_ms)
    seconds = (last_ms - first_ms) // 1000 + 1
    rows = sum(r["n"] for r in per_second)
    return {
        "seconds": seconds,
        "expected_fires": seconds * jobs,
        "runs": rows,
        "fires_per_second": round(rows / seconds, 1),
        "coverage": round(rows / (seconds * jobs), 4),
        "min_second": min((r["n"] for r in per_second), default=0),
        "lateness_ms": {"p50": percentile(late, 0.5), "p99": percentile(late, 0.99), "max": max(late, default=0)},
        # runs that started within 1 s of their instant, per measured second
        "on_time_per_second": round(sum(1 for x in late if x <= 1000) / seconds, 1),
        "per_node": {r["node"]: r["n"] for r in per_node},
        # p50 lateness of the window's first and last second: growing = falling behind
        "lateness_p50_first_last_ms": [r["p50"] for r in trend],
    }


def start_cluster(workdir: Path, redis: Redis, cluster: str, count: int, workers: int) -> list[Node]:
    nodes = [Node(f"node{i + 1}", workdir, redis.url, cluster, workers) for i in range(count)]
    for node in nodes:
        node.wait_ready()
    return nodes


def throughput(workdir: Path, redis: Redis, node_count: int, args: argparse.Namespace) -> dict[str, Any]:
    cluster = f"bench_{node_count}_{uuid.uuid4().hex[:8]}"
    ids = asyncio.run(seed_jobs(cluster, args.jobs))
    nodes = start_cluster(workdir, redis, cluster, node_count, args.workers)
    try:
        asyncio.run(enable_jobs(cluster, ids))
        time.sleep(args.warmup)
        first = int(time.time()) + 1
        time.sleep(args.seconds + 1.5)
        last = first + args.seconds - 1
    finally:
        for node in nodes:
            node.stop()
    try:
        return asyncio.run(window_stats(cluster, first * 1000, last * 1000, args.jobs))
    finally:
        asyncio.run(query(f'DROP SCHEMA IF EXISTS "{schema_of(cluster)}" CASCADE'))


def takeover(workdir: Path, redis: Redis, args: argparse.Namespace) -> dict[str, Any]:
    cluster = f"bench_to_{uuid.uuid4().hex[:8]}"
    jobs = args.takeover_jobs
    ids = asyncio.run(seed_jobs(cluster, jobs))
    nodes = start_cluster(workdir, redis, cluster, 3, args.workers)
    schema = schema_of(cluster)
    try:
        asyncio.run(enable_jobs(cluster, ids))
        time.sleep(args.warmup)
        victim = nodes[2]
        killed_at = time.time()
        victim.stop(signal.SIGKILL)
        time.sleep(12)
        end = time.time()
    finally:
        for node in nodes:
            node.stop()
    try:
        kill_ms = int(killed_at * 1000)
        owned = {r["job_id"] for r in asyncio.run(query(
            f'SELECT DISTINCT job_id FROM "{schema}".runs WHERE node = $1 AND scheduled_at BETWEEN $2 AND $3',
            victim.name, kill_ms - 3000, kill_ms - 1))}
        rows = asyncio.run(query(
            f'SELECT job_id, scheduled_at, started_at, node FROM "{schema}".runs '
            "WHERE scheduled_at > $1 AND scheduled_at <= $2", kill_ms, int(end * 1000) - 2000))
        taken = [r for r in rows if r["job_id"] in owned and r["node"] != victim.name and r["started_at"]]
        first_taken = min((r["started_at"] for r in taken), default=None)
        last_taken_late = max((r["started_at"] for r in taken if r["started_at"] - r["scheduled_at"] > 1000),
                              default=None)
        window_first = (kill_ms // 1000 + 1) * 1000
        window_last = (int(end * 1000) - 2000) // 1000 * 1000
        expected = ((window_last - window_first) // 1000 + 1) * jobs
        return {
            "jobs": jobs,
            "victim_jobs": len(owned),
            "first_takeover_after_kill_s": None if first_taken is None else round((first_taken - kill_ms) / 1000, 2),
            "last_late_takeover_after_kill_s": None if last_taken_late is None
            else round((last_taken_late - kill_ms) / 1000, 2),
            "max_lateness_s": round(max((r["started_at"] - r["scheduled_at"] for r in rows if r["started_at"]),
                                        default=0) / 1000, 2),
            "fires_expected": expected,
            "fires_missing": expected - len({(r["job_id"], r["scheduled_at"]) for r in rows
                                             if window_first <= r["scheduled_at"] <= window_last}),
        }
    finally:
        asyncio.run(query(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000, help="jobs firing every second (throughput phases)")
    parser.add_argument("--takeover-jobs", type=int, default=300, help="jobs of the take-over phase")
    parser.add_argument("--seconds", type=int, default=10, help="measured seconds per throughput phase")
    parser.add_argument("--warmup", type=float, default=8.0,
                        help="seconds between enabling the jobs and measuring (reconciliation arms them within 5 s)")
    parser.add_argument("--workers", type=int, default=2, help="script workers per node")
    parser.add_argument("--phases", default="throughput-1,throughput-3,takeover")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="traitor-cluster-bench-"))
    redis = Redis(workdir)
    results: dict[str, Any] = {"jobs": args.jobs, "workers_per_node": args.workers, "cpus": os.cpu_count()}
    try:
        for phase in args.phases.split(","):
            if phase == "throughput-1":
                results[phase] = throughput(workdir, redis, 1, args)
            elif phase == "throughput-3":
                results[phase] = throughput(workdir, redis, 3, args)
            elif phase == "takeover":
                results[phase] = takeover(workdir, redis, args)
            else:
                parser.error(f"unknown phase {phase!r}")
            if not args.json:
                print(f"{phase}: {json.dumps(results[phase])}", flush=True)
    finally:
        redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
