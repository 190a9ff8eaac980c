"""The benchmark runner: Traitor and its peers, side by side, in one run.

    python -m bench                      full set (``make bench``), ~10–15 min on 2 cores
    python -m bench --quick --json       short set (< 50 s); the last stdout line is one JSON object
    python -m bench --only lateness,burst --runs 1

Progress goes to stderr. Every measurement runs in a fresh child process, one at a
time (see ``bench/_common.run_child``); figures are medians over ``--runs`` runs.
Results are also written to ``bench/.last-<mode>.json``; a full run writes the
results table to ``bench/RESULTS.md`` (``--no-results-md`` to skip).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from bench import cluster as cluster_mod
from bench._common import BENCH_DIR, ensure_aps4, loadavg, machine, median, progress, ratio, rnd, run_child

FIGURES = ("lateness", "burst", "memory", "arming", "scripts", "api", "cluster")

FULL: dict[str, Any] = {
    "runs": 3,
    "lateness": {"jobs": 100_000, "window_s": 30, "warmup_s": 3.0},
    "burst": {"jobs": 10_000, "peer": True, "sqlite": True},
    "memory": {"jobs": 1_000_000, "peer_jobs": 50_000},
    "arming": {"jobs": 200_000, "cold_jobs": 1_000_000},
    "scripts": {"runs": 20_000, "reference_runs": 5_000},
    "api": {"create_s": 4.0, "get_s": 6.0, "floor": True},
    "cluster": {"run": True},
}
QUICK: dict[str, Any] = {
    "runs": 1,
    "lateness": {"jobs": 10_000, "window_s": 5, "warmup_s": 1.0},
    "burst": {"jobs": 10_000, "peer": False, "sqlite": False},
    "memory": {"jobs": 100_000, "peer_jobs": 5_000},
    "arming": {"jobs": 100_000, "cold_jobs": 100_000},
    "scripts": {"runs": 3_000, "reference_runs": 1_000},
    "api": {"create_s": 1.5, "get_s": 1.5, "floor": False},
    "cluster": {"run": False},
}
#: Quick mode drops an optional measurement that would end after this many seconds.
QUICK_BUDGET_S = 46.0


class Runner:
    def __init__(self, quick: bool, runs: int | None) -> None:
        self.quick = quick
        self.conf = QUICK if quick else FULL
        self.runs = runs or self.conf["runs"]
        self.started = time.monotonic()
        self.notes: list[str] = []

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def over_budget(self, what: str, cost_s: float = 4.0) -> bool:
        """Quick mode: would ``what`` (about ``cost_s`` seconds) end past the time budget?"""
        if self.quick and self.elapsed() + cost_s > QUICK_BUDGET_S:
            self.notes.append(f"{what}: skipped (quick-mode time budget)")
            progress(f"{what}: skipped to stay within the quick-mode time budget")
            return True
        return False

    def repeat(self, label: str, module: str, func: str, params: dict[str, Any], runs: int | None = None,
               python: Any = None, timeout: float = 600.0) -> list[dict[str, Any]]:
        results = []
        for i in range(runs or self.runs):
            progress(f"{label} run {i + 1}/{runs or self.runs} …")
            t = time.monotonic()
            result = run_child(module, func, params, python=python, timeout=timeout)
            if "error" in result:
                progress(f"{label}: ERROR {result['error']}\n{result.get('stderr', '')[-800:]}")
            else:
                progress(f"{label} run {i + 1}: {_brief(result)} ({time.monotonic() - t:.1f} s)")
            results.append(result)
        return results


def _brief(result: dict[str, Any]) -> str:
    keys = ("p99_ms", "missed", "last_ms", "bytes_per_job", "arm_per_s", "add_per_s", "cold_start_s", "runs_per_s",
            "creates_per_s")
    return ", ".join(f"{k}={rnd(result[k], 2)}" for k in keys if k in result)


def med(results: list[dict[str, Any]], key: str, *sub: str) -> float | None:
    values = []
    for r in results:
        if "error" in r:
            continue
        node: Any = r
        for k in (key, *sub):
            node = node.get(k) if isinstance(node, dict) else None
        if isinstance(node, (int, float)):
            values.append(node)
    return median(values)


def errors_of(results: list[dict[str, Any]]) -> list[str]:
    return [r["error"] for r in results if "error" in r]


# ---------------------------------------------------------------------- figures
def fig_lateness(r: Runner) -> dict[str, Any]:
    c = r.conf["lateness"]
    ours = r.repeat(f"lateness traitor ({c['jobs']:,} jobs)", "lateness", "traitor", c)
    peer = r.repeat(f"lateness apscheduler3 ({c['jobs']:,} jobs)", "lateness", "aps3", c)
    keys = ("p50_ms", "p99_ms", "max_ms", "missed", "expected_fires", "never_handed_over", "p99_ms_missed_as_inf")
    out = {
        "jobs": c["jobs"], "fires_per_s": c["jobs"] // 20, "window_s": c["window_s"],
        "traitor": {k: med(ours, k) for k in (*keys, "runtime_handoff_p50_ms", "runtime_handoff_p99_ms",
                                              "runtime_handoff_max_ms")},
        "apscheduler3": {k: med(peer, k) for k in keys},
        "runs": {"traitor": ours, "apscheduler3": peer},
        "errors": errors_of(ours) + errors_of(peer),
    }
    out["ratio_p99"] = ratio(out["traitor"]["p99_ms"], out["apscheduler3"]["p99_ms"])
    return out


def fig_burst(r: Runner) -> dict[str, Any]:
    c = r.conf["burst"]
    if r.over_budget("burst", 3.0):
        return {"status": "not run", "reason": "quick-mode time budget"}
    ours = r.repeat(f"burst traitor ({c['jobs']:,} jobs, memory store)", "burst", "traitor",
                    {"jobs": c["jobs"], "store": "memory"})
    keys = ("first_ms", "median_ms", "last_ms", "runtime_handoff_last_ms")
    out: dict[str, Any] = {"jobs": c["jobs"], "traitor": {k: med(ours, k) for k in keys}, "runs": {"traitor": ours}}
    if c["sqlite"] and not r.over_budget("burst on SQLite"):
        sq = r.repeat(f"burst traitor ({c['jobs']:,} jobs, SQLite store)", "burst", "traitor",
                      {"jobs": c["jobs"], "store": "sqlite"})
        out["traitor_sqlite"] = {k: med(sq, k) for k in keys}
        out["runs"]["traitor_sqlite"] = sq
    if c["peer"] and not r.over_budget("burst apscheduler3"):
        peer = r.repeat(f"burst apscheduler3 ({c['jobs']:,} jobs)", "burst", "aps3", {"jobs": c["jobs"]})
        out["apscheduler3"] = {k: med(peer, k) for k in keys[:3]}
        out["runs"]["apscheduler3"] = peer
        out["ratio_last"] = ratio(out["traitor"]["last_ms"], out["apscheduler3"]["last_ms"])
    else:
        out["apscheduler3"] = None
    out["errors"] = [e for runs in out["runs"].values() for e in errors_of(runs)]
    return out


def fig_memory(r: Runner) -> dict[str, Any]:
    c = r.conf["memory"]
    ours = r.repeat(f"memory traitor ({c['jobs']:,} jobs)", "memory", "traitor", {"jobs": c["jobs"]})
    out: dict[str, Any] = {"jobs": c["jobs"], "peer_jobs": c["peer_jobs"],
                           "traitor": {"bytes_per_job": med(ours, "bytes_per_job"),
                                       "rss_after": med(ours, "rss_after")},
                           "runs": {"traitor": ours}}
    if c["peer_jobs"] != c["jobs"]:
        same = r.repeat(f"memory traitor ({c['peer_jobs']:,} jobs, the peers' count)", "memory", "traitor",
                        {"jobs": c["peer_jobs"]})
        out["traitor_at_peer_jobs"] = {"bytes_per_job": med(same, "bytes_per_job")}
        out["runs"]["traitor_at_peer_jobs"] = same
    peer = r.repeat(f"memory apscheduler3 ({c['peer_jobs']:,} jobs)", "memory", "aps3", {"jobs": c["peer_jobs"]})
    out["apscheduler3"] = {"bytes_per_job": med(peer, "bytes_per_job"), "add_per_s": med(peer, "add_per_s")}
    out["runs"]["apscheduler3"] = peer
    if not r.quick:  # quick mode runs it last, if time allows (memory_aps4)
        memory_aps4(r, out)
    _memory_ratios(out)
    return out


def memory_aps4(r: Runner, out: dict[str, Any]) -> dict[str, Any]:
    c = r.conf["memory"]
    if "traitor" not in out:
        return out
    python, reason = ensure_aps4(allow_install=not r.quick)
    if python is None:
        out["apscheduler4"] = None
        out["apscheduler4_skipped"] = reason
        progress(f"memory apscheduler4: skipped — {reason}")
    elif not r.over_budget("memory apscheduler4", 5.0):
        peer4 = r.repeat(f"memory apscheduler4 ({c['peer_jobs']:,} jobs)", "memory", "aps4",
                         {"jobs": c["peer_jobs"]}, python=python)
        out["apscheduler4"] = {"bytes_per_job": med(peer4, "bytes_per_job"), "add_per_s": med(peer4, "add_per_s"),
                               "version": next((x.get("version") for x in peer4 if "version" in x), None)}
        out["runs"]["apscheduler4"] = peer4
    else:
        out["apscheduler4"] = None
    _memory_ratios(out)
    return out


def _memory_ratios(out: dict[str, Any]) -> None:
    ref = out.get("traitor_at_peer_jobs", out["traitor"])["bytes_per_job"]
    out["ratio_aps3"] = ratio(ref, out["apscheduler3"]["bytes_per_job"])
    out["ratio_aps4"] = ratio(ref, (out.get("apscheduler4") or {}).get("bytes_per_job"))
    out["errors"] = [e for runs in out["runs"].values() for e in errors_of(runs)]


def fig_arming(r: Runner, memory: dict[str, Any] | None) -> dict[str, Any]:
    c = r.conf["arming"]
    ours = r.repeat(f"arming traitor ({c['jobs']:,} jobs)", "arming", "traitor_arm", {"jobs": c["jobs"]})
    out: dict[str, Any] = {
        "jobs": c["jobs"],
        "traitor": {"arm_per_s": med(ours, "arm_per_s"), "arm_all_per_s": med(ours, "arm_all_per_s")},
        "runs": {"traitor": ours},
    }
    peer = (memory or {}).get("apscheduler3") or {}
    out["apscheduler3"] = {"add_per_s": peer.get("add_per_s"), "jobs": (memory or {}).get("peer_jobs"),
                           "source": "memory figure runs (same add_job loop)"}
    out["ratio"] = ratio(peer.get("add_per_s"), out["traitor"]["arm_per_s"])  # higher is better
    if not r.quick:  # quick mode runs it last, if time allows (cold_start)
        cold_start(r, out)
    out["errors"] = [e for runs in out["runs"].values() for e in errors_of(runs)]
    return out


def cold_start(r: Runner, out: dict[str, Any]) -> dict[str, Any]:
    c = r.conf["arming"]
    if not r.over_budget("cold start", 6.0):
        tmp = Path(tempfile.mkdtemp(prefix="traitor-bench-cold-"))
        try:
            db = tmp / "cold.db"
            progress(f"cold start: writing {c['cold_jobs']:,} jobs into {db} …")
            built = run_child("arming", "build_db", {"path": str(db), "jobs": c["cold_jobs"]}, timeout=900)
            if "error" in built:
                out["cold_start"] = {"error": built["error"]}
            else:
                cold = r.repeat(f"cold start traitor ({c['cold_jobs']:,} jobs in SQLite)", "arming", "cold_start",
                                {"path": str(db)})
                out["cold_start"] = {"jobs": c["cold_jobs"], "seconds": med(cold, "cold_start_s"),
                                     "cpu_s": med(cold, "cold_start_cpu_s"),
                                     "jobs_per_s": med(cold, "cold_start_jobs_per_s"),
                                     "db_bytes": built.get("bytes"), "build_s": built.get("build_s")}
                out["runs"]["cold_start"] = cold
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    out["errors"] = [e for runs in out["runs"].values() for e in errors_of(runs)]
    return out


def fig_scripts(r: Runner) -> dict[str, Any]:
    c = r.conf["scripts"]
    ours = r.repeat(f"script runs traitor ({c['runs']:,} runs, 2 workers, SQLite)", "scripts", "traitor",
                    {"runs": c["runs"], "workers": 2})
    ref = r.repeat(f"script runs reference QuickJS loop ({c['reference_runs']:,})", "scripts", "reference",
                   {"runs": c["reference_runs"]})
    out = {"runs_per_job": c["runs"],
           "traitor": {"runs_per_s": med(ours, "runs_per_s"), "seconds": med(ours, "seconds")},
           "reference": {"runs_per_s": med(ref, "runs_per_s")},
           "runs": {"traitor": ours, "reference": ref}}
    out["ratio"] = ratio(out["reference"]["runs_per_s"], out["traitor"]["runs_per_s"])  # higher is better
    out["errors"] = errors_of(ours) + errors_of(ref)
    return out


def fig_api(r: Runner) -> dict[str, Any]:
    c = r.conf["api"]
    params = {"create_s": c["create_s"], "get_s": c["get_s"]}
    ours = r.repeat("api traitor (32 clients; GET at 1,000/s)", "api", "measure", {"kind": "traitor", **params})
    out: dict[str, Any] = {
        "traitor": {"creates_per_s": med(ours, "creates_per_s"), "get_p50_ms": med(ours, "get", "p50_ms"),
                    "get_p99_ms": med(ours, "get", "p99_ms"), "get_max_ms": med(ours, "get", "max_ms"),
                    "server_cpu_us_per_create": med(ours, "server_cpu_us_per_create")},
        "runs": {"traitor": ours},
    }
    if c["floor"] and not r.over_budget("api floor"):
        floor = r.repeat("api floor: bare FastAPI app", "api", "measure", {"kind": "floor", **params})
        out["floor"] = {"creates_per_s": med(floor, "creates_per_s"), "get_p50_ms": med(floor, "get", "p50_ms"),
                        "get_p99_ms": med(floor, "get", "p99_ms")}
        out["runs"]["floor"] = floor
    else:
        out["floor"] = None
    out["errors"] = [e for runs in out["runs"].values() for e in errors_of(runs)]
    return out


def fig_cluster(r: Runner) -> dict[str, Any]:
    if not r.conf["cluster"]["run"]:
        return {"status": "not run", "reason": "quick mode (the full set runs bench/cluster_bench.py)"}
    progress("cluster: bench/cluster_bench.py --json (1 run; it has 3 phases) …")
    result = cluster_mod.run()
    progress(f"cluster: {result.get('status')} {result.get('reason', '')}")
    return {**result, "figures": cluster_mod.figures(result) if result.get("status") == "ok" else None}


# ---------------------------------------------------------------------- report
def headline(res: dict[str, Any]) -> dict[str, Any]:
    f = res["figures"]

    def get(fig: str, *path: str) -> Any:
        node: Any = f.get(fig)
        for k in path:
            node = node.get(k) if isinstance(node, dict) else None
        return node

    return {
        "lateness_p99_ms": get("lateness", "traitor", "p99_ms"),
        "lateness_p50_ms": get("lateness", "traitor", "p50_ms"),
        "lateness_max_ms": get("lateness", "traitor", "max_ms"),
        "missed": get("lateness", "traitor", "missed"),
        "runtime_handoff_p99_ms": get("lateness", "traitor", "runtime_handoff_p99_ms"),
        "peer_lateness_p99_ms": get("lateness", "apscheduler3", "p99_ms"),
        "peer_lateness_p50_ms": get("lateness", "apscheduler3", "p50_ms"),
        "peer_missed": get("lateness", "apscheduler3", "missed"),
        "lateness_jobs": get("lateness", "jobs"),
        "burst_last_ms": get("burst", "traitor", "last_ms"),
        "burst_runtime_handoff_last_ms": get("burst", "traitor", "runtime_handoff_last_ms"),
        "burst_sqlite_runtime_handoff_last_ms": get("burst", "traitor_sqlite", "runtime_handoff_last_ms"),
        "peer_burst_last_ms": get("burst", "apscheduler3", "last_ms"),
        "bytes_per_job": get("memory", "traitor", "bytes_per_job"),
        "bytes_per_job_at_peer_jobs": get("memory", "traitor_at_peer_jobs", "bytes_per_job"),
        "peer_bytes_per_job": get("memory", "apscheduler3", "bytes_per_job"),
        "peer4_bytes_per_job": get("memory", "apscheduler4", "bytes_per_job"),
        "memory_jobs": get("memory", "jobs"),
        "arm_per_s": get("arming", "traitor", "arm_per_s"),
        "arm_all_per_s": get("arming", "traitor", "arm_all_per_s"),
        "peer_arm_per_s": get("arming", "apscheduler3", "add_per_s"),
        "peer4_arm_per_s": get("memory", "apscheduler4", "add_per_s"),
        "cold_start_s": get("arming", "cold_start", "seconds"),
        "cold_start_cpu_s": med(get("arming", "runs", "cold_start") or [], "cold_start_cpu_s"),
        "cold_start_jobs": get("arming", "cold_start", "jobs"),
        "js_runs_per_s": get("scripts", "traitor", "runs_per_s"),
        "js_reference_runs_per_s": get("scripts", "reference", "runs_per_s"),
        "js_engine_cpu_us_per_run": med(get("scripts", "runs", "traitor") or [], "engine_cpu_us_per_run"),
        "js_workers_cpu_us_per_run": med(get("scripts", "runs", "traitor") or [], "workers_cpu_us_per_run"),
        "api_creates_per_s": get("api", "traitor", "creates_per_s"),
        "api_get_p99_ms": get("api", "traitor", "get_p99_ms"),
        "api_server_cpu_us_per_create": get("api", "traitor", "server_cpu_us_per_create"),
        "floor_creates_per_s": get("api", "floor", "creates_per_s"),
        "floor_get_p99_ms": get("api", "floor", "get_p99_ms"),
        "cluster_fires_per_s_1": get("cluster", "figures", "fires_per_s_1_node"),
        "cluster_fires_per_s_3": get("cluster", "figures", "fires_per_s_3_nodes"),
        "cluster_takeover_s": get("cluster", "figures", "takeover_first_s"),
    }


def fmt(value: Any, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and abs(value) >= 1000:
        return f"{value:,.0f}{unit}"
    if isinstance(value, (int, float)):
        if isinstance(value, int) or float(value).is_integer():
            return f"{int(value):,}{unit}"
        return f"{value:,.{digits}f}{unit}"
    return str(value)


def xfmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}×"


def lateness_cell(side: dict[str, Any]) -> str:
    return f"{fmt(side.get('p99_ms'), ' ms')} ({fmt(side.get('p50_ms'), ' ms')} / {fmt(side.get('max_ms'), ' ms')})"


def markdown(res: dict[str, Any]) -> str:
    h = res["headline"]
    f = res["figures"]
    lat = f.get("lateness") or {}
    mem = f.get("memory") or {}
    arm = f.get("arming") or {}
    bur = f.get("burst") or {}
    scr = f.get("scripts") or {}
    api = f.get("api") or {}
    clu = f.get("cluster") or {}

    def met(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "**missed**")

    def le(value: Any, limit: float) -> bool | None:
        return None if value is None else value <= limit

    def ge(value: Any, limit: float) -> bool | None:
        return None if value is None else value >= limit

    rows = [
        ("Dispatch lateness p99 (p50 / max), "
         f"{fmt(lat.get('jobs'))} cron jobs, {fmt(lat.get('fires_per_s'))} due/s, {lat.get('window_s')} s",
         lateness_cell(lat.get("traitor") or {}),
         lateness_cell(lat.get("apscheduler3") or {}),
         xfmt(lat.get("ratio_p99")), "≤ 10 ms", met(le(h["lateness_p99_ms"], 10))),
        ("Fires missed in the window (> 1 s late or never)",
         f"{fmt(h['missed'])} of {fmt((lat.get('traitor') or {}).get('expected_fires'))}",
         f"{fmt(h['peer_missed'])} of {fmt((lat.get('apscheduler3') or {}).get('expected_fires'))}",
         "", "0", met(None if h["missed"] is None else h["missed"] == 0)),
        ("… hand-off to the runtime (job read, run claimed, submitted) p99",
         fmt(h["runtime_handoff_p99_ms"], " ms"), "", "", "", ""),
        (f"Burst: {fmt(bur.get('jobs'))} jobs due on one second, last one dispatched",
         fmt(h["burst_last_ms"], " ms"), fmt(h["peer_burst_last_ms"], " ms"), xfmt(bur.get("ratio_last")),
         "≤ 50 ms", met(le(h["burst_last_ms"], 50))),
        ("… last one handed to the runtime (in-memory store / SQLite claim)",
         f"{fmt(h['burst_runtime_handoff_last_ms'], ' ms')} / {fmt(h['burst_sqlite_runtime_handoff_last_ms'], ' ms')}",
         "", "", "", ""),
        (f"Memory per armed cron job at {fmt(mem.get('jobs'))} jobs (RSS delta / jobs)",
         fmt(h["bytes_per_job"], " B", 0), "", "", "≤ 600 B", met(le(h["bytes_per_job"], 600))),
        (f"… at {fmt(mem.get('peer_jobs'))} jobs: APScheduler 3 / APScheduler 4",
         fmt(h["bytes_per_job_at_peer_jobs"], " B", 0),
         f"{fmt(h['peer_bytes_per_job'], ' B', 0)} / {fmt(h['peer4_bytes_per_job'], ' B', 0)}",
         f"{xfmt(mem.get('ratio_aps3'))} / {xfmt(mem.get('ratio_aps4'))}", "", ""),
        (f"Arming rate, Engine.arm (jobs/s; peer: add_job at {fmt(mem.get('peer_jobs'))} jobs)",
         fmt(h["arm_per_s"], "/s", 0), f"{fmt(h['peer_arm_per_s'], '/s', 0)} (APS4 {fmt(h['peer4_arm_per_s'], '/s', 0)})",
         xfmt(arm.get("ratio")), "≥ 200,000/s", met(ge(h["arm_per_s"], 200_000))),
        ("… arm_all (start-up batch path, in-memory store)", fmt(h["arm_all_per_s"], "/s", 0), "", "", "", ""),
        (f"Cold start: {fmt(h['cold_start_jobs'])} jobs in SQLite → all armed (wall; CPU of the process)",
         f"{fmt(h['cold_start_s'], ' s', 1)} ({fmt(h.get('cold_start_cpu_s'), ' s CPU', 1)})",
         "n/a (no persistent store)", "", "≤ 15 s", met(le(h["cold_start_s"], 15))),
        ("Script runs end to end (fire → QuickJS → stored), 2 workers", fmt(h["js_runs_per_s"], "/s", 0),
         f"{fmt(h['js_reference_runs_per_s'], '/s', 0)} (bare QuickJS loop, 1 core)",
         xfmt(scr.get("ratio")), "≥ 6,000/s", met(ge(h["js_runs_per_s"], 6000))),
        ("… CPU per run: engine process (store threads included) + 2 workers",
         f"{fmt(h['js_engine_cpu_us_per_run'], ' µs', 0)} + {fmt(h['js_workers_cpu_us_per_run'], ' µs', 0)}",
         "", "", "", ""),
        ("API durable creates/s, 32 clients", fmt(h["api_creates_per_s"], "/s", 0),
         f"{fmt(h['floor_creates_per_s'], '/s', 0)} (bare FastAPI floor)", "", "≥ 3,000/s",
         met(ge(h["api_creates_per_s"], 3000))),
        ("… server CPU per create (process CPU time over the create phase / creates)",
         fmt(h.get("api_server_cpu_us_per_create"), " µs", 0), "", "", "", ""),
        ("API GET job p99 at 1,000 req/s (open loop)", fmt(h["api_get_p99_ms"], " ms"),
         f"{fmt(h['floor_get_p99_ms'], ' ms')} (floor)", "", "≤ 10 ms", met(le(h["api_get_p99_ms"], 10))),
        ("Cluster fires/s, 1 node / 3 nodes",
         f"{fmt(h['cluster_fires_per_s_1'])} / {fmt(h['cluster_fires_per_s_3'])}", "n/a", "", "",
         clu.get("status", "n/a") if clu.get("status") != "ok" else ""),
        ("Cluster take-over after kill -9 (first taken-over fire)", fmt(h["cluster_takeover_s"], " s", 2), "n/a",
         "", "", ""),
    ]
    m = res["machine"]
    lines = [
        f"Mode: **{res['mode']}**, {res['runs']} run(s) per figure (median). "
        f"Machine: {m['cores']} cores ({m['cpu_model']}), Python {m['python']}; load average before "
        f"{res['loadavg']['before']}, after {res['loadavg']['after']}; total {res['elapsed_s']:.0f} s.",
        "",
        "| Figure | Traitor | APScheduler 3.11 (peer) | Traitor advantage | Target | |",
        "|---|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def missing_tools() -> list[str]:
    """The peers and tools of requirements-dev.lock that this environment lacks."""
    import importlib.util

    return [name for name in ("apscheduler", "traitor") if importlib.util.find_spec(name) is None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short set (< 50 s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")
    parser.add_argument("--only", default=",".join(FIGURES), help=f"comma list of figures ({', '.join(FIGURES)})")
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (default: 3 full, 1 quick)")
    parser.add_argument("--no-results-md", action="store_true", help="do not write bench/RESULTS.md (full mode)")
    parser.add_argument("--from-json", metavar="PATH", help="re-render the table (and RESULTS.md) of a saved run")
    args = parser.parse_args(argv)
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        saved["headline"] = headline(saved)
        table = markdown(saved)
        if saved["mode"] == "full" and not args.no_results_md:
            write_results_md(table, saved)
        print(table)
        return 0
    only = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = set(only) - set(FIGURES)
    if unknown:
        parser.error(f"unknown figure(s): {', '.join(sorted(unknown))}")
    missing = missing_tools()
    if missing:
        parser.exit(2, f"python -m bench: {', '.join(missing)} not installed here; "
                       "`make dev` (or `make bench`) installs the benchmark tools\n")
    runner = Runner(args.quick, args.runs)
    mode = "quick" if args.quick else "full"
    res: dict[str, Any] = {"mode": mode, "runs": runner.runs, "machine": machine(),
                           "loadavg": {"before": loadavg()}, "figures": {}}
    progress(f"{mode} mode, {runner.runs} run(s) per figure, {res['machine']['cores']} cores, "
             f"load average {res['loadavg']['before']}")
    steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("lateness", lambda: fig_lateness(runner)),
        ("memory", lambda: fig_memory(runner)),
        ("arming", lambda: fig_arming(runner, res["figures"].get("memory"))),
        ("scripts", lambda: fig_scripts(runner)),
        ("api", lambda: fig_api(runner)),
        ("burst", lambda: fig_burst(runner)),
        ("cluster", lambda: fig_cluster(runner)),
    ]
    if runner.quick:  # optional parts of quick mode, while the time budget lasts
        steps += [
            ("arming", lambda: cold_start(runner, res["figures"].get("arming") or {"runs": {}})),
            ("memory", lambda: memory_aps4(runner, res["figures"].get("memory") or {})),
        ]
    for name, step in steps:
        if name not in only:
            continue
        try:
            res["figures"][name] = step()
        except Exception as exc:  # one broken figure must not lose the others
            progress(f"{name}: FAILED {type(exc).__name__}: {exc}")
            res["figures"][name] = {"error": f"{type(exc).__name__}: {exc}"}
    res["loadavg"]["after"] = loadavg()
    res["elapsed_s"] = round(runner.elapsed(), 1)
    res["notes"] = runner.notes
    res["headline"] = headline(res)
    res = rnd(res)
    out_path = BENCH_DIR / f".last-{mode}.json"
    try:
        out_path.write_text(json.dumps(res, indent=1) + "\n")
    except OSError as exc:
        progress(f"could not write {out_path}: {exc}")
    table = markdown(res)
    if not args.quick and not args.no_results_md and set(only) == set(FIGURES):
        write_results_md(table, res)
    progress(f"done in {res['elapsed_s']} s; load average after {res['loadavg']['after']}")
    if args.json:
        flat = {"mode": mode, "cores": res["machine"]["cores"], "loadavg": res["loadavg"],
                "elapsed_s": res["elapsed_s"], **res["headline"], "notes": res["notes"],
                "figures": {k: {kk: vv for kk, vv in v.items() if kk != "runs"} for k, v in res["figures"].items()}}
        print(table, file=sys.stderr)
        print(json.dumps(flat, separators=(",", ":")), flush=True)
    else:
        print(table)
        print(f"\nDetails: {out_path}")
    return 0


def write_results_md(table: str, res: dict[str, Any]) -> None:
    path = BENCH_DIR / "RESULTS.md"
    head = ("# Benchmark results\n\n"
            "Command: `make bench` (= `.venv/bin/python -m bench`). What each figure measures and how: "
            "`bench/README.md`. Every figure is the median of the runs; every system ran in its own fresh "
            "process, one at a time, on the same machine in the same run.\n\n")
    marker = "<!-- end of generated table -->"
    tail = ""
    if path.exists():
        old = path.read_text()
        if marker in old:
            tail = old.split(marker, 1)[1]
    path.write_text(head + table + "\n\n" + marker + tail)
    progress(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
