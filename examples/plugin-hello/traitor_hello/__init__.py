"""Example Traitor plugin: the host module ``hello``.

Plugin Development
==================

Scripts reach Python code through *host modules*. A plugin is a Python module that
offers one: a function ``traitor_module()`` returning a
``traitor.runtime.modules.HostModule`` (preferred), or a constant
``TRAITOR_MODULE = HostModule(...)``. Each function of the module is called as
``f(ctx, *args)``, where ``ctx`` is a ``CallContext`` (``run_id``, ``job_id``,
``services``) and ``args`` are the JSON values the script passed; what it returns
(any JSON value) resolves the script's Promise, and an exception rejects it with an
``Error`` whose message is ``str(exception)``. Plain functions run in a thread, ``async``
ones on the service's event loop — use ``async`` for I/O, and never block the loop.

Install a plugin in one of two ways:

1. As a package with an entry point in the group ``traitor.modules`` (this example)::

       [project.entry-points."traitor.modules"]
       hello = "traitor_hello:traitor_module"

   then ``pip install ./plugin-hello`` into Traitor's environment and restart it.
2. As a single file: copy a ``.py`` file that defines ``traitor_module()`` into
   ``<data-dir>/plugin/`` (``~/.traitor/plugin/`` by default) and restart.

At start-up Traitor logs ``loaded plugin module 'hello' from … (functions: greet, wait)``
for each plugin, and a warning or error, with the reason, for each one it skipped (a
syntax error, an exception at import, a wrong type, an invalid name, or a name that a
built-in — ``http``, ``kv`` — or another plugin already has). A broken plugin never
stops the service. Module names match ``^[a-z][a-z0-9_-]{0,63}$``.

In a script::

    const hello = require('hello');
    console.log(await hello.greet('Ada'));           // Hello, Ada!
    hello.greet('Bob', function (err, text) { console.log(text); });   // Node-style callback
    await hello.wait(100);                           // resolves after 100 ms

The optional ``source`` below is JavaScript run inside the sandbox to shape the
module's exports; it sees ``__host`` (one promise-returning function per entry of
``functions``) and ``module``, and must set ``module.exports``. Without it, a script
gets the promise-returning functions as they are.
"""

from __future__ import annotations

import asyncio

from traitor.runtime.modules import CallContext, HostModule

MAX_WAIT_MS = 60_000


def greet(ctx: CallContext, name: str = "world") -> str:
    """``hello.greet(name)``: a plain function (Traitor runs it in a thread)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("hello.greet: name must be a non-empty string")
    return f"Hello, {name.strip()}!"


async def wait(ctx: CallContext, ms: int | float = 0) -> int | float:
    """``hello.wait(ms)``: an ``async`` function; resolves with ``ms`` after ``ms`` milliseconds."""
    if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not 0 <= ms <= MAX_WAIT_MS:
        raise ValueError(f"hello.wait: ms must be a number from 0 to {MAX_WAIT_MS}")
    await asyncio.sleep(ms / 1000)
    return ms


SOURCE = r"""
(function () {
  'use strict';
  var host = __host;
  // Promise when called without a callback; Node-style callback(err, value) otherwise.
  function withCallback(fn) {
    return function () {
      var args = Array.prototype.slice.call(arguments);
      var cb = typeof args[args.length - 1] === 'function' ? args.pop() : null;
      var p = fn.apply(null, args);
      if (!cb) { return p; }
      p.then(function (v) { cb(null, v); }, function (e) { cb(e); });
      return undefined;
    };
  }
  module.exports = { greet: withCallback(host.greet), wait: withCallback(host.wait) };
})();
"""


def traitor_module() -> HostModule:
    """The entry point: Traitor calls this once when it loads the plugin."""
    return HostModule(name="hello", functions={"greet": greet, "wait": wait}, source=SOURCE)
