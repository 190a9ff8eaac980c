"""The PostgreSQL store (cluster mode), on an asyncpg connection pool.

One cluster = one schema, ``traitor_<namespace>`` (sanitised, see
:func:`traitor.store.codec.namespace_token`), created at start if missing; every table
lives in it and every statement names it, so several clusters share one database
without seeing each other. Schema changes are the ordered :data:`MIGRATIONS`, applied
by :meth:`PostgresStore.start` in one transaction under an advisory lock (several nodes
may start at once), and recorded in ``<schema>.schema_version``.

Text that scripts produce or carry (``script``, ``output``, ``error``, key/value
``value``) is stored as UTF-8 ``bytea``, because PostgreSQL ``text`` cannot hold
U+0000 and a console line may well contain one. In the other text columns (names,
cron, node…) a U+0000 is stored as U+FFFD.

Every write is one statement or one transaction and returns once PostgreSQL has
committed it. ``claim_runs`` is a single ``INSERT … SELECT FROM unnest(…) ON CONFLICT
DO NOTHING RETURNING``: a burst of 5,000 claims is one round trip.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence, Union

import asyncpg

from traitor.domain.errors import ConflictError, NotFoundError
from traitor.domain.job import Job, JobState, Run, RunStatus
from traitor.domain.library import LibraryInfo, LibraryVersion, VersionInfo
from traitor.domain.timeutil import now_ms
from traitor.store import codec
from traitor.store.abc import JobQuery, JobStore, RunQuery

log = logging.getLogger(__name__)

Migration = tuple[int, Sequence[Union[str, Callable[[asyncpg.Connection, str], Awaitable[None]]]]]

#: Ordered schema migrations: ``(version, statements)``. ``{s}`` in a statement is the
#: quoted schema name; a statement may also be ``async fn(conn, schema)``. Never edit a
#: released migration: append a new version.
MIGRATIONS: list[Migration] = [
    (
        1,
        [
            """CREATE TABLE {s}.jobs (
                job_id         text COLLATE "C" PRIMARY KEY,
                exec_type      smallint NOT NULL,
                name           text COLLATE "C" NOT NULL,
                name_fold      text NOT NULL,
                description    text NOT NULL,
                cron           text,
                exec_at        bigint,
                state          smallint NOT NULL,
                timezone       text,
                timeout        double precision,
                memory_limit   integer,
                overlap        text NOT NULL,
                misfire        text NOT NULL,
                misfire_grace  double precision,
                retries        integer NOT NULL,
                last_exec_time bigint,
                created_at     bigint NOT NULL,
                updated_at     bigint NOT NULL,
                version        bigint NOT NULL,
                script         bytea NOT NULL
            )""",
            "CREATE INDEX jobs_state ON {s}.jobs (state)",
            """CREATE TABLE {s}.runs (
                run_id       text COLLATE "C" PRIMARY KEY,
                job_id       text COLLATE "C" NOT NULL,
                scheduled_at bigint NOT NULL,
                status       text NOT NULL,
                trigger      text NOT NULL,
                attempt      integer NOT NULL,
                started_at   bigint,
                finished_at  bigint,
                node         text NOT NULL,
                error        bytea,
                output       bytea NOT NULL
            )""",
            # The exactly-once arbiter of claims; it also serves "runs of a job, newest first".
            "CREATE UNIQUE INDEX runs_slot ON {s}.runs (job_id, scheduled_at DESC, attempt)",
            "CREATE INDEX runs_status ON {s}.runs (status)",
            "CREATE INDEX runs_scheduled ON {s}.runs (scheduled_at)",
            """CREATE TABLE {s}.kv (
                job_id text COLLATE "C" NOT NULL,
                key    text COLLATE "C" NOT NULL,
                value  bytea NOT NULL,
                PRIMARY KEY (job_id, key)
            )""",
        ],
    ),
    (2, ["ALTER TABLE {s}.jobs ADD COLUMN max_concurrent integer"]),
    (
        3,
        [
            # Script libraries: a head row per name (``latest`` doubles as the counter of
            # version numbers and survives a delete as a tombstone) and a row per version.
            """CREATE TABLE {s}.libraries (
                name       text COLLATE "C" PRIMARY KEY,
                latest     integer NOT NULL,
                created_at bigint NOT NULL,
                updated_at bigint NOT NULL,
                size       integer NOT NULL,
                deleted    boolean NOT NULL DEFAULT false
            )""",
            """CREATE TABLE {s}.library_versions (
                name       text COLLATE "C" NOT NULL,
                version    integer NOT NULL,
                created_at bigint NOT NULL,
                size       integer NOT NULL,
                source     bytea NOT NULL,
                PRIMARY KEY (name, version)
            )""",
        ],
    ),
]

_SCRIPT = codec.JOB_COLUMNS.index("script")
_OUTPUT = codec.RUN_COLUMNS.index("output")
_ERROR = codec.RUN_COLUMNS.index("error")
_JOB_TEXT = [codec.JOB_COLUMNS.index(c) for c in ("name", "description", "cron", "timezone")]
_RUN_ARRAY_TYPES = ("text", "text", "bigint", "text", "text", "integer", "bigint", "bigint", "text", "bytea", "bytea")
_RETRIES = 5
_SLOT_TAKEN = "run %s of job %s at %s: another run already holds that slot; its final state is not stored"


def _t(value: str | None) -> str | None:
    """Text for a PostgreSQL ``text`` column (which cannot hold U+0000)."""
    if value is None or "\x00" not in value:
        return value
    return value.replace("\x00", "\ufffd")


def _b(value: str | None) -> bytes | None:
    return None if value is None else value.encode("utf-8")


def _s(value: bytes | None) -> str | None:
    return None if value is None else bytes(value).decode("utf-8")


def _job_params(job: Job) -> list[Any]:
    values = list(codec.job_values(job))
    for i in _JOB_TEXT:
        values[i] = _t(values[i])
    values[-1] = _t(values[-1])  # name_fold
    values[_SCRIPT] = _b(values[_SCRIPT])
    return values


def _job(row: Sequence[Any]) -> Job:
    values = list(row)
    values[_SCRIPT] = _s(values[_SCRIPT])
    return codec.job_from_row(values)


def _run_params(run: Run) -> list[Any]:
    values = list(codec.run_values(run))
    values[codec.RUN_COLUMNS.index("node")] = _t(values[codec.RUN_COLUMNS.index("node")])
    values[_OUTPUT] = _b(values[_OUTPUT])
    values[_ERROR] = _b(values[_ERROR])
    return values


def _run(row: Sequence[Any]) -> Run:
    values = list(row)
    values[_OUTPUT] = _s(values[_OUTPUT])
    values[_ERROR] = _s(values[_ERROR])
    return codec.run_from_row(values)


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows → one list per column (the arrays ``unnest`` takes)."""
    return [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def _count(status: str) -> int:
    """The row count of a command tag such as ``DELETE 12``."""
    try:
        return int(status.rsplit(" ", 1)[-1])
    except (ValueError, IndexError):
        return 0


class PostgresStore(JobStore):
    """A :class:`JobStore` in one PostgreSQL schema."""

    def __init__(
        self,
        dsn: str,
        *,
        namespace: str = "default",
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 10.0,
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> None:
        self._dsn = dsn
        self.namespace = namespace
        #: The schema holding this cluster's tables (unquoted).
        self.schema = f"traitor_{codec.namespace_token(namespace)}"
        self._q = f'"{self.schema}"'
        self._min_size = min_size
        self._max_size = max_size
        self._timeout = connect_timeout
        self._migrations = list(migrations)
        self._pool: asyncpg.Pool | None = None
        self._closed = False
        self.schema_versions: tuple[int, int] = (0, 0)
        s = self._q
        self._job_select = f"SELECT {', '.join(codec.JOB_COLUMNS)} FROM {s}.jobs"
        self._run_select = f"SELECT {', '.join(codec.RUN_COLUMNS)} FROM {s}.runs"
        run_cols = ", ".join(codec.RUN_COLUMNS)
        unnest = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(_RUN_ARRAY_TYPES))
        self._run_insert = (
            f"INSERT INTO {s}.runs ({run_cols}) SELECT * FROM unnest({unnest}) "
            "ON CONFLICT DO NOTHING RETURNING run_id"
        )

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if self._pool is not None:
            return
        self._pool = await asyncpg.create_pool(
            self._dsn, min_size=self._min_size, max_size=self._max_size, timeout=self._timeout
        )
        try:
            async with self._pool.acquire() as conn:
                self.schema_versions = await self._migrate(conn)
        except BaseException:
            await self._pool.close()
            self._pool = None
            raise

    async def _migrate(self, conn: asyncpg.Connection) -> tuple[int, int]:
        lock = int.from_bytes(hashlib.sha1(f"traitor-migrate:{self.schema}".encode()).digest()[:8], "big", signed=True)
        s = self._q
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", lock)
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {s}.schema_version "
                "(version integer PRIMARY KEY, applied_at bigint NOT NULL)"
            )
            current = await conn.fetchval(f"SELECT COALESCE(MAX(version), 0) FROM {s}.schema_version")
            latest = max((version for version, _ in self._migrations), default=0)
            if current > latest:
                raise RuntimeError(
                    f"the schema {self.schema} is at version {current}, newer than this Traitor knows ({latest}): "
                    "upgrade Traitor"
                )
            for version, statements in sorted(self._migrations, key=lambda m: m[0]):
                if version <= current:
                    continue
                for statement in statements:
                    if callable(statement):
                        await statement(conn, s)
                    else:
                        await conn.execute(statement.format(s=s))
                await conn.execute(
                    f"INSERT INTO {s}.schema_version (version, applied_at) VALUES ($1, $2)", version, now_ms()
                )
        return current, max(current, latest)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        self._closed = True
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), timeout=10)
        except (asyncio.TimeoutError, Exception):
            pool.terminate()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the PostgreSQL store is " + ("closed" if self._closed else "not started"))
        return self._pool

    async def ping(self) -> None:
        await self.pool.fetchval("SELECT 1")

    # ------------------------------------------------------------------ jobs
    async def add_job(self, job: Job) -> None:
        cols = ", ".join(codec.JOB_COLUMNS) + ", name_fold"
        marks = ", ".join(f"${i + 1}" for i in range(len(codec.JOB_COLUMNS) + 1))
        try:
            await self.pool.execute(f"INSERT INTO {self._q}.jobs ({cols}) VALUES ({marks})", *_job_params(job))
        except asyncpg.UniqueViolationError:
            raise ConflictError(f"a job with id {job.job_id!r} already exists") from None

    async def get_job(self, job_id: str) -> Job | None:
        row = await self.pool.fetchrow(f"{self._job_select} WHERE job_id = $1", job_id)
        return None if row is None else _job(row)

    async def get_jobs(self, job_ids: Sequence[str]) -> dict[str, Job]:
        """Many jobs by id (those that exist), in one round trip: see ``traitor.store.abc.get_jobs``."""
        ids = list(dict.fromkeys(job_ids))
        if not ids:
            return {}
        rows = await self.pool.fetch(f"{self._job_select} WHERE job_id = ANY($1::text[])", ids)
        return {row[0]: _job(row) for row in rows}

    async def update_job(self, job: Job) -> bool:
        params = _job_params(job)
        sets = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate([*codec.JOB_COLUMNS[1:], "name_fold"]))
        status = await self.pool.execute(f"UPDATE {self._q}.jobs SET {sets} WHERE job_id = $1", *params)
        return _count(status) > 0

    async def delete_job(self, job_id: str) -> bool:
        s = self._q
        status = await self.pool.execute(
            f"""WITH k AS (DELETE FROM {s}.kv WHERE job_id = $1),
                     r AS (DELETE FROM {s}.runs WHERE job_id = $1)
                DELETE FROM {s}.jobs WHERE job_id = $1""",
            job_id,
        )
        return _count(status) > 0

    async def list_jobs(self, query: JobQuery) -> tuple[list[Job], int]:
        where: list[str] = []
        params: list[Any] = []
        if query.exec_type is not None:
            params.append(int(query.exec_type))
            where.append(f"exec_type = ${len(params)}")
        if query.state is not None:
            params.append(int(query.state))
            where.append(f"state = ${len(params)}")
        needle = codec.fold_search(query.search)
        if needle:
            params.append(_t(needle))
            where.append(f"strpos(name_fold, ${len(params)}) > 0")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        column = codec.sort_column(query.sort)
        if column == "name":
            column = 'name COLLATE "C"'  # byte order, as SQLite and MongoDB sort
        direction = "DESC" if query.descending else "ASC"
        nulls = "NULLS LAST" if query.descending else "NULLS FIRST"
        limit, offset = max(0, query.limit), max(0, query.offset)
        async with self.pool.acquire() as conn:
            total = await conn.fetchval(f"SELECT count(*) FROM {self._q}.jobs{clause}", *params)
            if limit == 0 or offset >= total:
                return [], total
            rows = await conn.fetch(
                f"{self._job_select}{clause} ORDER BY {column} {direction} {nulls}, job_id COLLATE \"C\" {direction} "
                f"LIMIT ${len(params) + 1} OFFSET ${len(params) + 2}",
                *params,
                limit,
                offset,
            )
        return [_job(row) for row in rows], total

    async def iter_jobs(self, *, enabled_only: bool = False, batch: int = 5000) -> AsyncIterator[list[Job]]:
        size = max(1, batch)
        state = " AND state = 1" if enabled_only else ""
        sql = f"{self._job_select} WHERE job_id > $1{state} ORDER BY job_id LIMIT $2"
        last = ""
        while True:
            rows = await self.pool.fetch(sql, last, size)
            if not rows:
                return
            yield [_job(row) for row in rows]
            if len(rows) < size:
                return
            last = rows[-1][0]

    async def job_versions(self) -> dict[str, int]:
        rows = await self.pool.fetch(f"SELECT job_id, version FROM {self._q}.jobs WHERE state = 1")
        return {row[0]: row[1] for row in rows}

    async def count_jobs(self) -> dict[str, int]:
        rows = await self.pool.fetch(
            f"SELECT state, exec_type, count(*) FROM {self._q}.jobs GROUP BY state, exec_type"
        )
        counts = {"total": 0, "runnable": 0, "stopped": 0, "timing": 0, "delay": 0}
        for state, exec_type, n in rows:
            counts["total"] += n
            counts["runnable" if state == 1 else "stopped"] += n
            counts["delay" if exec_type == 1 else "timing"] += n
        return counts

    async def set_last_exec(self, updates: Sequence[tuple[str, int, JobState | None]]) -> None:
        if not updates:
            return
        latest = codec.last_per_id(list(updates), lambda u: u[0])
        ids = [u[0] for u in latest]
        times = [int(u[1]) for u in latest]
        states = [None if u[2] is None else int(u[2]) for u in latest]
        s = self._q
        await self.pool.execute(
            f"""UPDATE {s}.jobs AS j
                SET last_exec_time = u.t, state = COALESCE(u.st, j.state)
                FROM unnest($1::text[], $2::bigint[], $3::smallint[]) AS u(id, t, st)
                WHERE j.job_id = u.id""",
            ids,
            times,
            states,
        )

    # ------------------------------------------------------------------ runs
    async def _retrying(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``fn`` again when PostgreSQL aborted it for a deadlock or a serialization
        failure: the transaction was rolled back whole, so a retry is safe."""
        for attempt in range(_RETRIES):
            try:
                return await fn()
            except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
                if attempt == _RETRIES - 1:
                    raise
                await asyncio.sleep(0.005 * (attempt + 1))

    async def claim_runs(self, runs: Sequence[Run]) -> list[Run]:
        if not runs:
            return []
        # Every claimer inserts in the same (slot) order, so concurrent claims of
        # overlapping bursts wait for each other instead of deadlocking. The sort is
        # stable: of two runs for one slot in one call, the first given wins.
        ordered = sorted(runs, key=lambda r: (r.job_id, r.scheduled_at, r.attempt))
        arrays = _columns([_run_params(run) for run in ordered], len(codec.RUN_COLUMNS))

        async def claim() -> list[asyncpg.Record]:
            return await self.pool.fetch(self._run_insert, *arrays)

        inserted = {row[0] for row in await self._retrying(claim)}
        claimed = []
        for run in runs:
            if run.run_id in inserted:
                inserted.discard(run.run_id)
                claimed.append(run)
        return claimed

    async def finish_runs(self, runs: Sequence[Run]) -> None:
        if not runs:
            return
        latest = sorted(
            codec.last_per_id(list(runs), lambda r: r.run_id),
            key=lambda r: (r.job_id, r.scheduled_at, r.attempt, r.run_id),
        )
        rows = [_run_params(run) for run in latest]
        final = [codec.RUN_COLUMNS.index(c) for c in ("run_id", *codec.RUN_FINAL_COLUMNS)]
        update_arrays = [[row[i] for row in rows] for i in final]
        s = self._q
        sets = ", ".join(f"{c} = u.{c}" for c in codec.RUN_FINAL_COLUMNS)
        update = (
            f"UPDATE {s}.runs AS r SET {sets} "
            "FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::bytea[], $7::bytea[]) "
            f"AS u(run_id, {', '.join(codec.RUN_FINAL_COLUMNS)}) "
            "WHERE r.run_id = u.run_id RETURNING r.run_id"
        )

        async def finish() -> None:
            async with self.pool.acquire() as conn, conn.transaction():
                updated = {row[0] for row in await conn.fetch(update, *update_arrays)}
                missing = [row for row in rows if row[0] not in updated]
                if not missing:
                    return
                inserted = {
                    row[0]
                    for row in await conn.fetch(self._run_insert, *_columns(missing, len(codec.RUN_COLUMNS)))
                }
                for row in missing:
                    if row[0] not in inserted:
                        log.warning(_SLOT_TAKEN, row[0], row[1], row[2])

        await self._retrying(finish)

    async def get_run(self, run_id: str) -> Run | None:
        row = await self.pool.fetchrow(f"{self._run_select} WHERE run_id = $1", run_id)
        return None if row is None else _run(row)

    async def list_runs(self, query: RunQuery) -> tuple[list[Run], int]:
        where: list[str] = []
        params: list[Any] = []
        if query.job_id is not None:
            params.append(query.job_id)
            where.append(f"job_id = ${len(params)}")
        if query.status is not None:
            params.append(RunStatus(query.status).value)
            where.append(f"status = ${len(params)}")
        if query.since is not None:
            params.append(int(query.since))
            where.append(f"scheduled_at >= ${len(params)}")
        if query.until is not None:
            params.append(int(query.until))
            where.append(f"scheduled_at < ${len(params)}")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        limit, offset = max(0, query.limit), max(0, query.offset)
        async with self.pool.acquire() as conn:
            total = await conn.fetchval(f"SELECT count(*) FROM {self._q}.runs{clause}", *params)
            if limit == 0 or offset >= total:
                return [], total
            rows = await conn.fetch(
                f"{self._run_select}{clause} "
                'ORDER BY scheduled_at DESC, started_at DESC NULLS LAST, attempt DESC, run_id COLLATE "C" DESC '
                f"LIMIT ${len(params) + 1} OFFSET ${len(params) + 2}",
                *params,
                limit,
                offset,
            )
        return [_run(row) for row in rows], total

    async def prune_runs(self, keep_per_job: int, older_than: int) -> int:
        s = self._q
        status = await self.pool.execute(
            f"""WITH ranked AS (
                    SELECT run_id, scheduled_at, row_number() OVER (
                        PARTITION BY job_id
                        ORDER BY scheduled_at DESC, started_at DESC NULLS LAST, attempt DESC, run_id COLLATE "C" DESC
                    ) AS rn
                    FROM {s}.runs WHERE status <> '{codec.RUNNING}'
                )
                DELETE FROM {s}.runs AS r USING ranked
                WHERE r.run_id = ranked.run_id AND (ranked.rn > $1 OR ranked.scheduled_at < $2)""",
            max(0, int(keep_per_job)),
            int(older_than),
        )
        return _count(status)

    # ------------------------------------------------------------------ key/value
    async def kv_get(self, job_id: str, key: str) -> str | None:
        value = await self.pool.fetchval(
            f"SELECT value FROM {self._q}.kv WHERE job_id = $1 AND key = $2", job_id, _t(codec.clean_text(key))
        )
        return _s(value)

    async def kv_set(self, job_id: str, key: str, value: str) -> None:
        await self.pool.execute(
            f"INSERT INTO {self._q}.kv (job_id, key, value) VALUES ($1, $2, $3) "
            "ON CONFLICT (job_id, key) DO UPDATE SET value = EXCLUDED.value",
            job_id,
            _t(codec.clean_text(key)),
            _b(codec.clean_text(value)),
        )

    async def kv_delete(self, job_id: str, key: str) -> bool:
        status = await self.pool.execute(
            f"DELETE FROM {self._q}.kv WHERE job_id = $1 AND key = $2", job_id, _t(codec.clean_text(key))
        )
        return _count(status) > 0

    # ------------------------------------------------------------------ libraries
    async def add_library_version(self, name: str, source: str, *, create: bool | None = None) -> LibraryVersion:
        text = codec.clean_text(source)
        data = text.encode("utf-8")
        s = self._q
        now = now_ms()
        # The head row's lock serialises writers of one name: each gets its own number.
        if create is False:
            bump = (
                f"UPDATE {s}.libraries SET latest = latest + 1, updated_at = $2, size = $3 "
                "WHERE name = $1 AND NOT deleted RETURNING latest"
            )
        else:
            only_if = " WHERE l.deleted" if create else ""
            bump = (
                f"INSERT INTO {s}.libraries AS l (name, latest, created_at, updated_at, size, deleted) "
                "VALUES ($1, 1, $2, $2, $3, false) ON CONFLICT (name) DO UPDATE SET latest = l.latest + 1, "
                "updated_at = $2, size = $3, created_at = CASE WHEN l.deleted THEN $2 ELSE l.created_at END, "
                f"deleted = false{only_if} RETURNING latest"
            )

        async def add() -> int:
            async with self.pool.acquire() as conn, conn.transaction():
                version = await conn.fetchval(bump, name, now, len(data))
                if version is None:
                    if create:
                        raise ConflictError(f"a library named {name!r} already exists")
                    raise NotFoundError(f"no library named {name!r}")
                await conn.execute(
                    f"INSERT INTO {s}.library_versions (name, version, created_at, size, source) "
                    "VALUES ($1, $2, $3, $4, $5)",
                    name,
                    version,
                    now,
                    len(data),
                    data,
                )
                return int(version)

        return LibraryVersion(name, await self._retrying(add), text, now)

    async def get_library(self, name: str, version: int | None = None) -> LibraryVersion | None:
        s = self._q
        if version is None:
            row = await self.pool.fetchrow(
                f"SELECT v.name, v.version, v.source, v.created_at FROM {s}.libraries AS l "
                f"JOIN {s}.library_versions AS v ON v.name = l.name AND v.version = l.latest "
                "WHERE l.name = $1 AND NOT l.deleted",
                name,
            )
        else:
            row = await self.pool.fetchrow(
                f"SELECT name, version, source, created_at FROM {s}.library_versions WHERE name = $1 AND version = $2",
                name,
                int(version),
            )
        if row is None:
            return None
        return LibraryVersion(row[0], row[1], _s(row[2]) or "", row[3])

    async def list_libraries(self) -> list[LibraryInfo]:
        rows = await self.pool.fetch(
            f"SELECT name, latest, created_at, updated_at, size FROM {self._q}.libraries WHERE NOT deleted "
            'ORDER BY name COLLATE "C"'
        )
        return [LibraryInfo(*row) for row in rows]

    async def list_library_versions(self, name: str) -> list[VersionInfo]:
        rows = await self.pool.fetch(
            f"SELECT version, created_at, size FROM {self._q}.library_versions WHERE name = $1 ORDER BY version DESC",
            name,
        )
        return [VersionInfo(*row) for row in rows]

    async def delete_library(self, name: str) -> bool:
        s = self._q
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(f"DELETE FROM {s}.library_versions WHERE name = $1", name)
            status = await conn.execute(f"UPDATE {s}.libraries SET deleted = true WHERE name = $1 AND NOT deleted", name)
        return _count(status) > 0
