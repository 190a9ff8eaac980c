"""The ``kv`` host module on a real SQLite store."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import quickjs

pytest.importorskip("traitor.store.sqlite", reason="the SQLite store backend (traitor.store.sqlite) is not there yet")

from traitor.runtime.modules import CallContext  # noqa: E402
from traitor.runtime.modules.kv import MAX_KEY_CHARS, MAX_VALUE_BYTES, KvError, kv_module  # noqa: E402
from traitor.store import open_store  # noqa: E402

KV = kv_module()
get, set_, delete = (KV.functions[n] for n in ("get", "set", "delete"))


@pytest.fixture
async def store(tmp_path: Path):
    s = open_store(f"sqlite:///{tmp_path / 'kv.db'}")
    await s.start()
    yield s
    await s.close()


def ctx_for(store: Any, job_id: str = "job-1", run_id: str = "run-1") -> CallContext:
    return CallContext(run_id=run_id, job_id=job_id, services=SimpleNamespace(store=store))


async def test_set_get_delete_round_trip(store: Any) -> None:
    ctx = ctx_for(store)
    assert await get(ctx, "missing") is None
    for value in ["text", 42, 1.5, True, None, [1, "two", {"three": 3}], {"nested": {"a": [1, 2]}, "é": "ü"}]:
        await set_(ctx, "k", value)
        assert await get(ctx, "k") == value
    assert await store.kv_get("job-1", "k") == json.dumps({"nested": {"a": [1, 2]}, "é": "ü"}, ensure_ascii=False, separators=(",", ":"))
    assert await delete(ctx, "k") is True
    assert await delete(ctx, "k") is False
    assert await get(ctx, "k") is None


async def test_values_are_per_job_and_survive_runs(store: Any) -> None:
    await set_(ctx_for(store, "job-1", "run-1"), "count", 1)
    await set_(ctx_for(store, "job-2", "run-9"), "count", 100)
    assert await get(ctx_for(store, "job-1", "run-2"), "count") == 1
    assert await get(ctx_for(store, "job-2", "run-10"), "count") == 100


async def test_values_survive_reopening(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kv.db'}"
    first = open_store(url)
    await first.start()
    await set_(ctx_for(first), "persist", {"x": 1})
    await first.close()
    second = open_store(url)
    await second.start()
    try:
        assert await get(ctx_for(second), "persist") == {"x": 1}
    finally:
        await second.close()


async def test_limits(store: Any) -> None:
    ctx = ctx_for(store)
    await set_(ctx, "k" * MAX_KEY_CHARS, 1)
    with pytest.raises(KvError, match=r"^kv\.set: the key is 257 characters long; the limit is 256$"):
        await set_(ctx, "k" * (MAX_KEY_CHARS + 1), 1)
    with pytest.raises(KvError, match="kv.get: the key is 257 characters"):
        await get(ctx, "k" * (MAX_KEY_CHARS + 1))
    almost = "x" * (MAX_VALUE_BYTES - 2)  # JSON adds the two quotes
    await set_(ctx, "big", almost)
    assert await get(ctx, "big") == almost
    with pytest.raises(KvError, match=r"^kv\.set: the value is 65537 bytes of JSON; the limit is 65536$"):
        await set_(ctx, "big", almost + "x")
    with pytest.raises(KvError, match="bytes of JSON"):
        await set_(ctx, "big", "é" * 40_000)  # 80 000 bytes of UTF-8
    assert await get(ctx, "big") == almost  # a refused write changes nothing


@pytest.mark.parametrize(("key", "message"), [(None, "must be a string, not null"), (7, "not a number"),
                                               ("", "must not be empty"), ("a\ud800", "lone surrogate")])
async def test_bad_keys(store: Any, key: Any, message: str) -> None:
    for fn in (get, set_, delete):
        with pytest.raises(KvError, match=message):
            await fn(ctx_for(store), key, 1) if fn is set_ else await fn(ctx_for(store), key)


async def test_lone_surrogate_in_a_value_round_trips(store: Any) -> None:
    ctx = ctx_for(store)
    await set_(ctx, "s", {"t": "a\ud800b"})
    assert await get(ctx, "s") == {"t": "a\ud800b"}


async def test_text_not_written_by_kv_is_returned_raw(store: Any) -> None:
    await store.kv_set("job-1", "raw", "not json")
    assert await get(ctx_for(store), "raw") == "not json"


async def test_no_store_is_a_clear_error() -> None:
    with pytest.raises(KvError, match="kv: no store is available"):
        await get(CallContext(run_id="r", job_id="j"), "k")


async def test_services_may_be_a_mapping(store: Any) -> None:
    ctx = CallContext(run_id="r", job_id="j", services={"store": store})
    await set_(ctx, "k", "v")
    assert await get(ctx, "k") == "v"


def test_js_source_exposes_promise_functions() -> None:
    ctx = quickjs.Context()
    ctx.eval("""
        var calls = [];
        function stub(name, result) { return function () { calls.push([name].concat([].slice.call(arguments))); return Promise.resolve(result); }; }
        var __host = { get: stub('get', {v: 1}), set: stub('set', null), 'delete': stub('delete', true) };
        var module = { exports: {} };
    """)
    ctx.eval(KV.source or "")
    ctx.eval("""
        var out = {};
        var kv = module.exports;
        (async function () {
          out.get = await kv.get('a');
          out.set = await kv.set('b', {x: [1]});
          await kv.set('c');
          out.del = await kv.delete('a');
        })().catch(function (e) { out.error = String(e); });
    """)
    while ctx.execute_pending_job():
        pass
    assert json.loads(ctx.eval("JSON.stringify(out)")) == {"get": {"v": 1}, "set": None, "del": True}
    assert json.loads(ctx.eval("JSON.stringify(calls)")) == [
        ["get", "a"], ["set", "b", {"x": [1]}], ["set", "c", None], ["delete", "a"]
    ]
