"""Shared conversion between :class:`Job` / :class:`Run` and stored rows or documents.

Every backend stores the same fields under the same names (snake_case, as the
dataclasses), instants as integer milliseconds, enums as their values (``exec_type``
and ``state`` as integers, the others as strings). Jobs carry one extra column,
``name_fold``: the case-folded name, so that the case-insensitive name search is
the same substring test on every backend (``instr`` / ``strpos`` / ``$indexOfCP``)
and handles non-ASCII text, which SQLite's ``LIKE`` does not.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Mapping, Sequence

from traitor.domain.job import ExecType, Job, JobState, Misfire, Overlap, Run, RunStatus, Trigger

#: Job columns in the order of the :class:`Job` dataclass fields (rows are built positionally).
JOB_COLUMNS: tuple[str, ...] = (
    "job_id",
    "exec_type",
    "name",
    "description",
    "cron",
    "exec_at",
    "script",
    "state",
    "timezone",
    "timeout",
    "memory_limit",
    "overlap",
    "misfire",
    "misfire_grace",
    "retries",
    "last_exec_time",
    "created_at",
    "updated_at",
    "version",
    "max_concurrent",
)

#: Run columns in the order of the :class:`Run` dataclass fields.
RUN_COLUMNS: tuple[str, ...] = (
    "run_id",
    "job_id",
    "scheduled_at",
    "status",
    "trigger",
    "attempt",
    "started_at",
    "finished_at",
    "node",
    "output",
    "error",
)

#: Columns a ``finish_runs`` call overwrites on a run that was claimed before.
RUN_FINAL_COLUMNS: tuple[str, ...] = ("status", "started_at", "finished_at", "node", "output", "error")

#: How each public sort of :class:`~traitor.store.abc.JobQuery` maps to a column.
#: ``next`` (next fire) is computed by the scheduler, not stored: the store sorts it
#: like ``created``, and callers that want a true next-fire order sort one page in memory.
JOB_SORT_COLUMNS: dict[str, str] = {
    "name": "name",
    "created": "created_at",
    "updated": "updated_at",
    "next": "created_at",
    "last": "last_exec_time",
}

RUNNING = RunStatus.RUNNING.value

# Stored value → enum member: a dict lookup costs ~50 ns, ``Enum(value)`` ~1 µs, and
# rows are converted by the thousand (start-up, bursts of fires).
_EXEC_TYPES = {m.value: m for m in ExecType}
_STATES = {m.value: m for m in JobState}
_OVERLAPS = {m.value: m for m in Overlap}
_MISFIRES = {m.value: m for m in Misfire}
_STATUSES = {m.value: m for m in RunStatus}
_TRIGGERS = {m.value: m for m in Trigger}
# Enum member (or its raw value: they hash alike) → stored value, without the ~0.5 µs
# ``.value`` property: every claim and every result write encodes two of them.
_OVERLAP_CODES = {m: m.value for m in Overlap}
_MISFIRE_CODES = {m: m.value for m in Misfire}
_STATUS_CODES = {m: m.value for m in RunStatus}
_TRIGGER_CODES = {m: m.value for m in Trigger}


def _code(codes: dict[Any, Any], enum: Any, value: Any) -> Any:
    try:
        return codes[value]
    except KeyError:
        return enum(value).value  # raises ValueError naming the bad value


#: (column position, code table, enum) of the columns stored as codes.
_JOB_ENUMS = tuple((JOB_COLUMNS.index(column), table, enum) for column, table, enum in (
    ("exec_type", _EXEC_TYPES, ExecType), ("state", _STATES, JobState),
    ("overlap", _OVERLAPS, Overlap), ("misfire", _MISFIRES, Misfire)))
_RUN_ENUMS = tuple((RUN_COLUMNS.index(column), table, enum) for column, table, enum in (
    ("status", _STATUSES, RunStatus), ("trigger", _TRIGGERS, Trigger)))


def clean_text(value: str) -> str:
    """``value`` made encodable as UTF-8.

    JSON decoding (and JS strings) can produce lone UTF-16 surrogates, which no
    store can encode: a high/low pair split over two code points is joined, a lone
    one becomes U+FFFD, instead of failing the whole write.
    """
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return value


def _opt_text(value: str | None) -> str | None:
    return None if value is None else clean_text(value)


def fold_name(name: str) -> str:
    """The case-insensitive form a name search compares against."""
    return clean_text(name).casefold()


def fold_search(search: str | None) -> str | None:
    """The folded needle of a name search; ``None`` or empty means "no filter"."""
    if not search:
        return None
    return clean_text(search).casefold()


def sort_column(sort: str) -> str:
    try:
        return JOB_SORT_COLUMNS[sort]
    except KeyError:
        raise ValueError(f"unknown job sort {sort!r}; use one of {', '.join(JOB_SORT_COLUMNS)}") from None


# --------------------------------------------------------------------------- jobs


def job_values(job: Job) -> tuple[Any, ...]:
    """The job as a tuple in :data:`JOB_COLUMNS` order followed by ``name_fold``."""
    name = clean_text(job.name)
    return (
        job.job_id,
        int(job.exec_type),
        name,
        clean_text(job.description),
        _opt_text(job.cron),
        job.exec_at,
        clean_text(job.script),
        int(job.state),
        _opt_text(job.timezone),
        None if job.timeout is None else float(job.timeout),
        job.memory_limit,
        _code(_OVERLAP_CODES, Overlap, job.overlap),
        _code(_MISFIRE_CODES, Misfire, job.misfire),
        None if job.misfire_grace is None else float(job.misfire_grace),
        int(job.retries),
        job.last_exec_time,
        job.created_at,
        job.updated_at,
        int(job.version),
        job.max_concurrent,
        name.casefold(),
    )


def job_from_row(row: Sequence[Any]) -> Job:
    """A job from a row whose first columns are :data:`JOB_COLUMNS` in order (the
    order of :class:`Job`'s fields)."""
    return Job(*_decoded(row, len(JOB_COLUMNS), _JOB_ENUMS))


def job_document(job: Job) -> dict[str, Any]:
    """The job as a MongoDB document (``_id`` is the job id)."""
    values = job_values(job)
    doc = dict(zip(JOB_COLUMNS, values[:-1], strict=True))
    doc["name_fold"] = values[-1]
    doc["_id"] = doc.pop("job_id")
    return doc


def job_from_document(doc: Mapping[str, Any]) -> Job:
    return job_from_row([doc["_id"], *(doc.get(column) for column in JOB_COLUMNS[1:])])


# --------------------------------------------------------------------------- runs


def run_values(run: Run) -> tuple[Any, ...]:
    """The run as a tuple in :data:`RUN_COLUMNS` order."""
    return (
        run.run_id,
        run.job_id,
        int(run.scheduled_at),
        _code(_STATUS_CODES, RunStatus, run.status),
        _code(_TRIGGER_CODES, Trigger, run.trigger),
        int(run.attempt),
        run.started_at,
        run.finished_at,
        clean_text(run.node),
        clean_text(run.output),
        _opt_text(run.error),
    )


def run_from_row(row: Sequence[Any]) -> Run:
    """A run from a row whose first columns are :data:`RUN_COLUMNS` in order (the
    order of :class:`Run`'s fields)."""
    return Run(*_decoded(row, len(RUN_COLUMNS), _RUN_ENUMS))


def _decoded(row: Sequence[Any], width: int, enums: tuple[tuple[int, dict[Any, Any], Any], ...]) -> list[Any]:
    """The first ``width`` values of ``row``, with stored codes turned into enum members."""
    values = list(row[:width])
    for i, table, enum in enums:
        code = values[i]
        member = table.get(code)
        values[i] = member if member is not None else enum(code)  # enum() names a bad code
    return values


def run_document(run: Run) -> dict[str, Any]:
    doc = dict(zip(RUN_COLUMNS, run_values(run), strict=True))
    doc["_id"] = doc.pop("run_id")
    return doc


def run_from_document(doc: Mapping[str, Any]) -> Run:
    return run_from_row([doc["_id"], *(doc.get(column) for column in RUN_COLUMNS[1:])])


def last_per_id(items: Sequence[Any], key: Any) -> list[Any]:
    """``items`` without earlier duplicates of the same ``key(item)`` (the last one wins),
    in the order of their last occurrence."""
    seen: dict[Any, Any] = {}
    for item in items:
        k = key(item)
        seen.pop(k, None)
        seen[k] = item
    return list(seen.values())


# --------------------------------------------------------------------------- namespaces

_UNSAFE = re.compile(r"[^a-z0-9_]")


def namespace_token(namespace: str, max_len: int = 40) -> str:
    """A cluster name made safe for a file name, a PostgreSQL schema or a MongoDB database.

    Lower-case ASCII letters, digits and ``_`` pass unchanged; anything else (or an
    over-long name) is replaced and a short hash of the original is appended, so two
    different cluster names never share a token.
    """
    if not namespace:
        raise ValueError("the namespace (cluster name) must not be empty")
    token = _UNSAFE.sub("_", namespace.lower())
    if token == namespace and len(token) <= max_len:
        return token
    digest = hashlib.sha1(namespace.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{token[: max_len - 9]}_{digest}"
