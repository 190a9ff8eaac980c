"""Micro-benchmark of the timing wheel against a plain heapq + dict baseline.

    .venv/bin/python bench/wheel_bench.py            # full: 1,000,000 entries
    .venv/bin/python bench/wheel_bench.py --quick    # 100,000 entries, no driver run
    .venv/bin/python bench/wheel_bench.py --json     # also print one JSON document

Figures (same process, same data, both structures; CPU time of this process,
so that other load on the machine does not inflate them):
* arms/s: ``arm()`` one call per entry, and the ``arm_many()`` fast path (the
  baseline's "arm_many" is the same loop); instants spread over the next 24 h
  (nearly all distinct) and cron-like (whole seconds over the next hour);
* bytes per entry at N entries, beyond the key strings (keys are created before
  measuring; the instants are created while arming, so their int objects count):
  tracemalloc and RSS delta, each measured in a fresh child process;
* disarm/s;
* advance() over a burst of 10,000 entries due on the same ms, inside a structure
  holding N other entries: once the wheel's cascades are done (what a driver that
  wakes at every next_deadline() sees), the wheel's deferred clean-up apart; a
  cron cycle (burst, every key re-armed a second later, clean-up); and alone, as
  one jump from an hour before (cascades included);
* fires spread evenly (10 per ms), advanced every ms: fires/s of advance();
* optionally the WheelDriver on a real loop: dispatch lateness of bursts.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import heapq
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

try:
    from traitor.scheduler.wheel import TimingWheel, WheelDriver
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from traitor.scheduler.wheel import TimingWheel, WheelDriver

# CPU time of this process: other load on the machine (parallel test suites on two
# cores) does not inflate the figures, only a busy loop's own work counts
cpu = time.process_time

NOW = 1_733_356_800_000
HOUR = 3_600_000
DAY = 24 * HOUR
BURST = 10_000


class HeapBaseline:
    """The obvious alternative: a heap of (when, seq, key) with lazy deletion plus a
    dict key -> (when, seq, payload). Same API subset as TimingWheel."""

    __slots__ = ("_entries", "_heap", "_seq")

    def __init__(self, now_ms: int) -> None:
        self._entries: dict[str, tuple[int, int, object]] = {}
        self._heap: list[tuple[int, int, str]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._entries)

    def arm(self, key: str, when_ms: int, payload: object = None) -> None:
        seq = next(self._seq)
        self._entries[key] = (when_ms, seq, payload)
        heapq.heappush(self._heap, (when_ms, seq, key))

    def arm_many(self, items) -> int:
        entries, heap, seq, push = self._entries, self._heap, self._seq, heapq.heappush
        n = 0
        for key, when, payload in items:
            s = next(seq)
            entries[key] = (when, s, payload)
            push(heap, (when, s, key))
            n += 1
        return n

    def disarm(self, key: str) -> bool:
        return self._entries.pop(key, None) is not None

    def advance(self, now_ms: int):
        out = []
        heap, entries, pop = self._heap, self._entries, heapq.heappop
        while heap and heap[0][0] <= now_ms:
            when, seq, key = pop(heap)
            entry = entries.get(key)
            if entry is not None and entry[1] == seq:
                del entries[key]
                out.append((when, key, entry[2]))
        return out


STRUCTURES = {"wheel": TimingWheel, "heap": HeapBaseline}


def make_keys(n: int) -> list[str]:
    return [f"job-{i:08d}" for i in range(n)]


def spread_whens(n: int, seed: int = 1) -> list[int]:
    rnd = random.Random(seed)
    return [NOW + 1 + rnd.randrange(DAY) for _ in range(n)]


def cron_whens(n: int, seed: int = 2) -> list[int]:
    rnd = random.Random(seed)
    return [NOW + 1000 * rnd.randrange(1, 3600) for _ in range(n)]


def rss_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


# ---------------------------------------------------------------------- memory child


def memory_child(kind: str, n: int, payload_kind: str, method: str) -> dict:
    keys = make_keys(n)
    # offsets are created before measuring; each NOW + off below allocates the
    # entry's own int object while measuring, as a real arm would
    offsets = [w - NOW for w in spread_whens(n)]
    payload = None if payload_kind == "none" else object()
    gc.collect()
    if method == "tracemalloc":
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
    else:
        base = rss_bytes()
    s = STRUCTURES[kind](NOW)
    arm = s.arm
    for key, off in zip(keys, offsets):
        arm(key, NOW + off, payload)  # the instant's int object is allocated now
    gc.collect()
    if method == "tracemalloc":
        used = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
    else:
        used = rss_bytes() - base
    assert len(s) == n
    return {"bytes": used, "per_entry": used / n}


def measure_memory(kind: str, n: int, payload_kind: str, method: str) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--child-memory", kind, str(n), payload_kind, method],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)["per_entry"]


# ---------------------------------------------------------------------- timings


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        times.append(fn())
    return min(times)


def time_arms(kind: str, keys: list[str], whens: list[int], fast: bool) -> float:
    """Seconds to arm every key (gc enabled, as in production)."""
    s = STRUCTURES[kind](NOW)
    gc.collect()
    t0 = cpu()
    if fast:
        s.arm_many(zip(keys, whens, itertools.repeat(None)))
    else:
        arm = s.arm
        for key, when in zip(keys, whens):
            arm(key, when)
    elapsed = cpu() - t0
    assert len(s) == len(keys)
    del s
    gc.collect()
    return elapsed


def time_disarms(kind: str, keys: list[str], whens: list[int]) -> float:
    s = STRUCTURES[kind](NOW)
    s.arm_many(zip(keys, whens, itertools.repeat(None)))
    disarm = s.disarm
    t0 = cpu()
    for key in keys:
        disarm(key)
    elapsed = cpu() - t0
    assert len(s) == 0
    return elapsed


def _flush(s) -> None:
    flush = getattr(s, "flush", None)  # the wheel defers index deletions to flush()
    if flush is not None:
        flush()


def burst_figures(kind: str, keys: list[str], whens: list[int], repeat: int) -> dict:
    """advance() over BURST entries due on one ms.

    settled: among len(keys) other entries, after advancing to the previous ms (the
    wheel's cascades are then done, as for a driver waking at every next_deadline());
    the wheel's deferred index clean-up (flush(), which the driver runs after on_due)
    is timed apart. cron cycle: the same burst, then every key re-armed one second
    later with a payload (what the engine's on_due does), then the clean-up.
    jump: alone in a fresh structure, armed an hour ahead, reached in one advance()
    (every cascade included)."""
    s = STRUCTURES[kind](NOW)
    s.arm_many(zip(keys, whens, itertools.repeat(None)))
    payload = object()
    now = NOW
    settled, flushed, cycle, jump = [], [], [], []
    for r in range(repeat):
        at = now + HOUR + 7  # not a whole second: no population entry shares it
        s.arm_many((f"burst-{r}-{i}", at, None) for i in range(BURST))
        s.advance(at - 1)
        _flush(s)
        t0 = cpu()
        fired = s.advance(at)
        t1 = cpu()
        _flush(s)
        t2 = cpu()
        settled.append(t1 - t0)
        flushed.append(t2 - t1)
        assert len(fired) == BURST, len(fired)
        # cron cycle on a new burst
        at += 100
        s.arm_many((f"cron-{r}-{i}", at, payload) for i in range(BURST))
        s.advance(at - 1)
        _flush(s)
        arm = s.arm
        t0 = cpu()
        fired = s.advance(at)
        for when, key, p in fired:
            arm(key, when + 1000, p)
        _flush(s)
        cycle.append(cpu() - t0)
        assert len(fired) == BURST, len(fired)
        for when, key, p in fired:
            s.disarm(key)
        now = at
    for r in range(repeat):
        fresh = STRUCTURES[kind](NOW)
        at = NOW + HOUR + 7
        fresh.arm_many((f"jump-{i}", at, None) for i in range(BURST))
        t0 = cpu()
        fired = fresh.advance(at)
        jump.append(cpu() - t0)
        assert len(fired) == BURST
    return {
        "settled_ms": statistics.median(settled) * 1000,
        "settled_max_ms": max(settled) * 1000,
        "flush_ms": statistics.median(flushed) * 1000,
        "cron_cycle_ms": statistics.median(cycle) * 1000,
        "jump_ms": statistics.median(jump) * 1000,
    }


def sweep_figures(kind: str, n: int, per_ms: int) -> dict:
    """Fires spread evenly: n entries over n / per_ms ms, advanced 1 ms at a time."""
    span = max(n // per_ms, 1)
    rnd = random.Random(4)
    s = STRUCTURES[kind](NOW)
    s.arm_many((f"job-{i:08d}", NOW + 1 + rnd.randrange(span), None) for i in range(n))
    advance = s.advance
    fired = 0
    t0 = cpu()
    for now in range(NOW + 1, NOW + 1 + span):
        fired += len(advance(now))
    elapsed = cpu() - t0
    assert fired == n
    return {
        "us_per_advance": elapsed / span * 1e6,
        "fires_per_s": fired / elapsed if elapsed else 0.0,
    }


def cron_walk_figures(n: int, minutes: int, prepare: bool) -> dict:
    """n every-minute cron jobs (whole seconds), walked like WheelDriver does it in
    simulated time: wake at next_deadline(), advance, re-arm each fired job a minute
    later, flush; with ``prepare``, stage upcoming cascades between wake-ups in steps
    of 2,048 entries, at most one step per idle millisecond. Reports the CPU time of
    the worst advance() (what delays a burst) and of the worst prepare step."""
    rnd = random.Random(5)
    start = ((NOW >> 16) << 16) + 30_000  # a level-2 boundary comes 35.5 s in
    wheel = TimingWheel(start)
    payload = object()
    wheel.arm_many((f"cron-{i}", start + 1000 * rnd.randrange(1, 61), payload) for i in range(n))
    advances, steps = [], []
    end = start + minutes * 60_000
    now = start
    while now < end:
        deadline = wheel.next_deadline()
        if prepare:
            idle_steps = max(deadline - now - 3, 0)  # the driver's margin: 3 ms
            while idle_steps > 0:
                t0 = cpu()
                more = wheel.prepare(2048)
                steps.append(cpu() - t0)
                idle_steps -= 1
                if not more:
                    break
        now = deadline
        t0 = cpu()
        fired = wheel.advance(now)
        advances.append(cpu() - t0)
        arm = wheel.arm
        for when, key, p in fired:
            arm(key, when + 60_000, p)
        wheel.flush()
    advances.sort()
    return {
        "worst_advance_ms": advances[-1] * 1000,
        "p99_advance_ms": advances[int(len(advances) * 0.99)] * 1000,
        "wakeups": len(advances),
        "worst_prepare_step_ms": max(steps) * 1000 if steps else 0.0,
        "prepare_cpu_s": sum(steps),
    }


# ---------------------------------------------------------------------- driver


async def driver_run(jobs: int, seconds: int) -> dict:
    """``jobs`` entries on whole seconds over ``seconds`` s; trivial on_due."""
    from traitor.domain.timeutil import now_ms

    wheel = TimingWheel(now_ms())
    batches = []
    driver = WheelDriver(wheel, lambda batch: batches.append(len(batch)))
    start = (now_ms() // 1000 + 1) * 1000
    rnd = random.Random(3)
    wheel.arm_many((f"job-{i}", start + 1000 * rnd.randrange(seconds), None) for i in range(jobs))
    gc.collect()
    gc.freeze()
    try:
        driver.start()
        while len(wheel):
            await asyncio.sleep(0.05)
        driver.stop()
    finally:
        gc.unfreeze()
    stats = driver.stats.as_dict()
    stats["burst_size"] = jobs // seconds
    stats["wakeups"] = driver.wakeups
    return stats


# ---------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=None, help="entries (default 1,000,000)")
    parser.add_argument("--quick", action="store_true", help="100,000 entries, no driver run")
    parser.add_argument("--json", action="store_true", help="print a JSON document at the end")
    parser.add_argument("--no-driver", action="store_true", help="skip the asyncio driver run")
    args = parser.parse_args(argv)
    n = args.n or (100_000 if args.quick else 1_000_000)
    repeat = 2 if args.quick else 3
    results: dict = {"n": n, "python": sys.version.split()[0], "wheel": {}, "heap": {}}

    def out(line: str = "") -> None:
        print(line, flush=True)

    keys = make_keys(n)
    spread = spread_whens(n)
    cron = cron_whens(n)
    out(f"timing wheel vs heapq+dict, {n:,} entries, CPython {results['python']}")
    out()

    rows = []
    for kind in ("wheel", "heap"):
        r = results[kind]
        r["arm_per_s_spread"] = n / best_of(lambda: time_arms(kind, keys, spread, False), repeat)
        r["arm_per_s_cron"] = n / best_of(lambda: time_arms(kind, keys, cron, False), repeat)
        r["arm_many_per_s_spread"] = n / best_of(lambda: time_arms(kind, keys, spread, True), repeat)
        r["arm_many_per_s_cron"] = n / best_of(lambda: time_arms(kind, keys, cron, True), repeat)
        r["disarm_per_s"] = n / best_of(lambda: time_disarms(kind, keys, spread), 1)
        for payload_kind in ("none", "object"):
            r[f"bytes_per_entry_tracemalloc_{payload_kind}"] = measure_memory(
                kind, n, payload_kind, "tracemalloc"
            )
            r[f"bytes_per_entry_rss_{payload_kind}"] = measure_memory(kind, n, payload_kind, "rss")
        r["burst"] = burst_figures(kind, keys, spread, repeat)
        r["sweep"] = sweep_figures(kind, n, 10)

    def ratio(key: str, sub: str | None = None) -> str:
        w = results["wheel"][key] if sub is None else results["wheel"][key][sub]
        h = results["heap"][key] if sub is None else results["heap"][key][sub]
        return f"{w / h:.2f}x" if h else "-"

    rows = [
        ("arm() /s, instants spread over 24 h", "arm_per_s_spread", None, "{:,.0f}"),
        ("arm() /s, cron-like whole seconds", "arm_per_s_cron", None, "{:,.0f}"),
        ("arm_many() /s, spread", "arm_many_per_s_spread", None, "{:,.0f}"),
        ("arm_many() /s, cron-like", "arm_many_per_s_cron", None, "{:,.0f}"),
        ("disarm() /s", "disarm_per_s", None, "{:,.0f}"),
        ("B/entry tracemalloc, payload None", "bytes_per_entry_tracemalloc_none", None, "{:.1f}"),
        ("B/entry tracemalloc, shared payload", "bytes_per_entry_tracemalloc_object", None, "{:.1f}"),
        ("B/entry RSS delta, payload None", "bytes_per_entry_rss_none", None, "{:.1f}"),
        ("B/entry RSS delta, shared payload", "bytes_per_entry_rss_object", None, "{:.1f}"),
        (f"burst of {BURST:,} on one ms, settled (ms)", "burst", "settled_ms", "{:.2f}"),
        (f"  same, worst of {repeat} (ms)", "burst", "settled_max_ms", "{:.2f}"),
        ("  then deferred index clean-up, flush() (ms)", "burst", "flush_ms", "{:.2f}"),
        (f"burst of {BURST:,} + re-arm each 1 s later (ms)", "burst", "cron_cycle_ms", "{:.2f}"),
        (f"burst of {BURST:,}, alone, one jump of 1 h (ms)", "burst", "jump_ms", "{:.2f}"),
        ("even spread, 10 per ms: µs per advance()", "sweep", "us_per_advance", "{:.2f}"),
        ("even spread, 10 per ms: fires/s", "sweep", "fires_per_s", "{:,.0f}"),
    ]
    out(f"{'':48} {'wheel':>14} {'heap+dict':>14} {'wheel/heap':>11}")
    for label, key, sub, fmt in rows:
        w = results["wheel"][key] if sub is None else results["wheel"][key][sub]
        h = results["heap"][key] if sub is None else results["heap"][key][sub]
        out(f"{label:48} {fmt.format(w):>14} {fmt.format(h):>14} {ratio(key, sub):>11}")
    out()
    out("(bytes exclude the key strings; the wheel's entries are not GC-tracked,")
    out(" the heap's two tuples per entry are, so full collections scan them)")

    out()
    cron_n = 20_000 if args.quick else 200_000
    for prepare in (False, True):
        walk = cron_walk_figures(cron_n, 2, prepare)
        results.setdefault("cron_walk", {})["with_prepare" if prepare else "without_prepare"] = walk
        out(
            f"{cron_n:,} every-minute cron jobs, 2 min walked like the driver, "
            f"{'with' if prepare else 'without'} prepare(): worst advance() "
            f"{walk['worst_advance_ms']:.1f} ms, p99 {walk['p99_advance_ms']:.2f} ms"
            + (f", worst prepare step {walk['worst_prepare_step_ms']:.2f} ms" if prepare else "")
        )

    if not (args.quick or args.no_driver):
        out()
        for jobs, seconds in ((15_000, 3), (30_000, 3)):
            stats = asyncio.run(driver_run(jobs, seconds))
            results.setdefault("driver", []).append(stats)
            out(
                f"WheelDriver, bursts of {stats['burst_size']:,} on whole seconds: "
                f"lateness p50 <= {stats['p50_ms']:.0f} ms, p99 <= {stats['p99_ms']:.0f} ms, "
                f"max {stats['max_ms']} ms over {stats['fires']:,} fires "
                f"({stats['batches']} batches, {stats['wakeups']} wake-ups)"
            )
    if args.json:
        print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child-memory":
        kind, n, payload_kind, method = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
        print(json.dumps(memory_child(kind, n, payload_kind, method)))
    else:
        main()
