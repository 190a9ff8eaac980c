"""Script libraries in the runtime: static analysis and ES module rewriting
(``runtime/jsmodules``), loading in the sandbox under the job's limits, the workers'
cache of compiled libraries, the main process's resolver, and a library update on
one cluster node seen by a run on another."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from traitor.domain.job import ExecType, Job, RunStatus
from traitor.domain.library import LibraryVersion
from traitor.runtime import pool as pool_module
from traitor.runtime.instant import InstantRunner
from traitor.runtime.abc import RunRequest, RunResult, ScriptRunner
from traitor.runtime.jsmodules import prepare, syntax_error, tokenize
from traitor.runtime.pool import WorkerPool
from traitor.runtime.protocol import RUN
from traitor.scheduler.libraries import LibraryResolver, prepare_library
from traitor.store.sqlite import SqliteStore


def lib(name: str, version: int, source: str) -> tuple[int, str]:
    """A ``RunRequest.libraries`` entry, prepared as the resolver does."""
    return version, prepare_library(LibraryVersion(name, version, source, 0)).code


async def run(pool: WorkerPool, script: str, libraries: dict[str, tuple[int, str]], **limits: Any) -> RunResult:
    request = RunRequest(f"r-{uuid.uuid4().hex[:8]}", "job", prepare(script).code, libraries=libraries, **limits)
    return await asyncio.wait_for(pool.submit(request), 60)


def texts(result: RunResult) -> list[str]:
    return [line.text for line in result.lines]


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPool]:
    p = WorkerPool(1)
    await p.start()
    try:
        yield p
    finally:
        await p.close(grace=0.5)


# =========================================================================== static analysis


def test_specifiers_are_found_where_the_code_names_them_with_a_literal() -> None:
    source = r"""
    const a = require('lib/a'), b = require("lib/b@2");
    const t = require(`lib/tpl`);
    import d from 'lib/d';
    import 'lib/side-effect';
    // require('lib/in-a-comment')
    /* import x from 'lib/in-a-block-comment' */
    const s = "require('lib/in-a-string')";
    const r = /require\('lib\/in-a-regex'\)/g, ratio = a / b / 2;
    const c = `text ${require('lib/in-a-template')} ${`nested ${"}"}`} more`;
    obj.require('lib/a-method');
    require('lib/' + computed);
    require(name);
    """
    specs = prepare(source).specifiers
    assert specs == ("lib/a", "lib/b@2", "lib/tpl", "lib/d", "lib/side-effect", "lib/in-a-template")


def test_tokenizer_tells_regexes_from_divisions() -> None:
    kinds = [(t.kind, t.value) for t in tokenize("x = a / b; y = (1) / /re/g.lastIndex; if (z) /q/.test(s)")]
    assert ("regex", "/re/g") in kinds and ("regex", "/q/") in kinds
    assert kinds.count(("punct", "/")) == 2


def test_rewriting_keeps_every_line_where_it_was() -> None:
    source = (
        "'use strict';\n"
        "import {\n  a,\n  b as c,\n} from 'lib/x';\n"
        "console.log(a, c);\n"
        "import d from 'lib/d'\n"
        "throw new Error('line 8');\n"
    )
    prepared = prepare(source)
    assert prepared.esm and prepared.specifiers == ("lib/x", "lib/d")
    lines = prepared.code.split("\n")
    assert len(lines) == len(source.split("\n"))
    assert lines[0] == "'use strict';"  # a directive prologue stays first
    assert lines[5] == "console.log(a, c);" and lines[7] == "throw new Error('line 8');"
    assert "require(\"lib/x\")" in lines[1] and "require(\"lib/d\")" in lines[1]  # imports are hoisted
    assert syntax_error(prepared.code, library=False) is None


def test_code_without_module_syntax_is_left_alone() -> None:
    for source in ["console.log('import export')", "var important = 1; exporter();", "x.import = 1", "import('x')"]:
        assert prepare(source).code == source


def test_library_exports_become_live_getters() -> None:
    prepared = prepare("export let n = 1;\nexport function inc() { n++; }\nexport { n as count };", library=True)
    first = prepared.code.split("\n")[0]
    assert first.startswith('"use strict";const __t_e = __t_esm();__t_e.mark(exports);__t_e.live(exports, {')
    assert '"count": () => n' in first and '"inc": () => inc' in first
    assert prepared.code.count("\n") == 2


def test_syntax_errors_are_located() -> None:
    assert syntax_error("exports.a = 1;\n\nexports.b = ;\n") == ("unexpected token in expression: ';'", 3, 13)
    assert syntax_error("exports.ok = () => 1;") is None
    message, line, _ = syntax_error("let x = {;")  # type: ignore[misc]
    assert line == 1 and message


# =========================================================================== in the sandbox


async def test_es_module_forms_and_re_exports(pool: WorkerPool) -> None:
    libraries = {
        "lib/base": lib("base", 1, "export let n = 1;\nexport function inc() { n++; }\nexport default 'base default';"),
        "lib/hub": lib(
            "hub",
            2,
            "export * from 'lib/base';\nexport { default as baseDefault } from 'lib/base';\n"
            "export * as ns from 'lib/cjs';\nexport { kind as cjsKind } from 'lib/cjs';",
        ),
        "lib/cjs": lib("cjs", 1, "module.exports = { kind: 'cjs' };"),
    }
    script = (
        "import { n, inc, baseDefault, ns, cjsKind } from 'lib/hub';\n"
        "import * as base from 'lib/base';\n"
        "inc(); inc();\n"
        "console.log(n, base.n, baseDefault, ns.kind, cjsKind, base.default);\n"
    )
    result = await run(pool, script, libraries)
    assert result.status is RunStatus.SUCCESS, result.error
    # A named import is a copy taken at import time; the namespace object is live.
    assert texts(result) == ["1 3 base default cjs cjs base default"]


async def test_a_library_loads_once_per_run_and_under_each_name_it_is_given(pool: WorkerPool) -> None:
    counter = lib("counter", 3, "globalThis.loads = (globalThis.loads || 0) + 1; exports.id = Math.random();")
    libraries = {"lib/counter": counter, "lib/counter@3": counter, "lib/user": lib("user", 1, "exports.c = require('lib/counter');")}
    script = "const a = require('lib/counter'), b = require('lib/counter@3'), u = require('lib/user');\n" \
             "console.log(loads, a === b, u.c === a);"
    result = await run(pool, script, libraries)
    assert texts(result) == ["1 true true"]


async def test_a_library_that_throws_while_loading_is_not_cached(pool: WorkerPool) -> None:
    libraries = {"lib/flaky": lib("flaky", 1, "globalThis.tries = (globalThis.tries || 0) + 1;\n"
                                              "if (tries < 2) throw new Error('first load fails');\nexports.ok = tries;")}
    script = "try { require('lib/flaky') } catch (e) { console.log(e.message) }\nconsole.log(require('lib/flaky').ok);"
    assert texts(await run(pool, script, libraries)) == ["first load fails", "2"]


async def test_libraries_run_under_the_limits_of_the_job(pool: WorkerPool) -> None:
    spin = {"lib/spin": lib("spin", 1, "exports.forever = () => { for (;;) {} };")}
    result = await run(pool, "require('lib/spin').forever()", spin, timeout_ms=300, cpu_ms=300)
    assert result.status is RunStatus.TIMEOUT

    hog = {"lib/hog": lib("hog", 1, "const a = []; for (;;) a.push('x'.repeat(1 << 16));")}
    result = await run(pool, "require('lib/hog')", hog, memory_bytes=16 << 20)
    assert result.status is RunStatus.MEMORY

    probe = {"lib/probe": lib("probe", 1, "exports.seen = [typeof std, typeof os, typeof process, typeof __filename];\n"
                                          "try { require('fs') } catch (e) { exports.fs = e.message }")}
    result = await run(pool, "const p = require('lib/probe'); console.log(p.seen.join(','), p.fs)", probe)
    assert texts(result) == ["undefined,undefined,undefined,undefined Cannot find module 'fs'"]

    # Nothing leaks into the next run: its context is fresh.
    result = await run(pool, "console.log(typeof __t_K.defs, typeof loads)", {})
    assert texts(result) == ["undefined undefined"]


async def test_workers_keep_compiled_libraries_and_get_the_code_once(pool: WorkerPool, monkeypatch) -> None:
    sent: list[Any] = []
    real_send = pool_module._Worker.send

    def spy(self: Any, message: Any) -> None:
        if message[0] == RUN:
            sent.append(message)
        real_send(self, message)

    monkeypatch.setattr(pool_module._Worker, "send", spy)
    monkeypatch.setattr(pool_module, "LIBRARY_CACHE", 2)
    a, b, c = lib("a", 1, "exports.v = 'a';"), lib("b", 1, "exports.v = 'b';"), lib("c", 1, "exports.v = 'c';")

    async def use(**libraries: tuple[int, str]) -> tuple[list[str], list[Any], list[Any]]:
        names = [f"lib/{n}" for n in libraries]
        script = "console.log([" + ", ".join(f"require('{s}').v" for s in names) + "].join(''))"
        result = await run(pool, script, {f"lib/{n}": v for n, v in libraries.items()})
        entries, evicted = sent[-1][7], sent[-1][8]
        return texts(result), entries, evicted

    out, entries, evicted = await use(a=a, b=b)
    assert out == ["ab"] and [e[3] is not None for e in entries] == [True, True] and evicted == []
    out, entries, evicted = await use(a=a, b=b)
    assert out == ["ab"] and [e[3] for e in entries] == [None, None]  # only names and versions travel
    out, entries, evicted = await use(c=c)
    assert out == ["c"] and entries[0][3] is not None and evicted == [("a", 1)]
    out, entries, evicted = await use(a=a, b=b)  # a was evicted: its code travels again; b is still there
    assert out == ["ab"] and [e[3] is not None for e in entries] == [True, False] and evicted == [("c", 1)]
    worker = pool._workers[0]
    assert list(worker.libs) == [("a", 1), ("b", 1)]  # least recently used first


async def test_the_workers_library_cache_is_bounded_in_bytes_too(pool: WorkerPool, monkeypatch) -> None:
    monkeypatch.setattr(pool_module, "LIBRARY_CACHE_BYTES", 100)
    big = {n: lib(n, 1, f"exports.v = '{n}' + '{'x' * 60}'.length;") for n in ("p", "q")}
    for name in ("p", "q", "p"):
        result = await run(pool, f"console.log(require('lib/{name}').v)", {f"lib/{name}": big[name]})
        assert texts(result) == [f"{name}60"]
        worker = pool._workers[0]
        assert list(worker.libs) == [(name, 1)]  # the other one did not fit next to it
        assert worker.lib_bytes == len(big[name][1])
    # A run whose own libraries exceed the budget keeps them all (nothing of its own is evicted).
    result = await run(pool, "console.log(require('lib/p').v, require('lib/q').v)", {"lib/p": big["p"], "lib/q": big["q"]})
    assert texts(result) == ["p60 q60"] and set(pool._workers[0].libs) == {("p", 1), ("q", 1)}


# =========================================================================== the resolver


def RecordingRunner() -> InstantRunner:  # noqa: N802 (reads like the class it was)
    """Records requests and answers each at once (the resolver is under test, not the pool)."""
    return InstantRunner(record=True)


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "libs.db")
    await store.start()
    try:
        yield store
    finally:
        await store.close()


async def resolve(resolver: LibraryResolver, runner: InstantRunner, script: str) -> RunRequest:
    await resolver.submit(runner, RunRequest(f"r{len(runner.requests)}", "job", script))
    return runner.requests[-1]


async def test_the_resolver_ships_what_a_run_needs_and_caches_it(sqlite: SqliteStore) -> None:
    await sqlite.add_library_version("leaf", "exports.v = 'leaf v1';")
    await sqlite.add_library_version("mid", "exports.leaf = require('lib/leaf');")
    resolver, runner = LibraryResolver(sqlite), RecordingRunner()

    request = await resolve(resolver, runner, "console.log('no libraries here')")
    assert request.libraries is None and resolver.stats == {"cached": 0, "fetched": 0, "refreshes": 0}

    request = await resolve(resolver, runner, "import mid from 'lib/mid';\nrequire('lib/nope');")
    assert set(request.libraries) == {"lib/mid", "lib/leaf", "lib/nope"}
    assert request.libraries["lib/nope"] == (0, "")
    assert request.libraries["lib/leaf"][0] == 1 and "leaf v1" in request.libraries["lib/leaf"][1]
    assert "require(\"lib/mid\")" in request.script and resolver.stats["fetched"] == 1

    # The same script again: everything comes from the caches, synchronously.
    future = resolver.submit(runner, RunRequest("again", "job", "import mid from 'lib/mid';\nrequire('lib/nope');"))
    assert future.done() and resolver.stats["cached"] == 1

    # Another node stores version 2 of leaf: an announcement makes this resolver look again.
    await sqlite.add_library_version("leaf", "exports.v = 'leaf v2';")
    request = await resolve(resolver, runner, "require('lib/mid')")
    assert request.libraries["lib/leaf"][0] == 1  # not told yet (the background refresh would catch it)
    await resolver.invalidate("leaf")
    request = await resolve(resolver, runner, "require('lib/mid'); require('lib/leaf@1')")
    assert request.libraries["lib/leaf"][0] == 2 and "leaf v2" in request.libraries["lib/leaf"][1]
    assert request.libraries["lib/leaf@1"][0] == 1

    # Deleted: its cached versions go too.
    await sqlite.delete_library("leaf")
    await resolver.invalidate("leaf")
    request = await resolve(resolver, runner, "require('lib/mid'); require('lib/leaf@1')")
    assert request.libraries["lib/leaf"] == (0, "") and request.libraries["lib/leaf@1"] == (0, "")


async def test_the_resolver_refreshes_in_the_background(sqlite: SqliteStore) -> None:
    await sqlite.add_library_version("x", "exports.v = 1;")
    resolver, runner = LibraryResolver(sqlite, refresh_interval=0.05), RecordingRunner()
    assert (await resolve(resolver, runner, "require('lib/x')")).libraries["lib/x"][0] == 1
    await sqlite.add_library_version("x", "exports.v = 2;")  # no announcement: as if pub/sub lost it
    deadline = time.monotonic() + 5
    while True:
        await asyncio.sleep(0.06)
        if (await resolve(resolver, runner, "require('lib/x')")).libraries["lib/x"][0] == 2:
            break
        assert time.monotonic() < deadline, "the snapshot was never refreshed"


async def test_a_run_waiting_for_its_libraries_can_be_cancelled_and_store_faults_end_it(sqlite: SqliteStore) -> None:
    await sqlite.add_library_version("x", "exports.v = 1;")
    resolver, runner = LibraryResolver(sqlite), RecordingRunner()
    future = resolver.submit(runner, RunRequest("waits", "job", "require('lib/x')"))
    assert not future.done()
    assert resolver.cancel(runner, "waits") is True
    result = await future
    assert result.status is RunStatus.ERROR and result.error == "cancelled"
    await asyncio.sleep(0.05)
    assert runner.requests == []

    await sqlite.close()  # the store goes away before the next run's libraries are read
    broken = LibraryResolver(sqlite)
    result = await broken.submit(runner, RunRequest("fails", "job", "require('lib/x')"))
    assert result.status is RunStatus.ERROR and "could not load the libraries of this run" in result.error


# =========================================================================== two cluster nodes


@pytest.fixture
async def two_nodes(tmp_path: Path) -> AsyncIterator[tuple[Any, Any]]:
    """Two engines (real worker pools) sharing PostgreSQL and a private Redis."""
    import os

    if os.environ.get("TRAITOR_TEST_SKIP_PG", "") == "1":
        pytest.skip("TRAITOR_TEST_SKIP_PG=1: no PostgreSQL")
    from cluster.clusterkit import PG_URL, RedisServer  # tests/cluster/clusterkit.py

    from traitor.cluster.redis import RedisCoordinator
    from traitor.scheduler.engine import Engine, EngineConfig
    from traitor.store import open_store

    redis = RedisServer(tmp_path / "redis").start()
    name = f"libs_{uuid.uuid4().hex[:10]}"
    engines = []
    try:
        for node in ("a", "b"):
            coordinator = RedisCoordinator(redis.url, cluster=name, node_id=node, heartbeat_interval=0.2, ttl=1.0)
            engine = Engine(open_store(PG_URL, namespace=name), WorkerPool(1), coordinator,
                            EngineConfig(node_id=node, timezone="UTC"))
            await engine.start()
            engines.append(engine)
        yield engines[0], engines[1]
    finally:
        schema = engines[0].store.schema if engines else None  # type: ignore[attr-defined]
        for engine in engines:
            await engine.close(1.0)
        redis.stop()
        if schema:
            import asyncpg

            conn = await asyncpg.connect(PG_URL)
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()


async def test_an_update_on_one_node_is_seen_by_a_run_on_another_within_a_second(two_nodes: Any) -> None:
    from traitor.scheduler.libraries import LibraryService

    a, b = two_nodes
    on_a = LibraryService(a)
    await on_a.create("shared", "exports.v = 'version one';")
    job = Job(job_id="debug", exec_type=ExecType.TIMING, script="console.log(require('lib/shared').v)")

    async def run_on_b() -> list[str]:
        _, future = b.debug(job, lambda line: None)
        return texts(await asyncio.wait_for(future, 30))

    assert await run_on_b() == ["version one"]  # b has cached version 1 now
    await on_a.update("shared", "exports.v = 'version two';")
    updated = time.monotonic()
    while (seen := await run_on_b()) != ["version two"]:
        assert seen == ["version one"]
        assert time.monotonic() - updated < 1.0, "node b still runs the old version after 1 s"
        await asyncio.sleep(0.02)
    assert time.monotonic() - updated < 1.0
