"""Operator-configurable limits: defaults for every run and the ceilings a job may ask for."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """Every number here is set from a CLI flag / ``TRAITOR_*`` variable (see ``traitor --help``)."""

    #: Wall-clock seconds a run may take when the job names no ``timeout``.
    default_timeout: float = 30.0
    #: Largest ``timeout`` a job may ask for.
    max_timeout: float = 3600.0
    #: CPU seconds a run may burn; also capped by its wall-clock timeout.
    cpu_time: float = 10.0
    #: MiB of JS heap a run may use when the job names no ``memoryLimit``.
    default_memory_mib: int = 64
    #: Largest ``memoryLimit`` a job may ask for.
    max_memory_mib: int = 1024
    #: Bytes of console output kept per run; hitting it ends the run as ``output-truncated``.
    output_bytes: int = 64 * 1024
    #: Largest ``retries`` a job may ask for.
    max_retries: int = 10
    #: Seconds of lateness under which a fire is not a misfire.
    misfire_grace: float = 60.0
    #: Upper bound on fires replayed by ``misfire=all`` after downtime, per job.
    misfire_max_catchup: int = 1000
    #: Largest script accepted, in bytes.
    max_script_bytes: int = 512 * 1024
    #: Minimum distance of a delay job's ``execAt`` into the future when it is enabled.
    min_delay_seconds: float = 5.0
    #: Runs kept per job, and their maximum age in days.
    runs_kept_per_job: int = 100
    runs_kept_days: float = 30.0
