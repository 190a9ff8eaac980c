"""The Job and Run models, their enums, and validation of a merged job.

Jobs travel through the API as camelCase JSON (the original service's field
names); inside Traitor they are :class:`Job` dataclasses with snake_case
attributes and instants as integer milliseconds (see :mod:`traitor.domain.timeutil`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from traitor.domain.errors import ValidationError
from traitor.domain.limits import Limits
from traitor.domain.timeutil import MILLISECONDS_THRESHOLD, now_ms


class ExecType(IntEnum):
    TIMING = 0
    DELAY = 1


class JobState(IntEnum):
    STOPPED = 0
    RUNNABLE = 1


class Overlap(str, Enum):
    """What a fire does when the previous run of the same job is still going."""

    ALLOW = "allow"
    SKIP = "skip"
    QUEUE = "queue"


class Misfire(str, Enum):
    """What happens to fires whose instant passed while nobody could run them."""

    SKIP = "skip"
    ONCE = "once"
    ALL = "all"


class RunStatus(str, Enum):
    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"
    TIMEOUT = "timeout"
    MEMORY = "memory"
    OUTPUT_TRUNCATED = "output-truncated"
    CRASHED = "crashed"
    SKIPPED = "skipped"
    MISSED = "missed"

    @property
    def finished(self) -> bool:
        return self is not RunStatus.RUNNING

    @property
    def failed(self) -> bool:
        return self in _FAILED


_FAILED = {RunStatus.ERROR, RunStatus.TIMEOUT, RunStatus.MEMORY, RunStatus.OUTPUT_TRUNCATED, RunStatus.CRASHED}


class Trigger(str, Enum):
    """Why a run happened."""

    SCHEDULE = "schedule"
    MANUAL = "manual"
    RETRY = "retry"
    MISFIRE = "misfire"


def new_id() -> str:
    """A random (version 4) UUID in its canonical text form: job ids.

    From the OS's CSPRNG, as ``uuid.uuid4()``, but read 4 KiB at a time and formatted
    directly: ``os.urandom`` releases the GIL, and while a store thread is busy,
    getting it back cost the event loop ~50 µs per id under load."""
    h = _random_digits()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def new_run_id(at_ms: int | None = None) -> str:
    """A version-7 UUID (RFC 9562): 48 bits of Unix milliseconds, then random bits.

    Run ids made later sort later, so a store's primary-key index takes each new run
    at its end instead of at a random page: a claim costs ~30 % less in SQLite with a
    few hundred thousand runs stored. ``at_ms`` defaults to now."""
    t = f"{(now_ms() if at_ms is None else at_ms) & 0xFFFF_FFFF_FFFF:012x}"
    h = _random_digits()
    return f"{t[:8]}-{t[8:]}-7{h[:3]}-{_VARIANT[h[3]]}{h[4:7]}-{h[7:19]}"


def _random_digits() -> str:
    """32 random hex digits from the pool, refilled from the OS 4 KiB at a time."""
    while True:
        try:
            return _random_hex.pop()
        except IndexError:  # another thread may empty a fresh batch first: read again
            raw = os.urandom(16 * _ID_BATCH).hex()
            _random_hex.extend([raw[i : i + 32] for i in range(0, len(raw), 32)])


#: Ids per read of random bytes; the unused ones (32 hex digits each) wait here.
_ID_BATCH = 256
_random_hex: list[str] = []
# A forked child must not hand out the ids its parent will also hand out.
os.register_at_fork(after_in_child=_random_hex.clear)

_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


@dataclass(slots=True)
class Job:
    job_id: str
    exec_type: ExecType
    name: str = ""
    description: str = ""
    cron: str | None = None
    exec_at: int | None = None  # ms
    script: str = ""
    state: JobState = JobState.STOPPED
    timezone: str | None = None
    timeout: float | None = None  # seconds of wall-clock per run
    memory_limit: int | None = None  # MiB
    overlap: Overlap = Overlap.ALLOW
    misfire: Misfire = Misfire.ONCE
    misfire_grace: float | None = None  # seconds
    retries: int = 0
    last_exec_time: int | None = None  # ms
    created_at: int = field(default_factory=now_ms)
    updated_at: int = field(default_factory=now_ms)
    #: Bumped by every write; nodes of a cluster reconcile on it.
    version: int = 1
    #: Runs of this job allowed at once (None: 1 when overlap is skip/queue, else unlimited).
    max_concurrent: int | None = None

    @property
    def enabled(self) -> bool:
        return self.state is JobState.RUNNABLE

    def replace(self, **changes: Any) -> Job:
        return dataclasses.replace(self, **changes)


@dataclass(slots=True)
class Run:
    run_id: str
    job_id: str
    scheduled_at: int  # ms
    status: RunStatus = RunStatus.RUNNING
    trigger: Trigger = Trigger.SCHEDULE
    attempt: int = 0
    started_at: int | None = None
    finished_at: int | None = None
    node: str = ""
    output: str = ""
    error: str | None = None


# --------------------------------------------------------------------------- input


#: JSON field → attribute for the fields a client may set (SPEC §1).
JOB_FIELDS: dict[str, str] = {
    "name": "name",
    "description": "description",
    "execType": "exec_type",
    "cron": "cron",
    "execAt": "exec_at",
    "script": "script",
    "timezone": "timezone",
    "timeout": "timeout",
    "memoryLimit": "memory_limit",
    "overlap": "overlap",
    "misfire": "misfire",
    "misfireGrace": "misfire_grace",
    "retries": "retries",
    "maxConcurrent": "max_concurrent",
}


def parse_exec_type(value: Any, field_name: str = "execType") -> ExecType:
    """Accept 0/1, "0"/"1" and "timing"/"delay" in any case."""
    if isinstance(value, bool):
        raise ValidationError(field_name, "must be 0 (timing) or 1 (delay)")
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("timing", "0"):
            return ExecType.TIMING
        if text in ("delay", "1"):
            return ExecType.DELAY
    elif isinstance(value, int) and value in (0, 1):
        return ExecType(value)
    raise ValidationError(field_name, f"must be 0 (timing) or 1 (delay), got {value!r}")


def parse_exec_at(value: Any) -> int:
    """Unix seconds or milliseconds, as a number or numeric string → ms (SPEC §1)."""
    if isinstance(value, bool) or value is None:
        raise ValidationError("execAt", "must be a Unix timestamp in seconds or milliseconds")
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise ValidationError("execAt", f"must be a Unix timestamp, got {value!r}") from None
    elif isinstance(value, (int, float)):
        number = float(value)
    else:
        raise ValidationError("execAt", "must be a Unix timestamp in seconds or milliseconds")
    if not math.isfinite(number) or number < 0:
        raise ValidationError("execAt", "must be a positive Unix timestamp")
    ms = number if number > MILLISECONDS_THRESHOLD else number * 1000
    if ms > 253402300799000:  # 9999-12-31T23:59:59Z
        raise ValidationError("execAt", "is beyond the year 9999")
    return int(ms)


def _text(value: Any, field_name: str, max_len: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError(field_name, "must be a string")
    if len(value.encode()) > max_len:
        raise ValidationError(field_name, f"is longer than {max_len} bytes")
    return value


def _number(value: Any, field_name: str, low: float, high: float, integer: bool = False) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValidationError(field_name, f"must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationError(field_name, "must be a number")
    if integer and value != int(value):
        raise ValidationError(field_name, "must be a whole number")
    if not low <= value <= high:
        raise ValidationError(field_name, f"must be between {low:g} and {high:g}")
    return int(value) if integer else float(value)


def _choice(value: Any, field_name: str, enum: type[Enum]) -> Any:
    try:
        return enum(str(value).strip().lower())
    except ValueError:
        allowed = ", ".join(member.value for member in enum)  # type: ignore[attr-defined]
        raise ValidationError(field_name, f"must be one of {allowed}, got {value!r}") from None


def coerce_changes(body: Mapping[str, Any], limits: Limits) -> dict[str, Any]:
    """Turn the JSON fields a client sent into typed attribute changes.

    Unknown fields are ignored (SPEC §1), so ``jobId`` or ``state`` in a body can
    never overwrite anything. ``null`` clears an optional field.
    """
    changes: dict[str, Any] = {}
    for key, attr in JOB_FIELDS.items():
        if key not in body:
            continue
        value = body[key]
        if attr == "exec_type":
            changes[attr] = parse_exec_type(value)
        elif attr == "exec_at":
            changes[attr] = None if value in (None, "") else parse_exec_at(value)
        elif attr == "cron":
            if value is not None and not isinstance(value, str):
                raise ValidationError("cron", "must be a string")
            changes[attr] = value.strip() if value else None
        elif attr == "script":
            changes[attr] = _text(value, "script", limits.max_script_bytes)
        elif attr == "name":
            changes[attr] = _text(value, "name", 200)
        elif attr == "description":
            changes[attr] = _text(value, "description", 4000)
        elif attr == "timezone":
            changes[attr] = _timezone(value)
        elif attr == "timeout":
            changes[attr] = _number(value, "timeout", 0.001, limits.max_timeout)
        elif attr == "memory_limit":
            changes[attr] = _number(value, "memoryLimit", 1, limits.max_memory_mib, integer=True)
        elif attr == "misfire_grace":
            changes[attr] = _number(value, "misfireGrace", 0, 86400 * 366)
        elif attr == "retries":
            changes[attr] = _number(value, "retries", 0, limits.max_retries, integer=True) or 0
        elif attr == "max_concurrent":
            changes[attr] = _number(value, "maxConcurrent", 1, 1000, integer=True)
        elif attr == "overlap":
            changes[attr] = Overlap.ALLOW if value is None else _choice(value, "overlap", Overlap)
        elif attr == "misfire":
            changes[attr] = Misfire.ONCE if value is None else _choice(value, "misfire", Misfire)
    return changes


def _timezone(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValidationError("timezone", "must be an IANA time zone name such as Europe/Paris")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError("timezone", f"unknown time zone {value!r}") from None
    return value


def infer_exec_type(body: Mapping[str, Any], explicit: Any = None) -> ExecType:
    """The type of a new job: ``?type=``, else body ``execType``, else ``cron``/``execAt``."""
    if explicit not in (None, ""):
        return parse_exec_type(explicit, "type")
    if body.get("execType") not in (None, ""):
        return parse_exec_type(body["execType"])
    if body.get("cron"):
        return ExecType.TIMING
    if body.get("execAt") not in (None, ""):
        return ExecType.DELAY
    raise ValidationError("execType", "cannot tell the job type: give ?type=timing|delay, execType, cron or execAt")


def validate_job(job: Job, limits: Limits, *, now: int | None = None, check_exec_at: bool = False) -> None:
    """Check a merged job; raise :class:`ValidationError` naming the first bad field.

    ``check_exec_at`` applies the 5-second rule: a delay job about to be armed,
    or whose ``execAt`` this request changes, must lie far enough ahead.
    """
    from traitor.domain.cron import parse_cron

    if job.exec_type is ExecType.TIMING:
        if not job.cron:
            raise ValidationError("cron", "a timing job needs a cron expression")
        parse_cron(job.cron)
    else:
        if job.exec_at is None:
            raise ValidationError("execAt", "a delay job needs execAt (a Unix timestamp)")
        if check_exec_at:
            current = now_ms() if now is None else now
            minimum = current + int(limits.min_delay_seconds * 1000)
            if job.exec_at < minimum:
                raise ValidationError(
                    "execAt",
                    f"must be at least {limits.min_delay_seconds:g} seconds in the future "
                    f"(got {job.exec_at // 1000}, now is {current // 1000})",
                )


def apply_changes(job: Job, changes: Mapping[str, Any]) -> Job:
    """A copy of ``job`` with ``changes`` applied and its version bumped."""
    return job.replace(**changes, updated_at=now_ms(), version=job.version + 1)
