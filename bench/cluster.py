"""Figure 7 — cluster: fires/s with 1 and 3 nodes, take-over time after a ``kill -9``.

Delegated to ``bench/cluster_bench.py`` (written with the cluster layer; it starts a
private ``redis-server`` and uses PostgreSQL at ``$TRAITOR_TEST_PG_URL``). This module
runs it as ``python bench/cluster_bench.py --json`` and takes the JSON object it
prints last. When the script is absent or fails, the figure is ``null`` with the
reason. No peer: APScheduler has no cluster mode of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from bench._common import BENCH_DIR, ROOT

SCRIPT = BENCH_DIR / "cluster_bench.py"


def run(args: list[str] | None = None, timeout: float = 420.0) -> dict[str, Any]:
    if not SCRIPT.exists():
        return {"status": "not run", "reason": "bench/cluster_bench.py does not exist"}
    cmd = [sys.executable, str(SCRIPT), "--json", *(args or [])]
    try:
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": "failed", "reason": f"bench/cluster_bench.py did not finish in {timeout:.0f} s"}
    for line in reversed(done.stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return {"status": "ok", "command": " ".join(["python", "bench/cluster_bench.py", "--json",
                                                             *(args or [])]), **json.loads(line)}
            except ValueError:
                break
    tail = (done.stderr or done.stdout or "").strip().splitlines()[-5:]
    return {"status": "failed", "reason": f"exit code {done.returncode}: {' | '.join(tail)[-600:]}"}


def figures(result: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of a cluster_bench result (``None`` where absent)."""

    def get(*path: str) -> Any:
        node: Any = result
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return node

    return {
        "fires_per_s_1_node": get("throughput-1", "fires_per_second"),
        "coverage_1_node": get("throughput-1", "coverage"),
        "fires_per_s_3_nodes": get("throughput-3", "fires_per_second"),
        "coverage_3_nodes": get("throughput-3", "coverage"),
        "takeover_first_s": get("takeover", "first_takeover_after_kill_s"),
        "takeover_last_late_s": get("takeover", "last_late_takeover_after_kill_s"),
        "takeover_fires_missing": get("takeover", "fires_missing"),
    }
