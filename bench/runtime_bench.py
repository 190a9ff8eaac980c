"""Throughput of the script runtime: trivial runs per second through the WorkerPool.

    .venv/bin/python bench/runtime_bench.py [--runs 20000] [--workers 1,2] [--script 'var x = 1+1;']

Submits ``--runs`` runs at once and awaits them all, for each worker count, and
compares with the in-process reference: a fresh ``quickjs.Context()`` + ``eval`` in a
loop in this process (no limits, no prelude, no console, no IPC). CPU time per run
(this process and the workers) is printed too, with the rate that CPU cost allows
on otherwise idle cores: on a shared machine it says more than the wall-clock rate.
The load average is printed for the same reason.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time

import quickjs

from traitor.domain.job import RunStatus
from traitor.runtime.abc import RunRequest
from traitor.runtime.pool import WorkerPool


def reference(script: str, runs: int) -> tuple[float, float]:
    """Runs/s and CPU µs per run of a bare context-per-run loop in this process."""
    cpu = time.process_time()
    start = time.perf_counter()
    for _ in range(runs):
        ctx = quickjs.Context()
        ctx.eval(script)
        del ctx
    wall = time.perf_counter() - start
    return runs / wall, (time.process_time() - cpu) / runs * 1e6


async def through_pool(workers: int, script: str, runs: int) -> tuple[float, float, float]:
    """Runs/s, parent CPU µs/run and worker CPU µs/run through a WorkerPool."""
    pool = WorkerPool(workers)
    await pool.start()
    try:
        warm = [pool.submit(RunRequest(f"warm-{i}", "bench", script)) for i in range(500)]
        await asyncio.gather(*warm)
        parent0 = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        futures = [pool.submit(RunRequest(f"run-{i}", "bench", script)) for i in range(runs)]
        results = await asyncio.gather(*futures)
        wall = time.perf_counter() - start
        parent1 = resource.getrusage(resource.RUSAGE_SELF)
        worker_cpu = sum(_cpu_seconds(pid) for pid in pool.worker_pids())
    finally:
        await pool.close()
    bad = [r for r in results if r.status is not RunStatus.SUCCESS]
    if bad:
        raise SystemExit(f"{len(bad)} runs failed, e.g. {bad[0].status.value}: {bad[0].error}")
    parent_cpu = (parent1.ru_utime + parent1.ru_stime) - (parent0.ru_utime + parent0.ru_stime)
    return runs / wall, parent_cpu / runs * 1e6, worker_cpu / (runs + 500) * 1e6


def _cpu_seconds(pid: int) -> float:
    """user + system CPU of a live process, from /proc (Linux)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--script", default="var x = 1+1;")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",") if n.strip()]

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"script {args.script!r}, {args.runs} runs per measurement")
    ref_rate, ref_cpu = reference(args.script, args.runs)
    print(f"reference (in-process Context+eval loop): {ref_rate:8.0f} runs/s   {ref_cpu:6.1f} µs CPU/run")
    for workers in counts:
        rate, parent_cpu, worker_cpu = asyncio.run(through_pool(workers, args.script, args.runs))
        cpus = os.cpu_count() or 1
        # what the CPU cost allows if nothing else ran here: workers are single-threaded
        ceiling = min(workers / worker_cpu, cpus / (parent_cpu + worker_cpu)) * 1e6
        print(
            f"WorkerPool, {workers} worker{'s' if workers > 1 else ' '}:                  {rate:8.0f} runs/s"
            f"   {parent_cpu:6.1f} µs CPU/run in the pool + {worker_cpu:6.1f} in workers"
            f"   ratio to reference {rate / ref_rate:5.2f}   CPU-bound ceiling {ceiling:6.0f} runs/s"
        )
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
