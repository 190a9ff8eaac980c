"""The default worker count follows the CPUs a container may really use."""

from __future__ import annotations

import os
from pathlib import Path

from traitor.runtime.cores import usable_cores

HERE = len(os.sched_getaffinity(0))


def write(root: Path, name: str, text: str) -> None:
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(text)


def test_no_cgroup_files_means_every_cpu_the_process_may_run_on(tmp_path: Path) -> None:
    assert usable_cores(str(tmp_path)) == HERE


def test_a_cgroup_v2_quota_caps_the_count_rounded_up(tmp_path: Path) -> None:
    write(tmp_path, "cpu.max", "50000 100000\n")  # half a CPU still gets one worker
    assert usable_cores(str(tmp_path)) == 1
    write(tmp_path, "cpu.max", "150000 100000\n")
    assert usable_cores(str(tmp_path)) == min(HERE, 2)
    write(tmp_path, "cpu.max", "max 100000\n")  # no limit
    assert usable_cores(str(tmp_path)) == HERE


def test_a_cgroup_v1_quota_caps_the_count(tmp_path: Path) -> None:
    write(tmp_path, "cpu,cpuacct/cpu.cfs_quota_us", "100000\n")
    write(tmp_path, "cpu,cpuacct/cpu.cfs_period_us", "100000\n")
    assert usable_cores(str(tmp_path)) == 1
    write(tmp_path, "cpu,cpuacct/cpu.cfs_quota_us", "-1\n")
    assert usable_cores(str(tmp_path)) == HERE


def test_unreadable_or_odd_files_fall_back_to_the_cpus(tmp_path: Path) -> None:
    write(tmp_path, "cpu.max", "garbage\n")
    assert usable_cores(str(tmp_path)) == HERE
    write(tmp_path, "cpu.max", "0 100000\n")
    assert usable_cores(str(tmp_path)) == HERE
