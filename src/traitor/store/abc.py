"""The store interface: jobs, run history and per-job key/value state.

Every backend (``sqlite.py``, ``postgresql.py``, ``mongodb.py``) passes the one
contract suite in ``tests/store/test_contract.py``. The contract:

* Every coroutine that writes returns only once the write is durable against a
  crash of this process (SQLite: committed in WAL mode; servers: committed).
  Backends group concurrent writes into one transaction where they can.
* Instants are integer milliseconds since the epoch (UTC); ids are strings.
* ``claim_runs`` is the cluster's exactly-once arbiter: a run is identified by
  ``(job_id, scheduled_at, attempt)``; inserting one that already exists fails
  for that run only, and only the runs actually inserted are returned, even when
  several processes claim the same runs at the same moment.
* Reads never return another cluster's data: a backend is opened for one
  namespace (the cluster name) and keeps it apart (its own file, schema or
  database).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import AsyncIterator, Literal, Sequence

from traitor.domain.job import ExecType, Job, JobState, Run, RunStatus
from traitor.domain.library import LibraryInfo, LibraryVersion, VersionInfo

JobSort = Literal["name", "created", "updated", "next", "last"]


@dataclass(frozen=True, slots=True)
class JobQuery:
    """Filters of a job listing; ``None`` means "any"."""

    exec_type: ExecType | None = None
    state: JobState | None = None
    search: str | None = None  # case-insensitive substring of the name
    sort: JobSort = "created"
    descending: bool = False
    offset: int = 0
    limit: int = 100


@dataclass(frozen=True, slots=True)
class RunQuery:
    job_id: str | None = None
    status: RunStatus | None = None
    since: int | None = None  # scheduled_at >= since (ms)
    until: int | None = None  # scheduled_at < until (ms)
    offset: int = 0
    limit: int = 100


class JobStore(ABC):
    """Persistent state of one Traitor installation (or one cluster)."""

    @abstractmethod
    async def start(self) -> None:
        """Open connections and run pending schema migrations."""

    @abstractmethod
    async def close(self) -> None:
        """Flush pending writes and release every resource. Idempotent."""

    async def ping(self) -> None:
        """Raise if the store cannot be reached (used by ``/readyz``)."""
        await self.get_job("-")

    # ---------------------------------------------------------------- jobs
    @abstractmethod
    async def add_job(self, job: Job) -> None:
        """Insert a new job. Raise ``ConflictError`` when its id exists."""

    @abstractmethod
    async def get_job(self, job_id: str) -> Job | None:
        """The job with its script, or ``None``."""

    @abstractmethod
    async def update_job(self, job: Job) -> bool:
        """Replace the stored job with ``job`` (whole row). ``False`` if it is gone."""

    @abstractmethod
    async def delete_job(self, job_id: str) -> bool:
        """Delete the job, its runs and its key/value state. ``False`` if it was not there."""

    @abstractmethod
    async def list_jobs(self, query: JobQuery) -> tuple[list[Job], int]:
        """One page of jobs (scripts included) and the total that match the filters.

        Sorts: ``name`` by the UTF-8 bytes of the name; ``created``/``updated``/``last``
        by ``created_at``/``updated_at``/``last_exec_time`` (a job that never ran sorts as
        the oldest); ``next`` sorts like ``created`` (the next fire is computed by the
        scheduler, not stored). Ties are broken by ``job_id``, so pages are stable.
        ``search`` is a substring test on the case-folded name (``str.casefold``).
        ``limit=0`` returns no job, only the total."""

    @abstractmethod
    def iter_jobs(self, *, enabled_only: bool = False, batch: int = 5000) -> AsyncIterator[list[Job]]:
        """Every job in batches, for arming at start-up and for export."""

    @abstractmethod
    async def job_versions(self) -> dict[str, int]:
        """``{job_id: version}`` of every enabled job, for cluster reconciliation."""

    @abstractmethod
    async def count_jobs(self) -> dict[str, int]:
        """Counts by state and type: keys ``total``, ``runnable``, ``stopped``, ``timing``, ``delay``."""

    @abstractmethod
    async def set_last_exec(self, updates: Sequence[tuple[str, int, JobState | None]]) -> None:
        """For each ``(job_id, last_exec_time, new_state)`` set ``lastExecTime``, and the
        state where it is not ``None`` (a delay job stops once it has fired)."""

    # ---------------------------------------------------------------- runs
    @abstractmethod
    async def claim_runs(self, runs: Sequence[Run]) -> list[Run]:
        """Insert runs that do not exist yet; return those this call inserted."""

    @abstractmethod
    async def finish_runs(self, runs: Sequence[Run]) -> None:
        """Store the final state (status, times, output, error, node) of claimed runs,
        inserting any that were never claimed. A never-claimed run whose slot
        ``(job_id, scheduled_at, attempt)`` another run holds is dropped (logged), without
        failing the rest of the batch."""

    @abstractmethod
    async def get_run(self, run_id: str) -> Run | None: ...

    @abstractmethod
    async def list_runs(self, query: RunQuery) -> tuple[list[Run], int]:
        """Runs newest first (by ``scheduled_at``, then ``started_at`` with unstarted runs
        last, then ``attempt``), and the total that match."""

    @abstractmethod
    async def prune_runs(self, keep_per_job: int, older_than: int) -> int:
        """Delete finished runs beyond the newest ``keep_per_job`` of each job, and every
        finished run scheduled before ``older_than`` (ms). Return how many went.

        "Newest" ranks a job's finished runs in the order of :meth:`list_runs`; runs
        still ``running`` are never deleted and do not count towards ``keep_per_job``."""

    # ---------------------------------------------------------------- key/value
    @abstractmethod
    async def kv_get(self, job_id: str, key: str) -> str | None: ...

    @abstractmethod
    async def kv_set(self, job_id: str, key: str, value: str) -> None: ...

    @abstractmethod
    async def kv_delete(self, job_id: str, key: str) -> bool: ...

    # ---------------------------------------------------------------- libraries
    # Script libraries (``traitor.domain.library``): named JavaScript modules with an
    # append-only version history. Every backend implements these; the defaults only
    # keep stores written before libraries existed (test doubles) instantiable.
    #
    # * ``(name, version)`` names one source forever: versions of a name are 1, 2, 3…
    #   in the order they were added, and a number is never given twice, not even after
    #   ``delete_library`` (the name's counter survives as a tombstone). MongoDB may
    #   skip a number after a crash between its two writes; the SQL stores never do.
    # * Concurrent ``add_library_version`` calls for one name, from any number of
    #   processes, each get their own number (no lost update, no duplicate).
    # * Names are validated by the caller (``traitor.domain.library.validate_name``).

    async def add_library_version(self, name: str, source: str, *, create: bool | None = None) -> LibraryVersion:
        """Store ``source`` as the next version of library ``name`` and return it.

        ``create=True``: the library must not exist (``ConflictError`` otherwise; a
        deleted library may be created again, its numbering goes on). ``create=False``:
        it must exist (``NotFoundError`` otherwise). ``None``: either."""
        raise NotImplementedError(f"{type(self).__name__} does not store libraries")

    async def get_library(self, name: str, version: int | None = None) -> LibraryVersion | None:
        """Version ``version`` of library ``name`` (the latest when ``None``), or ``None``
        when the library or that version does not exist (a deleted library has none)."""
        raise NotImplementedError(f"{type(self).__name__} does not store libraries")

    async def list_libraries(self) -> list[LibraryInfo]:
        """Every library (not deleted) with its latest version, sorted by name."""
        raise NotImplementedError(f"{type(self).__name__} does not store libraries")

    async def list_library_versions(self, name: str) -> list[VersionInfo]:
        """The versions of library ``name``, newest first; ``[]`` when it does not exist."""
        raise NotImplementedError(f"{type(self).__name__} does not store libraries")

    async def delete_library(self, name: str) -> bool:
        """Delete library ``name`` and every version of it. ``False`` if it was not there."""
        raise NotImplementedError(f"{type(self).__name__} does not store libraries")


async def get_jobs(store: JobStore, job_ids: Sequence[str]) -> dict[str, Job]:
    """Fetch many jobs at once; uses the backend's ``get_jobs`` when it has one."""
    bulk = getattr(store, "get_jobs", None)
    if bulk is not None:
        return await bulk(job_ids)
    found: dict[str, Job] = {}
    for job_id in job_ids:
        job = await store.get_job(job_id)
        if job is not None:
            found[job_id] = job
    return found
