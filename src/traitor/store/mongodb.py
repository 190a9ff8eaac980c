"""The MongoDB store (cluster mode), on pymongo's official asyncio API.

One cluster = one database, ``traitor_<namespace>`` (sanitised, see
:func:`traitor.store.codec.namespace_token`), with the collections ``jobs``
(``_id`` = job id), ``runs`` (``_id`` = run id), ``kv`` and ``schema_version``.
Every write uses the write concern ``{w: "majority", j: true}``: it returns once a
majority of the replica set has it in its journal.

``claim_runs`` relies on the unique index ``runs_slot`` on
``(job_id, scheduled_at desc, attempt)``: the runs are inserted with one unordered
``insert_many``; those refused with a duplicate-key error (code 11000) were claimed by
somebody else, every other run was inserted by this call.

Needs MongoDB 5.0 or newer (``prune_runs`` ranks runs with ``$setWindowFields``).
Without transactions (a standalone server has none), ``delete_job`` deletes the
job's runs and key/value pairs first and the job last: a crash in between leaves a
job without history, never history without a job.

Schema changes (here: indexes) are the ordered :data:`MIGRATIONS`, applied by
:meth:`MongoStore.start`; each is idempotent, and the version reached is kept in
``schema_version`` (``{_id: "schema", version: N}``).
"""

from __future__ import annotations

import logging
from typing import Any, AsyncIterator, Awaitable, Callable, Mapping, Sequence

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel, ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError
from pymongo.write_concern import WriteConcern

from traitor.domain.errors import ConflictError, NotFoundError
from traitor.domain.job import Job, JobState, Run, RunStatus
from traitor.domain.library import LibraryInfo, LibraryVersion, VersionInfo
from traitor.domain.timeutil import now_ms
from traitor.store import codec
from traitor.store.abc import JobQuery, JobStore, RunQuery

log = logging.getLogger(__name__)

Migration = tuple[int, Callable[[AsyncDatabase[Any]], Awaitable[None]]]

_DUPLICATE_KEY = (11000, 11001)
_IN_CHUNK = 1000


async def _v1_indexes(db: AsyncDatabase[Any]) -> None:
    await db.jobs.create_indexes([IndexModel([("state", ASCENDING)], name="jobs_state")])
    await db.runs.create_indexes(
        [
            # The exactly-once arbiter of claims; it also serves "runs of a job, newest first".
            IndexModel(
                [("job_id", ASCENDING), ("scheduled_at", DESCENDING), ("attempt", ASCENDING)],
                name="runs_slot",
                unique=True,
            ),
            IndexModel([("status", ASCENDING)], name="runs_status"),
            IndexModel([("scheduled_at", ASCENDING)], name="runs_scheduled"),
        ]
    )
    await db.kv.create_indexes(
        [IndexModel([("job_id", ASCENDING), ("key", ASCENDING)], name="kv_key", unique=True)]
    )


async def _v2_libraries(db: AsyncDatabase[Any]) -> None:
    # Script libraries: ``libraries`` holds a head per name (``_id`` = name, ``seq`` = the
    # counter of version numbers, kept as a tombstone after a delete), ``library_versions``
    # one document per version (``_id`` = "name@version").
    await db.library_versions.create_indexes(
        [IndexModel([("name", ASCENDING), ("version", DESCENDING)], name="library_versions_key", unique=True)]
    )


#: Ordered schema migrations: ``(version, async fn(db))``; each must be idempotent
#: (two nodes may run it at once). Never edit a released one: append a new version.
MIGRATIONS: list[Migration] = [(1, _v1_indexes), (2, _v2_libraries)]

_FINISHED = {"status": {"$ne": codec.RUNNING}}
_RUN_ORDER = {"scheduled_at": DESCENDING, "started_at": DESCENDING, "attempt": DESCENDING, "_id": DESCENDING}


def _run_filter(query: RunQuery) -> dict[str, Any]:
    match: dict[str, Any] = {}
    if query.job_id is not None:
        match["job_id"] = query.job_id
    if query.status is not None:
        match["status"] = RunStatus(query.status).value
    window: dict[str, int] = {}
    if query.since is not None:
        window["$gte"] = int(query.since)
    if query.until is not None:
        window["$lt"] = int(query.until)
    if window:
        match["scheduled_at"] = window
    return match


def _job_filter(query: JobQuery) -> dict[str, Any]:
    match: dict[str, Any] = {}
    if query.exec_type is not None:
        match["exec_type"] = int(query.exec_type)
    if query.state is not None:
        match["state"] = int(query.state)
    needle = codec.fold_search(query.search)
    if needle:
        # A plain substring test: no regular expression to escape.
        match["$expr"] = {"$gte": [{"$indexOfCP": ["$name_fold", needle]}, 0]}
    return match


def _duplicate_indexes(exc: BulkWriteError) -> set[int]:
    """Indexes of the operations refused as duplicate keys; re-raise any other failure."""
    details = exc.details or {}
    if details.get("writeConcernErrors"):
        raise exc
    refused = set()
    for error in details.get("writeErrors", []):
        if error.get("code") not in _DUPLICATE_KEY:
            raise exc
        refused.add(error["index"])
    return refused


class MongoStore(JobStore):
    """A :class:`JobStore` in one MongoDB database."""

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "default",
        migrations: Sequence[Migration] = MIGRATIONS,
        **client_options: Any,
    ) -> None:
        self._url = url
        self.namespace = namespace
        #: The database holding this cluster's collections.
        self.database_name = f"traitor_{codec.namespace_token(namespace)}"
        self._migrations = list(migrations)
        self._client_options = client_options
        self._client: AsyncMongoClient[Any] | None = None
        self._db: AsyncDatabase[Any] | None = None
        self._closed = False
        self.schema_versions: tuple[int, int] = (0, 0)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if self._client is not None:
            return
        options = {"serverSelectionTimeoutMS": 10_000, "tz_aware": False, **self._client_options}
        self._client = AsyncMongoClient(self._url, **options)
        self._db = self._client.get_database(
            self.database_name, write_concern=WriteConcern(w="majority", j=True)
        )
        try:
            self.schema_versions = await self._migrate(self._db)
        except BaseException:
            await self.close()
            self._closed = False
            raise

    async def _migrate(self, db: AsyncDatabase[Any]) -> tuple[int, int]:
        doc = await db.schema_version.find_one({"_id": "schema"})
        current = int(doc["version"]) if doc else 0
        latest = max((version for version, _ in self._migrations), default=0)
        if current > latest:
            raise RuntimeError(
                f"the database {self.database_name} is at schema version {current}, newer than this "
                f"Traitor knows ({latest}): upgrade Traitor"
            )
        for version, migration in sorted(self._migrations, key=lambda m: m[0]):
            if version <= current:
                continue
            await migration(db)
            await db.schema_version.update_one(
                {"_id": "schema"}, {"$max": {"version": version}, "$set": {"applied_at": now_ms()}}, upsert=True
            )
        return current, max(current, latest)

    async def close(self) -> None:
        client, self._client, self._db = self._client, None, None
        self._closed = True
        if client is not None:
            await client.close()

    @property
    def db(self) -> AsyncDatabase[Any]:
        if self._db is None:
            raise RuntimeError("the MongoDB store is " + ("closed" if self._closed else "not started"))
        return self._db

    async def ping(self) -> None:
        await self.db.command("ping")

    # ------------------------------------------------------------------ jobs
    async def add_job(self, job: Job) -> None:
        try:
            await self.db.jobs.insert_one(codec.job_document(job))
        except DuplicateKeyError:
            raise ConflictError(f"a job with id {job.job_id!r} already exists") from None

    async def get_job(self, job_id: str) -> Job | None:
        doc = await self.db.jobs.find_one({"_id": job_id})
        return None if doc is None else codec.job_from_document(doc)

    async def get_jobs(self, job_ids: Sequence[str]) -> dict[str, Job]:
        """Many jobs by id (those that exist): see ``traitor.store.abc.get_jobs``."""
        ids = list(dict.fromkeys(job_ids))
        return {doc["_id"]: codec.job_from_document(doc) for doc in await self._fetch(self.db.jobs, ids)}

    async def update_job(self, job: Job) -> bool:
        result = await self.db.jobs.replace_one({"_id": job.job_id}, codec.job_document(job))
        return result.matched_count > 0

    async def delete_job(self, job_id: str) -> bool:
        db = self.db
        await db.runs.delete_many({"job_id": job_id})
        await db.kv.delete_many({"job_id": job_id})
        result = await db.jobs.delete_one({"_id": job_id})
        return result.deleted_count > 0

    async def _page_ids(
        self, collection: Any, match: Mapping[str, Any], keys: Mapping[str, int], offset: int, limit: int
    ) -> list[Any]:
        """``_id`` of one page: project the sort keys before sorting, so the sort never
        carries scripts or outputs (and never hits the in-memory sort limit)."""
        pipeline = [
            {"$match": dict(match)},
            {"$project": {k: 1 for k in keys if k != "_id"}},
            {"$sort": dict(keys)},
            {"$skip": offset},
            {"$limit": limit},
            {"$project": {"_id": 1}},
        ]
        cursor = await collection.aggregate(pipeline, allowDiskUse=True)
        return [doc["_id"] for doc in await cursor.to_list(None)]

    async def _fetch(self, collection: Any, ids: list[Any]) -> list[Mapping[str, Any]]:
        found = {}
        for i in range(0, len(ids), _IN_CHUNK):
            async for doc in collection.find({"_id": {"$in": ids[i : i + _IN_CHUNK]}}):
                found[doc["_id"]] = doc
        return [found[i] for i in ids if i in found]

    async def list_jobs(self, query: JobQuery) -> tuple[list[Job], int]:
        jobs = self.db.jobs
        match = _job_filter(query)
        limit, offset = max(0, query.limit), max(0, query.offset)
        total = await jobs.count_documents(match)
        if limit == 0 or offset >= total:
            return [], total
        direction = DESCENDING if query.descending else ASCENDING
        # null sorts below every number in MongoDB, as NULLS FIRST/LAST do in the SQL stores.
        keys = {codec.sort_column(query.sort): direction, "_id": direction}
        ids = await self._page_ids(jobs, match, keys, offset, limit)
        return [codec.job_from_document(doc) for doc in await self._fetch(jobs, ids)], total

    async def iter_jobs(self, *, enabled_only: bool = False, batch: int = 5000) -> AsyncIterator[list[Job]]:
        size = max(1, batch)
        last = ""
        while True:
            match: dict[str, Any] = {"_id": {"$gt": last}}
            if enabled_only:
                match["state"] = int(JobState.RUNNABLE)
            docs = await self.db.jobs.find(match).sort("_id", ASCENDING).limit(size).to_list(None)
            if not docs:
                return
            yield [codec.job_from_document(doc) for doc in docs]
            if len(docs) < size:
                return
            last = docs[-1]["_id"]

    async def job_versions(self) -> dict[str, int]:
        cursor = self.db.jobs.find({"state": int(JobState.RUNNABLE)}, {"version": 1})
        return {doc["_id"]: doc["version"] async for doc in cursor}

    async def count_jobs(self) -> dict[str, int]:
        cursor = await self.db.jobs.aggregate(
            [{"$group": {"_id": {"state": "$state", "exec_type": "$exec_type"}, "n": {"$sum": 1}}}]
        )
        counts = {"total": 0, "runnable": 0, "stopped": 0, "timing": 0, "delay": 0}
        async for doc in cursor:
            n = doc["n"]
            counts["total"] += n
            counts["runnable" if doc["_id"].get("state") == 1 else "stopped"] += n
            counts["delay" if doc["_id"].get("exec_type") == 1 else "timing"] += n
        return counts

    async def set_last_exec(self, updates: Sequence[tuple[str, int, JobState | None]]) -> None:
        if not updates:
            return
        ops = []
        for job_id, last, state in codec.last_per_id(list(updates), lambda u: u[0]):
            change: dict[str, Any] = {"last_exec_time": int(last)}
            if state is not None:
                change["state"] = int(state)
            ops.append(UpdateOne({"_id": job_id}, {"$set": change}))
        await self.db.jobs.bulk_write(ops, ordered=False)

    # ------------------------------------------------------------------ runs
    async def claim_runs(self, runs: Sequence[Run]) -> list[Run]:
        if not runs:
            return []
        try:
            await self.db.runs.insert_many([codec.run_document(run) for run in runs], ordered=False)
        except BulkWriteError as exc:
            refused = _duplicate_indexes(exc)
            return [run for i, run in enumerate(runs) if i not in refused]
        return list(runs)

    async def finish_runs(self, runs: Sequence[Run]) -> None:
        if not runs:
            return
        latest = codec.last_per_id(list(runs), lambda r: r.run_id)
        ops = []
        for run in latest:
            doc = codec.run_document(run)
            final = {c: doc[c] for c in codec.RUN_FINAL_COLUMNS}
            identity = {c: doc[c] for c in ("job_id", "scheduled_at", "attempt", "trigger")}
            ops.append(UpdateOne({"_id": run.run_id}, {"$set": final, "$setOnInsert": identity}, upsert=True))
        try:
            await self.db.runs.bulk_write(ops, ordered=False)
        except BulkWriteError as exc:
            for i in sorted(_duplicate_indexes(exc)):
                run = latest[i]
                log.warning(
                    "run %s of job %s at %s: another run already holds that slot; its final state is not stored",
                    run.run_id,
                    run.job_id,
                    run.scheduled_at,
                )

    async def get_run(self, run_id: str) -> Run | None:
        doc = await self.db.runs.find_one({"_id": run_id})
        return None if doc is None else codec.run_from_document(doc)

    async def list_runs(self, query: RunQuery) -> tuple[list[Run], int]:
        runs = self.db.runs
        match = _run_filter(query)
        limit, offset = max(0, query.limit), max(0, query.offset)
        total = await runs.count_documents(match)
        if limit == 0 or offset >= total:
            return [], total
        ids = await self._page_ids(runs, match, _RUN_ORDER, offset, limit)
        return [codec.run_from_document(doc) for doc in await self._fetch(runs, ids)], total

    async def prune_runs(self, keep_per_job: int, older_than: int) -> int:
        runs = self.db.runs
        keep = max(0, int(keep_per_job))
        result = await runs.delete_many({**_FINISHED, "scheduled_at": {"$lt": int(older_than)}})
        removed = result.deleted_count
        cursor = await runs.aggregate(
            [
                {"$match": _FINISHED},
                {"$project": {k: 1 for k in ("job_id", *_RUN_ORDER) if k != "_id"}},
                {
                    "$setWindowFields": {
                        "partitionBy": "$job_id",
                        "sortBy": _RUN_ORDER,
                        "output": {"rank": {"$documentNumber": {}}},
                    }
                },
                {"$match": {"rank": {"$gt": keep}}},
                {"$project": {"_id": 1}},
            ],
            allowDiskUse=True,
        )
        chunk: list[Any] = []
        async for doc in cursor:
            chunk.append(doc["_id"])
            if len(chunk) >= _IN_CHUNK:
                removed += (await runs.delete_many({**_FINISHED, "_id": {"$in": chunk}})).deleted_count
                chunk = []
        if chunk:
            removed += (await runs.delete_many({**_FINISHED, "_id": {"$in": chunk}})).deleted_count
        return removed

    # ------------------------------------------------------------------ key/value
    async def kv_get(self, job_id: str, key: str) -> str | None:
        doc = await self.db.kv.find_one({"job_id": job_id, "key": codec.clean_text(key)}, {"value": 1})
        return None if doc is None else doc["value"]

    async def kv_set(self, job_id: str, key: str, value: str) -> None:
        await self.db.kv.update_one(
            {"job_id": job_id, "key": codec.clean_text(key)},
            {"$set": {"value": codec.clean_text(value)}},
            upsert=True,
        )

    async def kv_delete(self, job_id: str, key: str) -> bool:
        result = await self.db.kv.delete_one({"job_id": job_id, "key": codec.clean_text(key)})
        return result.deleted_count > 0

    # ------------------------------------------------------------------ libraries
    async def add_library_version(self, name: str, source: str, *, create: bool | None = None) -> LibraryVersion:
        text = codec.clean_text(source)
        size = len(text.encode("utf-8"))
        now = now_ms()
        db = self.db
        # 1. Take the next number: an atomic update of the head (a missing or deleted
        #    head starts, or starts again, as a new library; its counter goes on).
        revive = {"$ne": ["$deleted", False]}
        bump = [
            {
                "$set": {
                    "seq": {"$add": [{"$ifNull": ["$seq", 0]}, 1]},
                    "created_at": {"$cond": [revive, now, "$created_at"]},
                    "updated_at": {"$cond": [revive, now, "$updated_at"]},
                    "latest": {"$cond": [revive, 0, "$latest"]},
                    "size": {"$cond": [revive, 0, "$size"]},
                    "deleted": False,
                }
            }
        ]
        match: dict[str, Any] = {"_id": name}
        if create is True:
            match["deleted"] = True  # an existing live head does not match: the upsert collides
        elif create is False:
            match["deleted"] = False
        head = None
        for attempt in range(3):
            try:
                head = await db.libraries.find_one_and_update(
                    match, bump, upsert=create is not False, return_document=ReturnDocument.AFTER
                )
                break
            except DuplicateKeyError:
                if create is True:
                    raise ConflictError(f"a library named {name!r} already exists") from None
                if attempt == 2:  # two upserts of a new name raced: the loser retries as an update
                    raise
        if head is None:
            raise NotFoundError(f"no library named {name!r}")
        version = int(head["seq"])
        # 2. The version itself, then 3. the head's view of the latest version.
        await db.library_versions.insert_one(
            {"_id": f"{name}@{version}", "name": name, "version": version, "created_at": now, "size": size,
             "source": text}
        )
        await db.libraries.update_one(
            {"_id": name, "latest": {"$lt": version}},
            {"$set": {"latest": version, "updated_at": now, "size": size}},
        )
        return LibraryVersion(name, version, text, now)

    async def get_library(self, name: str, version: int | None = None) -> LibraryVersion | None:
        match: dict[str, Any] = {"name": name}
        if version is not None:
            match["version"] = int(version)
        doc = await self.db.library_versions.find_one(match, sort=[("version", DESCENDING)])
        if doc is None:
            return None
        return LibraryVersion(doc["name"], int(doc["version"]), doc["source"], int(doc["created_at"]))

    async def list_libraries(self) -> list[LibraryInfo]:
        cursor = self.db.libraries.find({"deleted": False, "latest": {"$gt": 0}}).sort("_id", ASCENDING)
        return [
            LibraryInfo(doc["_id"], int(doc["latest"]), int(doc["created_at"]), int(doc["updated_at"]), int(doc["size"]))
            async for doc in cursor
        ]

    async def list_library_versions(self, name: str) -> list[VersionInfo]:
        cursor = self.db.library_versions.find({"name": name}, {"source": 0}).sort("version", DESCENDING)
        return [VersionInfo(int(doc["version"]), int(doc["created_at"]), int(doc["size"])) async for doc in cursor]

    async def delete_library(self, name: str) -> bool:
        # Versions first, the head last (no transactions: see the module docstring).
        await self.db.library_versions.delete_many({"name": name})
        result = await self.db.libraries.update_one({"_id": name, "deleted": False}, {"$set": {"deleted": True}})
        return result.modified_count > 0
