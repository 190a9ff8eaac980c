"""The embedded store: one SQLite file in WAL mode.

Threads and connections
-----------------------
* **One writer thread** owns the only writing connection. Every write method turns
  into an operation queued for it; the thread takes *every* operation waiting in its
  queue, runs them in one ``BEGIN IMMEDIATE`` transaction (each inside its own
  savepoint, or for a single statement SQLite's statement rollback, so one failing
  operation does not undo the others), commits once, and
  only then resolves each caller's future on its event loop
  (``loop.call_soon_threadsafe``). So a write coroutine returns after its commit, and
  32 concurrent writers cost a handful of commits instead of 32 (group commit).
* **Reader threads** (two by default, each with its own connection) run listings,
  iterations and counts, so they never wait behind writes (WAL readers see the last
  committed snapshot).
* **Point reads** (``get_job``, ``get_run``, ``kv_get``) run inline on the event loop
  with a dedicated connection: a primary-key lookup costs ~10 µs, while a hop to a
  thread and back costs ~90 µs. That connection never waits for a lock
  (``busy_timeout=0``); in the rare case SQLite answers "busy" to a WAL reader the
  read is retried on a reader thread.

A write whose caller is cancelled while it waits may still be committed (the
operation is already queued), as with any database client.

Durability: ``synchronous=NORMAL`` in WAL mode survives a crash (``kill -9``) of the
process but not a power loss; ``synchronous=FULL`` survives both at ~150 µs per
commit (group commit amortises it).

The file holds one cluster's data: the factory (``traitor.store.open_store``) names
it after the namespace. Schema changes are the ordered :data:`MIGRATIONS`, applied
in one transaction by :meth:`SqliteStore.start` and recorded in ``schema_version``.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Sequence, Union

from traitor.domain.errors import ConflictError, NotFoundError
from traitor.domain.job import Job, JobState, Run, RunStatus
from traitor.domain.library import LibraryInfo, LibraryVersion, VersionInfo
from traitor.domain.timeutil import now_ms
from traitor.store import codec
from traitor.store.abc import JobQuery, JobStore, RunQuery

log = logging.getLogger(__name__)

Migration = tuple[int, Sequence[Union[str, Callable[[sqlite3.Connection], None]]]]

#: Ordered schema migrations: ``(version, statements)``; a statement is SQL or a
#: callable taking the connection. Never edit a released one: append a new version.
#: Big columns (``script``, ``output``, ``error``) come last in their tables, so scans
#: that read the small columns never walk a row's overflow pages.
MIGRATIONS: list[Migration] = [
    (
        1,
        [
            """CREATE TABLE jobs (
                job_id         TEXT PRIMARY KEY NOT NULL,
                exec_type      INTEGER NOT NULL,
                name           TEXT NOT NULL,
                name_fold      TEXT NOT NULL,
                description    TEXT NOT NULL,
                cron           TEXT,
                exec_at        INTEGER,
                state          INTEGER NOT NULL,
                timezone       TEXT,
                timeout        REAL,
                memory_limit   INTEGER,
                overlap        TEXT NOT NULL,
                misfire        TEXT NOT NULL,
                misfire_grace  REAL,
                retries        INTEGER NOT NULL,
                last_exec_time INTEGER,
                created_at     INTEGER NOT NULL,
                updated_at     INTEGER NOT NULL,
                version        INTEGER NOT NULL,
                script         TEXT NOT NULL
            )""",
            "CREATE INDEX jobs_state ON jobs (state)",
            """CREATE TABLE runs (
                run_id       TEXT PRIMARY KEY NOT NULL,
                job_id       TEXT NOT NULL,
                scheduled_at INTEGER NOT NULL,
                status       TEXT NOT NULL,
                trigger      TEXT NOT NULL,
                attempt      INTEGER NOT NULL,
                started_at   INTEGER,
                finished_at  INTEGER,
                node         TEXT NOT NULL,
                error        TEXT,
                output       TEXT NOT NULL
            )""",
            # The exactly-once arbiter of claims; it also serves "runs of a job, newest first".
            "CREATE UNIQUE INDEX runs_slot ON runs (job_id, scheduled_at DESC, attempt)",
            "CREATE INDEX runs_status ON runs (status)",
            "CREATE INDEX runs_scheduled ON runs (scheduled_at)",
            """CREATE TABLE kv (
                job_id TEXT NOT NULL,
                key    TEXT NOT NULL,
                value  TEXT NOT NULL,
                PRIMARY KEY (job_id, key)
            ) WITHOUT ROWID""",
        ],
    ),
    (2, ["ALTER TABLE jobs ADD COLUMN max_concurrent INTEGER"]),
    (
        3,
        [
            # Script libraries: one head row per name (``latest`` is also the counter of
            # version numbers, kept with ``deleted = 1`` after a delete so that numbers are
            # never reused) and one row per version.
            """CREATE TABLE libraries (
                name       TEXT PRIMARY KEY NOT NULL,
                latest     INTEGER NOT NULL,
                created_at INTEGER NOT NULL,
                updated_at INTEGER NOT NULL,
                size       INTEGER NOT NULL,
                deleted    INTEGER NOT NULL DEFAULT 0
            ) WITHOUT ROWID""",
            """CREATE TABLE library_versions (
                name       TEXT NOT NULL,
                version    INTEGER NOT NULL,
                created_at INTEGER NOT NULL,
                size       INTEGER NOT NULL,
                source     TEXT NOT NULL,
                PRIMARY KEY (name, version)
            )""",
        ],
    ),
]

_SYNCHRONOUS = {"normal": "NORMAL", "full": "FULL", "extra": "EXTRA"}
_STOP = object()
#: (loop, future, exception, value) of one finished operation.
_Result = tuple[Any, Any, Union[BaseException, None], Any]

_JOB_SELECT = f"SELECT {', '.join(codec.JOB_COLUMNS)} FROM jobs"
_JOB_INSERT = (
    f"INSERT INTO jobs ({', '.join(codec.JOB_COLUMNS)}, name_fold) "
    f"VALUES ({', '.join('?' * (len(codec.JOB_COLUMNS) + 1))})"
)
_JOB_UPDATE = (
    "UPDATE jobs SET "
    + ", ".join(f"{c} = ?" for c in codec.JOB_COLUMNS[1:])
    + ", name_fold = ? WHERE job_id = ?"
)
_RUN_SELECT = f"SELECT {', '.join(codec.RUN_COLUMNS)} FROM runs"
_RUN_INSERT = (
    f"INSERT INTO runs ({', '.join(codec.RUN_COLUMNS)}) VALUES ({', '.join('?' * len(codec.RUN_COLUMNS))}) "
    "ON CONFLICT DO NOTHING"
)
_RUN_FINISH = (
    "UPDATE runs SET " + ", ".join(f"{c} = ?" for c in codec.RUN_FINAL_COLUMNS) + " WHERE run_id = ?"
)
_RUN_ORDER = "ORDER BY scheduled_at DESC, started_at DESC NULLS LAST, attempt DESC, run_id DESC"
#: SQLite's limit on host parameters is 32766 (3.32+); stay far below it.
_IN_CHUNK = 500
#: ``get_jobs`` of at most this many ids reads inline, like a point read.
_INLINE_MANY = 16


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED
    return "locked" in str(exc) or "busy" in str(exc)


def _resolve(results: list[tuple[asyncio.Future[Any], BaseException | None, Any]]) -> None:
    for fut, exc, value in results:
        if fut.done():  # the caller was cancelled
            continue
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(value)


def _deliver(results: Sequence[_Result]) -> None:
    """Hand results back to their loops: one wake-up per loop per batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], BaseException | None, Any]]] = {}
    for loop, fut, exc, value in results:
        by_loop.setdefault(loop, []).append((fut, exc, value))
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, items)
        except RuntimeError:  # that loop is closed: nobody waits any more
            pass


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> tuple[int, int]:
    """Apply pending migrations in one transaction; return (version before, version after)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)"
        )
        current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
        latest = max((version for version, _ in migrations), default=0)
        if current > latest:
            raise RuntimeError(
                f"the database schema is at version {current}, newer than this Traitor knows ({latest}): "
                "upgrade Traitor or use another data directory"
            )
        for version, statements in sorted(migrations, key=lambda m: m[0]):
            if version <= current:
                continue
            for statement in statements:
                if callable(statement):
                    statement(conn)
                else:
                    conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (version, now_ms()))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return current, max(current, latest)


class SqliteStore(JobStore):
    """A :class:`JobStore` in one SQLite file (WAL, group-committed writes)."""

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "normal",
        busy_timeout: float = 30.0,
        readers: int = 2,
        max_batch: int = 1000,
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> None:
        key = synchronous.strip().lower()
        if key not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}, got {synchronous!r}")
        self.path = Path(path)
        self.synchronous = _SYNCHRONOUS[key]
        self._busy_ms = int(busy_timeout * 1000)
        self._reader_count = max(1, readers)
        self._max_batch = max(1, max_batch)
        self._migrations = list(migrations)
        self._writes: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._reads: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._writer: threading.Thread | None = None
        self._inline: sqlite3.Connection | None = None
        self._started = False
        self._closed = False
        #: Schema version before and after :meth:`start`.
        self.schema_versions: tuple[int, int] = (0, 0)
        #: Counters of the writer: operations run and transactions committed.
        self.stats = {"writes": 0, "commits": 0}

    # ------------------------------------------------------------------ lifecycle
    def _connect(self, busy_ms: int, cache_kib: int = 8192) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, cached_statements=256)
        conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
        conn.execute(f"PRAGMA cache_size = -{cache_kib}")
        return conn

    def _open_writer(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect(self._busy_ms, cache_kib=32768)
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise RuntimeError(f"SQLite refused WAL mode for {self.path} (journal_mode={mode})")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            self.schema_versions = migrate(conn, self._migrations)
        except BaseException:
            conn.close()
            raise
        return conn

    async def start(self) -> None:
        if self._started:
            return
        writer_conn = await asyncio.to_thread(self._open_writer)
        self._started = True
        self._writer = threading.Thread(
            target=self._writer_main, args=(writer_conn,), name=f"traitor-sqlite-writer:{self.path.name}", daemon=True
        )
        self._writer.start()
        for i in range(self._reader_count):
            conn = self._connect(self._busy_ms)
            thread = threading.Thread(
                target=self._reader_main, args=(conn,), name=f"traitor-sqlite-reader{i}:{self.path.name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        self._inline = self._connect(0)

    async def close(self) -> None:
        if not self._started or self._closed:
            self._closed = True
            return
        self._closed = True
        self._writes.put(_STOP)
        for _ in self._threads:
            self._reads.put(_STOP)
        threads = [t for t in [self._writer, *self._threads] if t is not None]

        def join() -> None:
            for thread in threads:
                thread.join()

        await asyncio.to_thread(join)
        if self._inline is not None:
            self._inline.close()
            self._inline = None

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the SQLite store is closed")
        if not self._started:
            raise RuntimeError("the SQLite store is not started: await store.start() first")

    # ------------------------------------------------------------------ the writer
    async def _write(self, op: Callable[[sqlite3.Connection], Any], *, one_statement: bool = False) -> Any:
        """Queue ``op`` for the writer thread; return its result once committed.

        ``one_statement``: ``op`` runs a single SQL statement (``execute``, not
        ``executemany``). SQLite undoes a failed statement by itself and keeps the
        transaction, so such an operation needs no savepoint of its own in a batch: that
        saves two statements per job create (``SAVEPOINT`` / ``RELEASE``, ~4 µs of the
        writer thread, which competes with the event loop for the GIL).
        """
        self._check_open()
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._writes.put((op, loop, fut, one_statement))
        return await fut

    def _writer_main(self, conn: sqlite3.Connection) -> None:
        stop = False
        try:
            while not stop:
                item = self._writes.get()
                batch = []
                while True:
                    if item is _STOP:
                        stop = True
                    else:
                        batch.append(item)
                    if len(batch) >= self._max_batch:
                        break
                    try:
                        item = self._writes.get_nowait()
                    except queue.Empty:
                        break
                if batch:
                    self._run_batch(conn, batch)
        finally:
            # Anything queued after the stop sentinel: fail it rather than leave it hanging.
            leftovers = []
            while True:
                try:
                    item = self._writes.get_nowait()
                except queue.Empty:
                    break
                if item is not _STOP:
                    leftovers.append((item[1], item[2], RuntimeError("the SQLite store is closed"), None))
            _deliver(leftovers)
            conn.close()

    def _run_batch(self, conn: sqlite3.Connection, batch: list[Any]) -> None:
        try:
            results = self._transaction(conn, batch)
        except BaseException as exc:  # BEGIN or COMMIT failed (busy beyond the timeout, I/O error…)
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            results = [(loop, fut, exc, None) for _, loop, fut, _ in batch]
        self.stats["writes"] += len(batch)
        _deliver(results)

    def _transaction(self, conn: sqlite3.Connection, batch: list[Any]) -> list[_Result]:
        """Run ``batch`` in one transaction; per-operation failures are isolated by savepoints
        (or, for a single statement, by SQLite's own statement rollback)."""
        results: list[_Result] = []
        conn.execute("BEGIN IMMEDIATE")
        single = len(batch) == 1
        ok = 0
        for op, loop, fut, one_statement in batch:
            guarded = not single and not one_statement
            if guarded:
                conn.execute("SAVEPOINT op")
            try:
                value = op(conn)
            except BaseException as exc:
                if guarded:
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                elif not conn.in_transaction:
                    # An error that ends the whole transaction (disk full, I/O error): the
                    # operations before this one are undone too, so the batch fails as one.
                    raise
                results.append((loop, fut, exc, None))
            else:
                if guarded:
                    conn.execute("RELEASE op")
                results.append((loop, fut, None, value))
                ok += 1
        if ok:
            conn.execute("COMMIT")
            self.stats["commits"] += 1
        else:
            conn.execute("ROLLBACK")
        return results

    # ------------------------------------------------------------------ readers
    async def _read(self, op: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``op`` on a reader thread (inside one read transaction)."""
        self._check_open()
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._reads.put((op, loop, fut))
        return await fut

    def _reader_main(self, conn: sqlite3.Connection) -> None:
        try:
            while True:
                item = self._reads.get()
                if item is _STOP:
                    return
                op, loop, fut = item
                try:
                    conn.execute("BEGIN")
                    try:
                        value = op(conn)
                    finally:
                        conn.execute("COMMIT")
                    _deliver([(loop, fut, None, value)])
                except BaseException as exc:
                    _deliver([(loop, fut, exc, None)])
        finally:
            conn.close()

    async def _rows(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """Every row of one query, on a reader thread."""
        return await self._read(lambda conn: conn.execute(sql, params).fetchall())

    async def _point(self, sql: str, params: tuple[Any, ...]) -> Any:
        """One row by key (or ``None``), read inline (see the module docstring).

        ``fetchall`` runs the statement to its end, so the implicit read transaction
        ends with it and the next read sees the latest commit."""
        self._check_open()
        assert self._inline is not None
        try:
            rows = self._inline.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
            rows = await self._rows(sql, params)
        return rows[0] if rows else None

    # ------------------------------------------------------------------ jobs
    async def add_job(self, job: Job) -> None:
        values = codec.job_values(job)

        def op(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(_JOB_INSERT, values)
            except sqlite3.IntegrityError as exc:
                if "UNIQUE" in str(exc):
                    raise ConflictError(f"a job with id {job.job_id!r} already exists") from None
                raise

        await self._write(op, one_statement=True)

    async def get_job(self, job_id: str) -> Job | None:
        row = await self._point(f"{_JOB_SELECT} WHERE job_id = ?", (job_id,))
        return None if row is None else codec.job_from_row(row)

    async def get_jobs(self, job_ids: Sequence[str]) -> dict[str, Job]:
        """Many jobs by id (those that exist), in one read: see ``traitor.store.abc.get_jobs``."""
        ids = list(dict.fromkeys(job_ids))
        if not ids:
            return {}
        if len(ids) <= _INLINE_MANY:
            self._check_open()
            assert self._inline is not None
            try:
                return _jobs_by_id(_fetch_in(self._inline, _JOB_SELECT, "job_id", ids, codec.job_from_row))
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
        jobs = await self._read(lambda conn: _fetch_in(conn, _JOB_SELECT, "job_id", ids, codec.job_from_row))
        return _jobs_by_id(jobs)

    async def update_job(self, job: Job) -> bool:
        values = codec.job_values(job)
        params = (*values[1:], values[0])
        return await self._write(lambda conn: conn.execute(_JOB_UPDATE, params).rowcount > 0, one_statement=True)

    async def delete_job(self, job_id: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM kv WHERE job_id = ?", (job_id,))
            conn.execute("DELETE FROM runs WHERE job_id = ?", (job_id,))
            return conn.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,)).rowcount > 0

        return await self._write(op)

    async def list_jobs(self, query: JobQuery) -> tuple[list[Job], int]:
        where: list[str] = []
        params: list[Any] = []
        if query.exec_type is not None:
            where.append("exec_type = ?")
            params.append(int(query.exec_type))
        if query.state is not None:
            where.append("state = ?")
            params.append(int(query.state))
        needle = codec.fold_search(query.search)
        if needle:
            where.append("instr(name_fold, ?) > 0")
            params.append(needle)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        column = codec.sort_column(query.sort)
        direction = "DESC" if query.descending else "ASC"
        nulls = "NULLS LAST" if query.descending else "NULLS FIRST"
        order = f" ORDER BY {column} {direction} {nulls}, job_id {direction}"
        limit, offset = max(0, query.limit), max(0, query.offset)

        def op(conn: sqlite3.Connection) -> tuple[list[Job], int]:
            total = conn.execute(f"SELECT count(*) FROM jobs{clause}", params).fetchone()[0]
            if limit == 0 or offset >= total:
                return [], total
            # Two phases: sort only ids and keys, then fetch the (possibly large) rows.
            page = conn.execute(f"SELECT job_id FROM jobs{clause}{order} LIMIT ? OFFSET ?", (*params, limit, offset))
            ids = [r[0] for r in page]
            return _fetch_in(conn, _JOB_SELECT, "job_id", ids, codec.job_from_row), total

        return await self._read(op)

    async def iter_jobs(self, *, enabled_only: bool = False, batch: int = 5000) -> AsyncIterator[list[Job]]:
        size = max(1, batch)
        # ``+state``: filter rows without using the ``jobs_state`` index, so that SQLite
        # walks the primary key from ``last`` (the index made every page scan and sort
        # all enabled jobs: quadratic, ~2 min for a million jobs).
        state = " AND +state = 1" if enabled_only else ""
        sql = f"{_JOB_SELECT} WHERE job_id > ?{state} ORDER BY job_id LIMIT ?"
        last = ""
        while True:
            rows = await self._rows(sql, (last, size))
            if not rows:
                return
            yield [codec.job_from_row(row) for row in rows]
            if len(rows) < size:
                return
            last = rows[-1][0]

    async def job_versions(self) -> dict[str, int]:
        return await self._read(
            lambda conn: dict(conn.execute("SELECT job_id, version FROM jobs WHERE state = 1").fetchall())
        )

    async def count_jobs(self) -> dict[str, int]:
        sql = "SELECT state, exec_type, count(*) FROM jobs GROUP BY state, exec_type"
        rows = await self._read(lambda conn: conn.execute(sql).fetchall())
        return _counts(rows)

    async def set_last_exec(self, updates: Sequence[tuple[str, int, JobState | None]]) -> None:
        if not updates:
            return
        latest = codec.last_per_id(list(updates), lambda u: u[0])
        # Most updates keep the state: leaving it out of their SET spares the state index.
        times = [(last, job_id) for job_id, last, state in latest if state is None]
        stops = [(last, int(state), job_id) for job_id, last, state in latest if state is not None]

        def op(conn: sqlite3.Connection) -> None:
            if times:
                conn.executemany("UPDATE jobs SET last_exec_time = ? WHERE job_id = ?", times)
            if stops:
                conn.executemany("UPDATE jobs SET last_exec_time = ?, state = ? WHERE job_id = ?", stops)

        await self._write(op)

    # ------------------------------------------------------------------ runs
    async def claim_runs(self, runs: Sequence[Run]) -> list[Run]:
        if not runs:
            return []
        rows = [codec.run_values(run) for run in runs]

        def op(conn: sqlite3.Connection) -> list[Run]:
            # One statement for the batch; usually every slot is free. Otherwise the
            # claimed runs are the ones whose (fresh) ids are now stored.
            if conn.executemany(_RUN_INSERT, rows).rowcount == len(rows):
                return list(runs)
            stored = _stored_run_ids(conn, [run.run_id for run in runs])
            return [run for run in runs if run.run_id in stored]

        return await self._write(op)

    async def finish_runs(self, runs: Sequence[Run]) -> None:
        if not runs:
            return
        rows = [codec.run_values(run) for run in codec.last_per_id(list(runs), lambda r: r.run_id)]
        final = [codec.RUN_COLUMNS.index(c) for c in codec.RUN_FINAL_COLUMNS]

        def op(conn: sqlite3.Connection) -> None:
            finals = [(*(values[i] for i in final), values[0]) for values in rows]
            if conn.executemany(_RUN_FINISH, finals).rowcount == len(rows):
                return  # the usual case: every run was claimed here
            stored = _stored_run_ids(conn, [values[0] for values in rows])
            cur = conn.cursor()
            for values in rows:
                if values[0] in stored:
                    continue
                if cur.execute(_RUN_INSERT, values).rowcount == 0:
                    log.warning(
                        "run %s of job %s at %s: another run already holds that slot; its final state is not stored",
                        values[0],
                        values[1],
                        values[2],
                    )

        await self._write(op)

    async def get_run(self, run_id: str) -> Run | None:
        row = await self._point(f"{_RUN_SELECT} WHERE run_id = ?", (run_id,))
        return None if row is None else codec.run_from_row(row)

    async def list_runs(self, query: RunQuery) -> tuple[list[Run], int]:
        where: list[str] = []
        params: list[Any] = []
        if query.job_id is not None:
            where.append("job_id = ?")
            params.append(query.job_id)
        if query.status is not None:
            where.append("status = ?")
            params.append(RunStatus(query.status).value)
        if query.since is not None:
            where.append("scheduled_at >= ?")
            params.append(int(query.since))
        if query.until is not None:
            where.append("scheduled_at < ?")
            params.append(int(query.until))
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        limit, offset = max(0, query.limit), max(0, query.offset)

        def op(conn: sqlite3.Connection) -> tuple[list[Run], int]:
            total = conn.execute(f"SELECT count(*) FROM runs{clause}", params).fetchone()[0]
            if limit == 0 or offset >= total:
                return [], total
            ids = [
                r[0]
                for r in conn.execute(
                    f"SELECT run_id FROM runs{clause} {_RUN_ORDER} LIMIT ? OFFSET ?", (*params, limit, offset)
                )
            ]
            return _fetch_in(conn, _RUN_SELECT, "run_id", ids, codec.run_from_row), total

        return await self._read(op)

    async def prune_runs(self, keep_per_job: int, older_than: int) -> int:
        keep = max(0, int(keep_per_job))
        sql = f"""
            DELETE FROM runs
            WHERE status <> '{codec.RUNNING}' AND (
                scheduled_at < ?
                OR run_id IN (
                    SELECT run_id FROM (
                        SELECT run_id, row_number() OVER (
                            PARTITION BY job_id
                            ORDER BY scheduled_at DESC, started_at DESC NULLS LAST, attempt DESC, run_id DESC
                        ) AS rn
                        FROM runs WHERE status <> '{codec.RUNNING}'
                    ) WHERE rn > ?
                )
            )"""
        params = (int(older_than), keep)
        return await self._write(lambda conn: conn.execute(sql, params).rowcount, one_statement=True)

    # ------------------------------------------------------------------ key/value
    async def kv_get(self, job_id: str, key: str) -> str | None:
        row = await self._point("SELECT value FROM kv WHERE job_id = ? AND key = ?", (job_id, key))
        return None if row is None else row[0]

    async def kv_set(self, job_id: str, key: str, value: str) -> None:
        params = (job_id, codec.clean_text(key), codec.clean_text(value))
        sql = (
            "INSERT INTO kv (job_id, key, value) VALUES (?, ?, ?) "
            "ON CONFLICT (job_id, key) DO UPDATE SET value = excluded.value"
        )
        await self._write(lambda conn: conn.execute(sql, params) and None, one_statement=True)

    async def kv_delete(self, job_id: str, key: str) -> bool:
        params = (job_id, codec.clean_text(key))
        return await self._write(
            lambda conn: conn.execute("DELETE FROM kv WHERE job_id = ? AND key = ?", params).rowcount > 0,
            one_statement=True,
        )


    # ------------------------------------------------------------------ libraries
    async def add_library_version(self, name: str, source: str, *, create: bool | None = None) -> LibraryVersion:
        text = codec.clean_text(source)
        size = len(text.encode("utf-8"))

        def op(conn: sqlite3.Connection) -> LibraryVersion:
            # The writer thread runs one operation at a time: read-then-write is atomic.
            row = conn.execute("SELECT latest, deleted FROM libraries WHERE name = ?", (name,)).fetchone()
            exists = row is not None and not row[1]
            if create is True and exists:
                raise ConflictError(f"a library named {name!r} already exists")
            if create is False and not exists:
                raise NotFoundError(f"no library named {name!r}")
            version = (row[0] if row is not None else 0) + 1
            now = now_ms()
            if row is None:
                conn.execute(
                    "INSERT INTO libraries (name, latest, created_at, updated_at, size, deleted) VALUES (?, ?, ?, ?, ?, 0)",
                    (name, version, now, now, size),
                )
            elif not exists:  # created again after a delete: numbering goes on
                conn.execute(
                    "UPDATE libraries SET latest = ?, created_at = ?, updated_at = ?, size = ?, deleted = 0 WHERE name = ?",
                    (version, now, now, size, name),
                )
            else:
                conn.execute(
                    "UPDATE libraries SET latest = ?, updated_at = ?, size = ? WHERE name = ?",
                    (version, now, size, name),
                )
            conn.execute(
                "INSERT INTO library_versions (name, version, created_at, size, source) VALUES (?, ?, ?, ?, ?)",
                (name, version, now, size, text),
            )
            return LibraryVersion(name, version, text, now)

        return await self._write(op)

    async def get_library(self, name: str, version: int | None = None) -> LibraryVersion | None:
        if version is None:
            row = await self._point(
                "SELECT v.name, v.version, v.source, v.created_at FROM libraries AS l "
                "JOIN library_versions AS v ON v.name = l.name AND v.version = l.latest "
                "WHERE l.name = ? AND l.deleted = 0",
                (name,),
            )
        else:
            row = await self._point(
                "SELECT name, version, source, created_at FROM library_versions WHERE name = ? AND version = ?",
                (name, int(version)),
            )
        return None if row is None else LibraryVersion(*row)

    async def list_libraries(self) -> list[LibraryInfo]:
        rows = await self._rows(
            "SELECT name, latest, created_at, updated_at, size FROM libraries WHERE deleted = 0 ORDER BY name", ()
        )
        return [LibraryInfo(*row) for row in rows]

    async def list_library_versions(self, name: str) -> list[VersionInfo]:
        rows = await self._rows(
            "SELECT version, created_at, size FROM library_versions WHERE name = ? ORDER BY version DESC", (name,)
        )
        return [VersionInfo(*row) for row in rows]

    async def delete_library(self, name: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM library_versions WHERE name = ?", (name,))
            return conn.execute("UPDATE libraries SET deleted = 1 WHERE name = ? AND deleted = 0", (name,)).rowcount > 0

        return await self._write(op)


def _fetch_in(
    conn: sqlite3.Connection, select: str, key: str, ids: list[str], convert: Callable[[Sequence[Any]], Any]
) -> list[Any]:
    """Rows whose ``key`` is in ``ids``, converted, in the order of ``ids``."""
    found: dict[str, Any] = {}
    for i in range(0, len(ids), _IN_CHUNK):
        chunk = ids[i : i + _IN_CHUNK]
        sql = f"{select} WHERE {key} IN ({', '.join('?' * len(chunk))})"
        for row in conn.execute(sql, chunk):
            found[row[0]] = row
    return [convert(found[i]) for i in ids if i in found]


def _stored_run_ids(conn: sqlite3.Connection, run_ids: list[str]) -> set[str]:
    """Which of ``run_ids`` the runs table holds."""
    return set(_fetch_in(conn, "SELECT run_id FROM runs", "run_id", run_ids, _first))


def _first(row: Sequence[Any]) -> Any:
    return row[0]


def _jobs_by_id(jobs: list[Job]) -> dict[str, Job]:
    return {job.job_id: job for job in jobs}


def _counts(rows: Sequence[Sequence[int]]) -> dict[str, int]:
    """``count_jobs`` from ``(state, exec_type, count)`` rows."""
    counts = {"total": 0, "runnable": 0, "stopped": 0, "timing": 0, "delay": 0}
    for state, exec_type, n in rows:
        counts["total"] += n
        counts["runnable" if state == 1 else "stopped"] += n
        counts["delay" if exec_type == 1 else "timing"] += n
    return counts
