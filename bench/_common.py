"""Helpers shared by the figures: statistics, memory, machine facts, child processes.

Standard library only: the APScheduler 4 children import this module from their own
virtualenv, where ``traitor`` is not installed.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
APS4_VENV = BENCH_DIR / ".venv-aps4"
RESULT_TAG = "BENCH-RESULT "


# ---------------------------------------------------------------------- output
def progress(message: str) -> None:
    """A progress line on stderr (stdout carries results only)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- statistics
def quantile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank quantile of already sorted values (``None`` when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return float(sorted_values[rank - 1])


def summary(values: Iterable[float]) -> dict[str, float | int | None]:
    """count, p50, p99, max (and mean) of ``values``, in their unit."""
    data = sorted(values)
    return {
        "count": len(data),
        "p50": quantile(data, 0.50),
        "p99": quantile(data, 0.99),
        "max": float(data[-1]) if data else None,
        "mean": (sum(data) / len(data)) if data else None,
    }


def median(values: Iterable[float | None]) -> float | None:
    data = [v for v in values if v is not None]
    return statistics.median(data) if data else None


def ratio(ours: float | None, peer: float | None) -> float | None:
    """``peer / ours`` for "lower is better" figures, rounded; ``None`` when undefined."""
    if ours is None or peer is None or ours <= 0:
        return None
    return peer / ours


def rnd(value: Any, digits: int = 3) -> Any:
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None
        return round(value, digits)
    if isinstance(value, dict):
        return {k: rnd(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [rnd(v, digits) for v in value]
    return value


# ---------------------------------------------------------------------- memory
def rss_bytes() -> int:
    """Resident set size of this process, from /proc (Linux)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def settle_memory() -> int:
    """Collect garbage and give freed heap back to the OS, then read RSS."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    return rss_bytes()


# ---------------------------------------------------------------------- machine
def machine() -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            mem = int(meminfo.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cores": usable,
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "mem_total_bytes": mem,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ---------------------------------------------------------------------- children
def aps4_python() -> Path:
    return APS4_VENV / "bin" / "python"


def ensure_aps4(allow_install: bool, timeout: float = 240.0) -> tuple[Path | None, str | None]:
    """The APScheduler 4 interpreter, creating ``bench/.venv-aps4`` on first use.

    Returns ``(python, None)`` or ``(None, reason)``. APScheduler 4 shares the import
    name ``apscheduler`` with 3.x, so it cannot live in the project's virtualenv.
    """
    python = aps4_python()
    check = [str(python), "-c", "import apscheduler, apscheduler.datastores.memory; "
             "from importlib.metadata import version; print(version('apscheduler'))"]
    if python.exists():
        done = subprocess.run(check, capture_output=True, text=True, timeout=60)
        if done.returncode == 0 and done.stdout.strip().startswith("4."):
            return python, None
    if not allow_install:
        return None, "bench/.venv-aps4 does not exist yet (quick mode does not create it: run the full set once)"
    progress("creating bench/.venv-aps4 with the latest APScheduler 4 pre-release (first use only)")
    try:
        subprocess.run(["python3", "-m", "venv", str(APS4_VENV)], check=True, capture_output=True, timeout=120)
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--pre",
             "apscheduler>=4.0.0a1"],
            capture_output=True, text=True, timeout=timeout,
        )
        if done.returncode != 0:
            return None, f"pip could not install APScheduler 4: {(done.stderr or done.stdout).strip()[-300:]}"
        done = subprocess.run(check, capture_output=True, text=True, timeout=60)
        if done.returncode != 0 or not done.stdout.strip().startswith("4."):
            return None, f"APScheduler 4 does not import: {(done.stderr or done.stdout).strip()[-300:]}"
        return python, None
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"could not create bench/.venv-aps4: {exc}"


def run_child(module: str, func: str, params: dict[str, Any], *, python: str | Path | None = None,
              timeout: float = 300.0, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``bench.<module>.<func>(**params)`` in a fresh process and return its result dict.

    A failure (exit code, timeout, no result line) comes back as ``{"error": ...}``.
    """
    cmd = [str(python or sys.executable), "-m", "bench._child", module, func, json.dumps(params)]
    child_env = {**os.environ, "PYTHONHASHSEED": "0", **(env or {})}
    child_env.pop("PYTHONPATH", None)
    started = time.monotonic()
    try:
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=child_env)
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stderr or b"")[-800:]
        if isinstance(tail, bytes):
            tail = tail.decode(errors="replace")
        return {"error": f"{module}.{func} timed out after {timeout:.0f} s", "stderr": tail}
    elapsed = time.monotonic() - started
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            result = json.loads(line[len(RESULT_TAG):])
            result.setdefault("child_seconds", round(elapsed, 2))
            return result
    return {
        "error": f"{module}.{func} exited with code {done.returncode} and no result",
        "stderr": done.stderr[-1500:],
    }


# ---------------------------------------------------------------------- workloads
def cron_mix(count: int, seed: int = 7) -> list[tuple[str, dict[str, str]]]:
    """``count`` distinct, realistic cron schedules as ``(Traitor expression, APScheduler
    CronTrigger keyword arguments)`` with the same meaning (UTC; day-of-week by name only,
    since APScheduler numbers weekdays differently)."""
    import random

    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[tuple[str, dict[str, str]]] = []
    steps = (2, 3, 4, 5, 6, 10, 12, 15, 20, 30)
    while len(out) < count:
        kind = rng.randrange(6)
        s, m, h, d = rng.randrange(60), rng.randrange(60), rng.randrange(24), rng.randrange(1, 29)
        if kind == 0:  # hourly
            expr, kw = f"{m} * * * *", {"minute": str(m)}
        elif kind == 1:  # daily
            expr, kw = f"{m} {h} * * *", {"minute": str(m), "hour": str(h)}
        elif kind == 2:  # every n minutes, at a given second
            n = rng.choice(steps)
            expr, kw = f"{s} */{n} * * * *", {"second": str(s), "minute": f"*/{n}"}
        elif kind == 3:  # working days
            expr, kw = f"{m} {h} * * mon-fri", {"minute": str(m), "hour": str(h), "day_of_week": "mon-fri"}
        elif kind == 4:  # daily, to the second
            expr, kw = f"{s} {m} {h} * * *", {"second": str(s), "minute": str(m), "hour": str(h)}
        else:  # monthly
            expr, kw = f"{m} {h} {d} * *", {"minute": str(m), "hour": str(h), "day": str(d)}
        if expr not in seen:
            seen.add(expr)
            out.append((expr, kw))
    return out


def burst_exprs(at_s: int, count: int = 100) -> list[tuple[str, dict[str, str]]]:
    """``count`` distinct 6-field expressions that all fire at the UTC second ``at_s``
    (and at no other second of the few minutes around it), with APScheduler kwargs."""
    import datetime as dt

    t = dt.datetime.fromtimestamp(at_s, dt.timezone.utc)
    s, m, h, d, mo = t.second, t.minute, t.hour, t.day, t.month
    base = {"second": str(s), "minute": str(m)}
    out: list[tuple[str, dict[str, str]]] = [
        (f"{s} {m} * * * *", dict(base)),
        (f"{s} {m} {h} * * *", {**base, "hour": str(h)}),
        (f"{s} {m} * {d} * *", {**base, "day": str(d)}),
        (f"{s} {m} {h} {d} * *", {**base, "hour": str(h), "day": str(d)}),
        (f"{s} {m} {h} * {mo} *", {**base, "hour": str(h), "month": str(mo)}),
        (f"{s} {m} * {d} {mo} *", {**base, "day": str(d), "month": str(mo)}),
        (f"{s} {m} {h} {d} {mo} *", {**base, "hour": str(h), "day": str(d), "month": str(mo)}),
    ]
    out += [(f"{s} {m},{x} * * * *", {"second": str(s), "minute": f"{m},{x}"})
            for x in range(60) if abs(x - m) > 5]
    out += [(f"{s} {m} {h},{z} * * *", {**base, "hour": f"{h},{z}"}) for z in range(24) if z != h]
    out += [(f"{s} {m} * * {mo},{y} *", {**base, "month": f"{mo},{y}"}) for y in range(1, 13) if y != mo]
    out += [(f"{s} {m} * {d},{e} * *", {**base, "day": f"{d},{e}"}) for e in range(1, 29) if e != d]
    if len(out) < count:
        raise ValueError(f"only {len(out)} distinct expressions")
    return out[:count]
