"""The built-in ``kv`` module: a small key/value store per job, kept across runs.

In a script::

    const kv = require('kv');
    const n = (await kv.get('count')) ?? 0;     // the stored value, or null
    await kv.set('count', n + 1);               // any JSON value
    await kv.delete('count');                   // true if it was there

Keys are strings of 1 to 256 characters; a value is stored as JSON text of at most
64 KiB (UTF-8). Values live in the job's store (``JobStore.kv_*``) under the job's
id, so every run of the job — and debug runs of it — sees them, and deleting the job
deletes them. ``set(key, undefined)`` stores ``null``.
"""

from __future__ import annotations

import json
from typing import Any

from traitor.runtime.modules import CallContext, HostModule
from traitor.store.abc import JobStore

MAX_KEY_CHARS = 256
MAX_VALUE_BYTES = 64 * 1024


class KvError(Exception):
    """A refused ``kv`` call; ``str()`` is the message of the script's Error."""


def _store(ctx: CallContext) -> JobStore:
    services = ctx.services
    store = services.get("store") if isinstance(services, dict) else getattr(services, "store", None)
    if store is None:
        raise KvError("kv: no store is available to this run")
    return store


def _key(key: Any, op: str) -> str:
    if not isinstance(key, str):
        raise KvError(f"kv.{op}: the key must be a string, not {_js_type(key)}")
    if not key:
        raise KvError(f"kv.{op}: the key must not be empty")
    if len(key) > MAX_KEY_CHARS:
        raise KvError(f"kv.{op}: the key is {len(key)} characters long; the limit is {MAX_KEY_CHARS}")
    if not key.isascii():
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise KvError(f"kv.{op}: the key is not valid Unicode (it has a lone surrogate)") from None
    return key


def _js_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


async def kv_get(ctx: CallContext, key: Any = None) -> Any:
    """``kv.get(key)``: the stored value (parsed from JSON), or ``None``."""
    text = await _store(ctx).kv_get(ctx.job_id, _key(key, "get"))
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text  # written by something other than kv.set: hand over the raw text


async def kv_set(ctx: CallContext, key: Any = None, value: Any = None) -> None:
    """``kv.set(key, value)``: store ``value`` as JSON text."""
    key = _key(key, "set")
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise KvError(f"kv.set: the value is not JSON: {exc}") from None
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate from a JS string: escape it so it round-trips
        text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
        size = len(text)
    if size > MAX_VALUE_BYTES:
        raise KvError(f"kv.set: the value is {size} bytes of JSON; the limit is {MAX_VALUE_BYTES}")
    await _store(ctx).kv_set(ctx.job_id, key, text)


async def kv_delete(ctx: CallContext, key: Any = None) -> bool:
    """``kv.delete(key)``: ``True`` if the key existed."""
    return bool(await _store(ctx).kv_delete(ctx.job_id, _key(key, "delete")))


KV_JS = r"""
(function () {
  'use strict';
  var host = __host;
  function wrap(fn) {
    return function () {
      try { return fn.apply(null, arguments); } catch (e) { return Promise.reject(e); }
    };
  }
  module.exports = {
    get: wrap(function (key) { return host.get(key); }),
    set: wrap(function (key, value) { return host.set(key, value === undefined ? null : value); }),
    'delete': wrap(function (key) { return host['delete'](key); })
  };
})();
"""


def kv_module() -> HostModule:
    """The ``kv`` host module (its store comes from each call's ``ctx.services.store``)."""
    return HostModule(
        name="kv",
        functions={"get": kv_get, "set": kv_set, "delete": kv_delete},
        source=KV_JS,
        origin="builtin",
    )
