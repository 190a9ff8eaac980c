"""Store fixtures: every contract test runs against each backend.

* ``sqlite``: files in ``tmp_path`` (one per namespace), opened through ``open_store``.
* ``postgresql``: the server at ``TRAITOR_TEST_PG_URL`` (default
  ``postgresql://postgres@127.0.0.1:5432/postgres``); each test gets fresh schemas,
  dropped afterwards. An unreachable server FAILS the tests, unless
  ``TRAITOR_TEST_SKIP_PG=1``.
* ``mongodb``: the server at ``TRAITOR_TEST_MONGO_URL``; skipped when it is unset.
  Each test gets fresh databases, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

import pytest

from traitor.store import JobStore, open_store

PG_URL = os.environ.get("TRAITOR_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MONGO_URL = os.environ.get("TRAITOR_TEST_MONGO_URL", "")
SKIP_PG = os.environ.get("TRAITOR_TEST_SKIP_PG", "") == "1"
MONGO_SKIP = "MongoDB: set TRAITOR_TEST_MONGO_URL to run the contract suite against a MongoDB server"

BACKENDS = ["sqlite", "postgresql", "mongodb"]

_pg_error: list[str | None] = []  # cached result of the one reachability probe


async def _pg_reachable() -> str | None:
    """``None`` when PostgreSQL answers, else why not (probed once per session)."""
    if not _pg_error:
        import asyncpg

        try:
            conn = await asyncpg.connect(PG_URL, timeout=5)
            await conn.close()
            _pg_error.append(None)
        except Exception as exc:  # noqa: BLE001 - any failure means "unreachable"
            _pg_error.append(f"{type(exc).__name__}: {exc}")
    return _pg_error[0]


class Backend:
    """Opens stores of one backend for one test.

    ``open(key)`` maps a logical namespace ``key`` to a namespace unique to this test:
    the same key twice gives two independent store instances (own connections) on the
    same data; different keys give isolated namespaces. ``aclose`` closes every store
    and drops every namespace the test used.
    """

    def __init__(self, name: str, tmp_path: Path) -> None:
        self.name = name
        self.tmp_path = tmp_path
        self.run = uuid.uuid4().hex[:10]
        self.stores: list[JobStore] = []
        self.namespaces: dict[str, str] = {}

    def namespace(self, key: str = "main") -> str:
        return self.namespaces.setdefault(key, f"t{self.run}_{key}")

    def make(self, key: str = "main", *, migrations: Sequence[Any] | None = None) -> JobStore:
        """A new, not started store instance on namespace ``key`` (through ``open_store``,
        or the backend class itself when ``migrations`` replaces the built-in list)."""
        namespace = self.namespace(key)
        url = {"sqlite": "sqlite://", "postgresql": PG_URL, "mongodb": MONGO_URL}[self.name]
        store = open_store(url, namespace=namespace, data_dir=self.tmp_path)
        if migrations is not None:
            if self.name == "sqlite":
                from traitor.store.sqlite import SqliteStore

                store = SqliteStore(store.path, migrations=migrations)  # type: ignore[attr-defined]
            elif self.name == "postgresql":
                from traitor.store.postgresql import PostgresStore

                store = PostgresStore(PG_URL, namespace=namespace, migrations=migrations)
            else:
                from traitor.store.mongodb import MongoStore

                store = MongoStore(MONGO_URL, namespace=namespace, migrations=migrations)
        self.stores.append(store)
        return store

    async def open(self, key: str = "main", *, migrations: Sequence[Any] | None = None) -> JobStore:
        store = self.make(key, migrations=migrations)
        await store.start()
        return store

    # ---------------------------------------------------------------- migrations
    def base_migrations(self) -> list[Any]:
        return list(self._module().MIGRATIONS)

    def probe_migration(self, version: int) -> Any:
        """A migration that creates a ``probe`` table (collection)."""
        if self.name == "sqlite":
            return (version, ["CREATE TABLE probe (x INTEGER)"])
        if self.name == "postgresql":
            return (version, ["CREATE TABLE {s}.probe (x integer)"])

        async def create(db: Any) -> None:
            if "probe" not in await db.list_collection_names():
                await db.create_collection("probe")

        return (version, create)

    async def has_probe(self, store: Any) -> bool:
        if self.name == "sqlite":
            return await store._read(
                lambda conn: conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'probe'").fetchone() is not None
            )
        if self.name == "postgresql":
            return await store.pool.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{store.schema}.probe")
        return "probe" in await store.db.list_collection_names()

    def _module(self) -> Any:
        import importlib

        return importlib.import_module(f"traitor.store.{self.name}")

    # ---------------------------------------------------------------- clean-up
    async def aclose(self) -> None:
        for store in self.stores:
            await store.close()
        if self.name == "postgresql":
            import asyncpg

            from traitor.store.codec import namespace_token

            conn = await asyncpg.connect(PG_URL, timeout=10)
            try:
                for namespace in self.namespaces.values():
                    await conn.execute(f'DROP SCHEMA IF EXISTS "traitor_{namespace_token(namespace)}" CASCADE')
            finally:
                await conn.close()
        elif self.name == "mongodb":
            from pymongo import AsyncMongoClient

            from traitor.store.codec import namespace_token

            client: AsyncMongoClient[Any] = AsyncMongoClient(MONGO_URL)
            try:
                for namespace in self.namespaces.values():
                    await client.drop_database(f"traitor_{namespace_token(namespace)}")
            finally:
                await client.close()


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    name = request.param
    if name == "postgresql":
        error = await _pg_reachable()
        if error is not None:
            if SKIP_PG:
                pytest.skip(f"PostgreSQL unreachable at {PG_URL} ({error}); TRAITOR_TEST_SKIP_PG=1")
            pytest.fail(
                f"PostgreSQL unreachable at {PG_URL}: {error}. Start it, point TRAITOR_TEST_PG_URL at one, "
                "or set TRAITOR_TEST_SKIP_PG=1 to skip these tests",
                pytrace=False,
            )
    elif name == "mongodb" and not MONGO_URL:
        pytest.skip(MONGO_SKIP)
    b = Backend(name, tmp_path)
    try:
        yield b
    finally:
        await b.aclose()


@pytest.fixture
async def store(backend: Backend) -> JobStore:
    return await backend.open()
