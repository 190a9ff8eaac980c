"""The cost of a script library: a run that loads one cached library vs. a run without.

    .venv/bin/python bench/library_bench.py [--runs 5000] [--rounds 5] [--pool 4000]

Three measurements; each variant's figure is its fastest of ``--rounds`` interleaved
rounds (the round least disturbed by the rest of a shared machine), in CPU time where
the run is in this process:

1. **worker side** (the figure the target is about): a run in a worker's sandbox —
   fresh QuickJS context, prelude, script — with the library's compiled definition
   taken from the worker's cache, versus the same run without the library. The
   library run also pays for the prelude's ``require`` part, which a run without
   ``require`` never loads: that is part of the price of a library.
2. **main process**: ``LibraryResolver.submit`` for a script whose library is cached
   (scan cache hit, snapshot look-up, request filled in) versus a script without
   libraries, with a runner that does nothing.
3. **through the pool** (``--pool N``, 0 to skip): N runs through a one-worker
   ``WorkerPool`` each way, wall-clock µs per run (IPC included; noisier).

Prints "extra time per run with one cached library: … µs (target < 50 µs)".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from traitor.domain.job import RunStatus
from traitor.domain.library import LibraryVersion
from traitor.runtime import sandbox
from traitor.runtime.abc import RunRequest, RunResult, ScriptRunner
from traitor.runtime.pool import WorkerPool
from traitor.scheduler.libraries import LibraryResolver, prepare_library

LIBRARY = """
exports.pad = function pad(n, width) {
  var s = String(n);
  while (s.length < width) s = "0" + s;
  return s;
};
exports.stamp = function stamp(d) {
  return d.getUTCFullYear() + "-" + exports.pad(d.getUTCMonth() + 1, 2) + "-" + exports.pad(d.getUTCDate(), 2);
};
"""
WITHOUT = "var day = new Date(0).getUTCDate();"
WITH = "var fmt = require('lib/fmt'); var day = new Date(0).getUTCDate();"


def cpu_us(fn: Callable[[], None], runs: int) -> float:
    """CPU µs per call of ``fn`` (this thread's CPU clock: other processes on the machine
    slow the wall clock, not this)."""
    start = time.thread_time()
    for _ in range(runs):
        fn()
    return (time.thread_time() - start) / runs * 1e6


def best_of(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    """The fastest round of each variant: the least disturbed by the rest of the machine."""
    return min(p[0] for p in pairs), min(p[1] for p in pairs)


# --------------------------------------------------------------------------- worker side


def worker_side(runs: int, rounds: int) -> tuple[float, float, bool]:
    hooks = sandbox.native()
    prelude = sandbox.Prelude({}, hooks)
    code = prepare_library(LibraryVersion("fmt", 1, LIBRARY, 0)).code
    libs = ([prelude.library("fmt", 1, code)], json.dumps({"lib/fmt": "fmt@1"}))
    seq = [0]

    def one(script: str, libraries: Any) -> Callable[[], None]:
        def run() -> None:
            seq[0] += 1
            sb = sandbox.Sandbox(seq[0], script, 10_000, 10_000, 64 << 20, 64 << 10, prelude, libraries)
            sb.begin()
            while sb.done is None:
                sb.step()
            if sb.done[0] != sandbox.SUCCESS:
                raise SystemExit(f"run failed: {sb.done}")

        return run

    plain, loaded = one(WITHOUT, None), one(WITH, libs)
    for fn in (plain, loaded):
        for _ in range(200):  # warm up
            fn()
    # Interleave short rounds so that drift of the machine hits both alike.
    pairs = [(cpu_us(plain, runs), cpu_us(loaded, runs)) for _ in range(rounds)]
    return (*best_of(pairs), hooks is not None)


# --------------------------------------------------------------------------- main process


from traitor.runtime.instant import InstantRunner as NullRunner  # noqa: E402


async def main_process(runs: int, rounds: int) -> tuple[float, float]:
    from traitor.store.sqlite import SqliteStore

    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "bench.db")
        await store.start()
        try:
            await store.add_library_version("fmt", LIBRARY)
            resolver, runner = LibraryResolver(store), NullRunner()
            await resolver.submit(runner, RunRequest("warm", "bench", WITH))  # fills the caches
            # A job's script arrives as a new string object each time (read from the store).
            with_text, without_text = "".join(list(WITH)), "".join(list(WITHOUT))

            def submit(script: str) -> Callable[[], None]:
                def go() -> None:
                    future = resolver.submit(runner, RunRequest("r", "bench", script[:]))
                    assert future.done()

                return go

            pairs = [(cpu_us(submit(without_text), runs * 4), cpu_us(submit(with_text), runs * 4))
                     for _ in range(rounds)]
            assert resolver.stats["fetched"] == 1, resolver.stats
            return best_of(pairs)
        finally:
            await store.close()


# --------------------------------------------------------------------------- through the pool


def _cpu_seconds(pid: int) -> float:
    """user + system CPU of a live process, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def through_pool(runs: int, rounds: int) -> tuple[float, float, float, float]:
    """Wall-clock µs per run, and the worker's CPU µs per run, without and with the library."""
    pool = WorkerPool(1)
    await pool.start()
    code = prepare_library(LibraryVersion("fmt", 1, LIBRARY, 0)).code
    pid = pool.worker_pids()[0]
    try:
        async def batch(script: str, libraries: Any, n: int) -> tuple[float, float]:
            cpu = _cpu_seconds(pid)
            start = time.perf_counter()
            futures = [pool.submit(RunRequest(f"{id(script)}-{i}-{time.perf_counter_ns()}", "bench", script,
                                              libraries=libraries)) for i in range(n)]
            results = await asyncio.gather(*futures)
            wall = time.perf_counter() - start
            bad = [r for r in results if r.status is not RunStatus.SUCCESS]
            if bad:
                raise SystemExit(f"{len(bad)} runs failed: {bad[0].error}")
            return wall / n * 1e6, (_cpu_seconds(pid) - cpu) / n * 1e6

        libs = {"lib/fmt": (1, code)}
        await batch(WITHOUT, None, 300)
        await batch(WITH, libs, 300)
        a, b = [], []
        for _ in range(rounds):
            a.append(await batch(WITHOUT, None, runs))
            b.append(await batch(WITH, libs, runs))
        return (min(x[0] for x in a), min(x[0] for x in b), min(x[1] for x in a), min(x[1] for x in b))
    finally:
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=500, help="runs per round (in process)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--pool", type=int, default=3000, help="runs per round through a WorkerPool (0: skip)")
    args = parser.parse_args()

    plain, loaded, hooked = worker_side(args.runs, args.rounds)
    print(f"worker side ({'native hooks' if hooked else 'no native hooks'}), µs per run:")
    print(f"  without a library      {plain:8.1f}")
    print(f"  with one cached library {loaded:7.1f}   (+{loaded - plain:.1f})")

    r_plain, r_loaded = asyncio.run(main_process(args.runs, args.rounds))
    print("main process (LibraryResolver.submit, null runner), µs per run:")
    print(f"  without a library      {r_plain:8.2f}")
    print(f"  with one cached library {r_loaded:7.2f}   (+{r_loaded - r_plain:.2f})")

    extra = (loaded - plain) + (r_loaded - r_plain)
    if args.pool:
        p_plain, p_loaded, c_plain, c_loaded = asyncio.run(through_pool(args.pool, args.rounds))
        print("through a one-worker pool, µs per run: wall clock (IPC included) | worker CPU:")
        print(f"  without a library      {p_plain:8.1f} | {c_plain:6.1f}")
        print(f"  with one cached library {p_loaded:7.1f} | {c_loaded:6.1f}   (+{p_loaded - p_plain:.1f} | "
              f"+{c_loaded - c_plain:.1f})")
    print(f"extra time per run with one cached library: {extra:.1f} µs (target < 50 µs)")


if __name__ == "__main__":
    main()
