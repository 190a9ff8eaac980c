"""How many script workers this machine (or container) can keep busy."""

from __future__ import annotations

import os
from pathlib import Path


def usable_cores(cgroup_root: str = "/sys/fs/cgroup") -> int:
    """The cores this process may use: the CPUs it may run on, capped by a CPU quota of
    its container (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``), rounded up. A
    container limited to 2 CPUs on a 64-core host gets 2 script workers, not 64.
    Reads the quota at the cgroup root that a container sees as its own."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = _cgroup_quota(Path(cgroup_root))
    if quota is not None:
        cores = min(cores, max(1, -(-quota[0] // quota[1])))
    return max(1, cores)


def _cgroup_quota(root: Path) -> tuple[int, int] | None:
    """(quota, period) in µs, or None when there is no limit or no cgroup file."""
    candidates = [(root / "cpu.max", None)]
    for v1 in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        candidates.append((root / v1 / "cpu.cfs_quota_us", root / v1 / "cpu.cfs_period_us"))
    for quota_file, period_file in candidates:
        try:
            if period_file is None:
                quota, period = quota_file.read_text().split()[:2]
            else:
                quota, period = quota_file.read_text().strip(), period_file.read_text().strip()
        except (OSError, ValueError):
            continue
        if quota in ("max", "-1"):
            return None
        try:
            quota_us, period_us = int(quota), int(period)
        except ValueError:
            return None
        return (quota_us, period_us) if quota_us > 0 and period_us > 0 else None
    return None
