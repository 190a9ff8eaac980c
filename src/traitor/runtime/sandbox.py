"""Drive one QuickJS context for one run, inside a worker process.

A :class:`Sandbox` is one run: a fresh QuickJS context with the prelude
(``prelude.js``) and the job's script, evaluated as a global script (``var`` and
function declarations become globals, as in the original service). The worker calls
:meth:`Sandbox.begin` once, then :meth:`Sandbox.step` to run a *slice*: start the
script, or settle host-call results, fire due timers and drain the promise jobs. It
then reads what the slice produced: console lines, new host calls, the next timer
deadline, and finally ``done`` = (status, error).

Limits
------
The ``quickjs-ng`` binding offers ``set_time_limit``, but it counts process CPU,
restarts on every call and forbids JS → Python calls while set. With the *native
hooks* (the default) it is never used; instead, through :mod:`ctypes` on the same
shared library:

* ``JS_SetInterruptHandler`` installs :func:`_on_interrupt`, which QuickJS polls
  while JS runs (every ≈ 25 µs in a tight loop). It enforces the run's wall-clock
  deadline, CPU budget (thread CPU time, read at most every ``PROBE`` s),
  cancellation and output stop; the interrupt it raises is uncatchable by the script.
  Every few ms of a long slice it lets the worker do *housekeeping* (other runs'
  deadlines, heartbeats) and after ``slice`` seconds it lets the worker serve the
  other runs *nested inside the handler* (``preempt``): QuickJS cannot pause an
  evaluation, but runs in other runtimes can proceed on top of it, and the suspended
  run resumes when they return. Nesting is bounded by ``max_nesting``; a suspended
  run whose deadline passes is reported at once and unwinds later.
* ``JS_SetHostPromiseRejectionTracker`` installs :func:`_on_rejection`: unhandled
  rejections (the binding has no such hook) and a JS → host signal channel used to
  stop a run (output truncated) and to load prelude parts on demand.
* The prelude is compiled once to bytecode (``JS_WriteObject``) and read into every
  context (``JS_ReadObject`` + ``JS_EvalFunction``): parsing its source would cost
  ≈ 1 ms per run, its small core costs ≈ 40 µs (≈ 13 µs less when the script's text
  does not name ``console``: that section then loads on first use); the other parts
  load on first use.
* Each run's context is a :class:`NativeContext`, made with the C API in a warm
  runtime (:class:`Runtimes`) rather than by ``quickjs.Context()``, which makes a
  runtime per context: ≈ 40 µs less per run, the context still fresh.

Per trivial run on a 2-core VM the worker spends ≈ 200 µs: ≈ 125 µs making and
freeing the context (QuickJS's own work), ≈ 40 µs the prelude, the rest the script,
ctypes and Python bookkeeping.

The hooks need the binding's context layout (runtime and context pointers right
after the object header) to compile the prelude; :func:`native` checks it against
the library's own accessors, and tries a :class:`NativeContext`; if anything differs
(or ``TRAITOR_QJS_HOOKS=0``), the sandbox falls back to ``quickjs.Context`` with
``set_time_limit`` and the remaining budget: no preemption, no unhandled-rejection
detection, the whole prelude evaluated from source per run.
"""

from __future__ import annotations

import ctypes
import json
import os
import time
import traceback
from pathlib import Path
from typing import Any, Callable, NamedTuple

import quickjs

# Run outcome statuses (the values of traitor.domain.job.RunStatus).
SUCCESS = "success"
ERROR = "error"
TIMEOUT = "timeout"
MEMORY = "memory"
OUTPUT_TRUNCATED = "output-truncated"

# Why a run was stopped from the host side.
STOP_CPU = 1
STOP_WALL = 2
STOP_CANCEL = 3
STOP_OUTPUT = 4

LEVELS = frozenset(("log", "info", "warn", "error", "debug"))
MAX_ERROR_CHARS = 16 * 1024
PARTS = ("core", "fmt", "timers", "require", "libs", "esm", "console")

_thread_time = time.thread_time
_monotonic = time.monotonic
_time = time.time


_LIBS_PART = PARTS.index("libs") - 1  # index in Prelude.parts (which starts after the core)
_ESM_PART = PARTS.index("esm") - 1


class LibraryCode(NamedTuple):
    """One library version's definition (``jsmodules.define_script``) as a worker keeps it:
    bytecode with the native hooks, else source; ``esm``: it needs the esm part."""

    code: bytes | str
    esm: bool


def seconds(ms: int | float) -> str:
    """``5000`` → ``"5.0"``, ``250`` → ``"0.25"``."""
    text = f"{ms / 1000:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def mib(n: int) -> str:
    return f"{n / (1 << 20):g}"


# --------------------------------------------------------------------------- native


class _JSValue(ctypes.Structure):
    _fields_ = [("u", ctypes.c_int64), ("tag", ctypes.c_int64)]


TAG_STRING = -7
TAG_OBJECT = -1
TAG_INT = 0
TAG_BOOL = 1
TAG_NULL = 2
TAG_UNDEFINED = 3
TAG_EXCEPTION = 6
TAG_FLOAT64 = 7

_INTERRUPT = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
_TRACKER = ctypes.CFUNCTYPE(None, ctypes.c_void_p, _JSValue, _JSValue, ctypes.c_bool, ctypes.c_void_p)


class Native:
    """ctypes access to the QuickJS library inside the ``_quickjs`` extension."""

    def __init__(self) -> None:
        import _quickjs

        lib = ctypes.CDLL(_quickjs.__file__)
        vp, val, cp, sz = ctypes.c_void_p, _JSValue, ctypes.c_char_p, ctypes.c_size_t

        def fn(name: str, restype: Any, *argtypes: Any) -> Any:
            f = getattr(lib, name)
            f.restype = restype
            f.argtypes = list(argtypes)
            return f

        self.set_interrupt_handler = fn("JS_SetInterruptHandler", None, vp, _INTERRUPT, vp)
        self.set_rejection_tracker = fn("JS_SetHostPromiseRejectionTracker", None, vp, _TRACKER, vp)
        self.get_runtime_opaque = fn("JS_GetRuntimeOpaque", vp, vp)
        self.get_runtime = fn("JS_GetRuntime", vp, vp)
        self.eval = fn("JS_Eval", val, vp, cp, sz, cp, ctypes.c_int)
        self.write_object = fn("JS_WriteObject", ctypes.POINTER(ctypes.c_uint8), vp, ctypes.POINTER(sz), val, ctypes.c_int)
        self.read_object = fn("JS_ReadObject", val, vp, cp, sz, ctypes.c_int)
        self.eval_function = fn("JS_EvalFunction", val, vp, val)
        self.get_global_object = fn("JS_GetGlobalObject", val, vp)
        self.get_property_str = fn("JS_GetPropertyStr", val, vp, val, cp)
        self.call = fn("JS_Call", val, vp, val, val, ctypes.c_int, ctypes.POINTER(val))
        self.free_value = fn("JS_FreeValue", None, vp, val)
        self.get_exception = fn("JS_GetException", val, vp)
        self.js_free = fn("js_free", None, vp, vp)
        # for NativeContext and Runtimes
        self.new_runtime = fn("JS_NewRuntime", vp)
        self.free_runtime = fn("JS_FreeRuntime", None, vp)
        self.new_context = fn("JS_NewContext", vp, vp)
        self.free_context = fn("JS_FreeContext", None, vp)
        self.run_gc = fn("JS_RunGC", None, vp)
        self.set_memory_limit = fn("JS_SetMemoryLimit", None, vp, sz)
        self.set_max_stack_size = fn("JS_SetMaxStackSize", None, vp, sz)
        self.update_stack_top = fn("JS_UpdateStackTop", None, vp)
        self.execute_pending_job = fn("JS_ExecutePendingJob", ctypes.c_int, vp, ctypes.POINTER(vp))
        self.is_job_pending = fn("JS_IsJobPending", ctypes.c_bool, vp)
        self.has_exception = fn("JS_HasException", ctypes.c_bool, vp)
        chars = ctypes.POINTER(ctypes.c_char)
        self.to_cstring = fn("JS_ToCStringLen2", chars, vp, ctypes.POINTER(sz), val, ctypes.c_bool)
        self.free_cstring = fn("JS_FreeCString", None, vp, chars)
        self.new_string = fn("JS_NewStringLen", val, vp, cp, sz)
        self.memory_usage = fn("JS_ComputeMemoryUsage", None, vp, ctypes.POINTER(ctypes.c_int64))
        self.runtimes = Runtimes(self)
        self._check()

    @staticmethod
    def pointers(ctx: quickjs.Context) -> tuple[int, int]:
        """(JSRuntime*, JSContext*) of a binding context: the two fields after PyObject_HEAD."""
        base = id(ctx) + object.__basicsize__
        return (ctypes.c_void_p.from_address(base).value or 0, ctypes.c_void_p.from_address(base + 8).value or 0)

    def _check(self) -> None:
        ctx = quickjs.Context()
        rt, cx = self.pointers(ctx)
        if not rt or not cx or self.get_runtime_opaque(rt) != id(ctx) or self.get_runtime(cx) != rt:
            raise RuntimeError("unexpected quickjs.Context layout")
        value = self.eval_function(cx, self.read_object(cx, *_len(self.compile(cx, "6*7", "probe")), 1))
        if value.tag != TAG_INT or value.u & 0xFFFFFFFF != 42:
            raise RuntimeError("unexpected JSValue layout")
        del ctx
        for _ in range(2):  # the second one reuses the runtime of the first
            own = NativeContext(self.runtimes, 32 << 20, 1 << 20)
            own.enter()
            api = self.compile(own.cx, "(function (op, arg) { return op ? arg + '\\u00e9' : -42; })", "probe")
            if not own.boot(api):
                raise RuntimeError("a native context cannot evaluate bytecode")
            own.eval("var x = 1;")
            if own.api(0) != -42 or own.api(1, "x") != "x\u00e9" or own.memory()["malloc_size"] <= 0:
                raise RuntimeError("unexpected results from a native context")
            own.recycle = True
            del own
        if len(self.runtimes.idle) != 1:
            raise RuntimeError("a native context's runtime was not recycled")

    def compile(self, cx: int, source: str, filename: str) -> bytes:
        """Bytecode of a global script (source text stripped, line numbers kept)."""
        code = source.encode()
        fun = self.eval(cx, code, len(code), filename.encode(), 1 << 5)  # JS_EVAL_FLAG_COMPILE_ONLY
        if fun.tag == TAG_EXCEPTION:
            self.free_value(cx, self.get_exception(cx))
            raise SyntaxError(f"prelude part {filename} does not compile")
        size = ctypes.c_size_t()
        buf = self.write_object(cx, ctypes.byref(size), fun, 1 | (1 << 4))  # BYTECODE | STRIP_SOURCE
        self.free_value(cx, fun)
        try:
            return ctypes.string_at(buf, size.value)
        finally:
            self.js_free(cx, ctypes.cast(buf, ctypes.c_void_p))

    def run(self, cx: int, bytecode: bytes) -> bool:
        """Evaluate bytecode in a context; False (exception cleared) if it threw."""
        value = self.evaluate(cx, bytecode)
        if value is None:
            return False
        if value.tag < 0:
            self.free_value(cx, value)
        return True

    def evaluate(self, cx: int, bytecode: bytes) -> _JSValue | None:
        """Evaluate bytecode in a context: its completion value (the caller frees it), or
        None (exception cleared) if it threw."""
        fun = self.read_object(cx, bytecode, len(bytecode), 1)
        if fun.tag == TAG_EXCEPTION:
            self.free_value(cx, self.get_exception(cx))
            return None
        value = self.eval_function(cx, fun)
        if value.tag == TAG_EXCEPTION:
            self.free_value(cx, self.get_exception(cx))
            return None
        return value


def _len(data: bytes) -> tuple[bytes, int]:
    return data, len(data)


class Runtime:
    """One warm runtime of :class:`Runtimes`, with what the host last set on it."""

    __slots__ = ("rt", "template", "base", "uses", "memory_limit", "stack_size")

    def __init__(self, rt: int, template: int, base: int) -> None:
        self.rt = rt
        self.template = template  # the idle context that keeps the runtime warm
        self.base = base  # bytes in use with the template only: not counted against runs
        self.uses = 0
        self.memory_limit = 0  # 0: none
        self.stack_size = -1

    def limit_memory(self, n: "Native", limit: int) -> None:
        if limit != self.memory_limit:
            n.set_memory_limit(self.rt, limit)
            self.memory_limit = limit

    def limit_stack(self, n: "Native", size: int) -> None:
        if size != self.stack_size:
            n.set_max_stack_size(self.rt, size)
            self.stack_size = size


class Runtimes:
    """Warm QuickJS runtimes for :class:`NativeContext`, one per live run.

    Most of a fresh ``quickjs.Context`` (≈ 165 µs on a small VM) is the runtime's share:
    its atoms (every built-in's property names) and object shapes. A runtime that keeps
    one idle *template* context keeps those, and a new context in it costs ≈ 40 µs
    less. Each run still gets a fresh context (its own global object and built-ins:
    nothing a script can reach is shared), and a runtime holds one run's context at a
    time, so memory limits, interrupts and the job queue stay per run. A runtime is
    reused only after a run that ended cleanly (no pending jobs, no limit hit: see
    :attr:`NativeContext.recycle`) and at most :attr:`MAX_USES` times; otherwise it is
    freed, with everything in it."""

    MAX_IDLE = 32
    MAX_USES = 1000
    #: A new context needs ≈ 100 KiB: a runtime whose last memory limit left less room
    #: than this over its template has no limit while the next context is made (as
    #: ``quickjs.Context()`` made contexts before their limit was set).
    ROOM = 4 << 20

    def __init__(self, n: "Native") -> None:
        self.n = n
        self.idle: list[Runtime] = []

    def take(self) -> Runtime:
        if self.idle:
            return self.idle.pop()
        n = self.n
        rt = n.new_runtime()
        template = n.new_context(rt) if rt else None
        if not template:
            if rt:
                n.free_runtime(rt)
            raise MemoryError("cannot create a QuickJS runtime")
        n.set_rejection_tracker(rt, _TRACKER_PTR, None)  # the interrupt handler: NativeContext.boot
        return Runtime(rt, template, _malloc_size(n, rt))

    def give(self, runtime: Runtime, reuse: bool) -> None:
        """Take back a runtime whose run context was freed."""
        n = self.n
        runtime.uses += 1
        if reuse and runtime.uses < self.MAX_USES and len(self.idle) < self.MAX_IDLE:
            n.run_gc(runtime.rt)  # the run's context and built-ins are cyclic garbage now
            # jobs left by the run, or queued while collecting (FinalizationRegistry
            # callbacks), must not run in the next run's time
            if not n.is_job_pending(runtime.rt):
                n.set_interrupt_handler(runtime.rt, _NO_INTERRUPT, None)
                self.idle.append(runtime)
                return
        n.free_context(runtime.template)
        n.free_runtime(runtime.rt)

    def close(self) -> None:
        while self.idle:
            self.give(self.idle.pop(), False)


def _malloc_size(n: "Native", rt: int) -> int:
    usage = (ctypes.c_int64 * 32)()  # JSMemoryUsage: int64 fields, 26 of them, malloc_size first
    n.memory_usage(rt, usage)
    return usage[0]


_NULL = _JSValue(0, TAG_NULL)
#: __t_api's argument vectors for calls without a string, (op,) for op 0..3: made once.
_OP_ARGS = [(_JSValue * 1)(_JSValue(op, TAG_INT)) for op in range(4)]
_job_context = ctypes.pointer(ctypes.c_void_p())  # JS_ExecutePendingJob's out-parameter (unused)


class NativeContext:
    """A run's fresh QuickJS context in a warm runtime (:class:`Runtimes`), driven
    through the C API.

    It has the ``quickjs.Context`` methods that :class:`Sandbox` uses, with the
    binding's behaviour, except that the caller updates the C stack top QuickJS
    measures stack use from (:meth:`enter`) once per entry from Python at a new depth
    rather than on every call. Exceptions are raised as ``quickjs.JSException``/
    ``StackOverflow`` with the binding's text ("message\\nstack"). Memory figures and
    limits count the run's context only, not the runtime's template. Freed when the
    last reference goes, like the binding's contexts; set :attr:`recycle` when the run
    ended cleanly to hand its runtime to the next run."""

    __slots__ = ("runtimes", "runtime", "rt", "cx", "fn", "recycle")

    def __init__(self, runtimes: Runtimes, memory_bytes: int, stack_bytes: int) -> None:
        n = runtimes.n
        self.runtimes = runtimes
        self.fn: _JSValue | None = None  # __t_api, once bound
        self.recycle = False
        self.cx = 0
        runtime = self.runtime = runtimes.take()
        self.rt = runtime.rt
        if runtime.memory_limit and runtime.memory_limit < runtime.base + Runtimes.ROOM:
            runtime.limit_memory(n, 0)  # no limit while the built-ins are made
        self.cx = n.new_context(self.rt)
        if not self.cx:
            runtimes.give(runtime, False)
            raise MemoryError("cannot create a QuickJS context")
        runtime.limit_memory(n, memory_bytes + runtime.base)
        runtime.limit_stack(n, stack_bytes)

    def __del__(self) -> None:
        n, cx = self.runtimes.n, self.cx
        if cx:
            if self.fn is not None:
                n.free_value(cx, self.fn)
            if n.has_exception(cx):
                n.free_value(cx, n.get_exception(cx))
            n.free_context(cx)  # pending jobs keep it: give() sees them and drops the runtime
            self.runtimes.give(self.runtime, self.recycle)

    def enter(self) -> None:
        """About to run JS from here: measure the stack from this depth (the binding does
        it on every call; a run's calls within one slice are at about one depth)."""
        self.runtimes.n.update_stack_top(self.rt)

    def boot(self, core: bytes) -> bool:
        """Evaluate the prelude's core (bytecode) and keep the ``__t_api`` function that
        it returns; False if it threw. Then install the interrupt handler: a fresh
        context polls it at its first function call (its countdown starts at 0), which
        is in the core, our bounded code; unhandled, that poll costs nothing (≈ 2 µs
        less per run) and the next comes after the usual countdown."""
        n = self.runtimes.n
        value = n.evaluate(self.cx, core)
        n.set_interrupt_handler(self.rt, _INTERRUPT_PTR, None)
        if value is None:
            return False
        self.fn = value
        return True

    def eval(self, source: str) -> None:
        """Evaluate a global script (file name ``<input>``, as the binding's ``eval``)."""
        code = source.encode()
        self._python(self.runtimes.n.eval(self.cx, code, len(code), b"<input>", 0))

    def api(self, op: int, arg: str | None = None) -> Any:
        """``__t_api(op[, arg])`` (see prelude.js): its int or string result."""
        n, cx = self.runtimes.n, self.cx
        if arg is None:
            result = n.call(cx, self.fn, _NULL, 1, _OP_ARGS[op])
            if result.tag == TAG_INT:  # the common answer: 0, nothing to report
                return ctypes.c_int32(result.u).value
            return self._python(result)
        data = arg.encode()
        text = n.new_string(cx, data, len(data))
        if text.tag == TAG_EXCEPTION:
            raise self._exception()
        result = n.call(cx, self.fn, _NULL, 2, (_JSValue * 2)(_JSValue(op, TAG_INT), text))
        n.free_value(cx, text)
        return self._python(result)

    def execute_pending_job(self) -> bool:
        done = self.runtimes.n.execute_pending_job(self.rt, _job_context)
        if done < 0:
            raise self._exception()
        return done > 0

    def set_memory_limit(self, limit: int) -> None:
        self.runtime.limit_memory(self.runtimes.n, limit + self.runtime.base)

    def memory(self) -> dict[str, int]:
        used = _malloc_size(self.runtimes.n, self.rt)
        return {"malloc_size": used - self.runtime.base}

    # ------------------------------------------------------------------ conversions

    def _python(self, value: _JSValue) -> Any:
        """The binding's conversion of a result, for the types __t_api returns (frees it)."""
        tag = value.tag
        if tag == TAG_INT:
            return ctypes.c_int32(value.u).value
        if tag == TAG_STRING:
            text = self._text(value)
            self.runtimes.n.free_value(self.cx, value)
            return text
        if tag == TAG_EXCEPTION:
            raise self._exception()
        if tag == TAG_BOOL:
            return bool(value.u)
        if tag == TAG_FLOAT64:
            return ctypes.c_double.from_buffer_copy(ctypes.c_int64(value.u)).value
        if tag < 0:
            self.runtimes.n.free_value(self.cx, value)
        return None

    def _text(self, value: _JSValue) -> str | None:
        """ToString of a value as Python text, or None if that threw (exception cleared)."""
        n, cx = self.runtimes.n, self.cx
        size = ctypes.c_size_t()
        ptr = n.to_cstring(cx, ctypes.byref(size), value, False)
        if not ptr:
            if n.has_exception(cx):
                n.free_value(cx, n.get_exception(cx))
            return None
        try:
            return ctypes.string_at(ptr, size.value).decode("utf-8", "replace")
        finally:
            n.free_cstring(cx, ptr)

    def _exception(self) -> quickjs.JSException:
        """The pending JS exception as the binding raises it: "text\\nstack"."""
        n, cx = self.runtimes.n, self.cx
        exc = n.get_exception(cx)
        text = self._text(exc)
        stack = None
        if exc.tag not in (TAG_NULL, TAG_UNDEFINED):
            value = n.get_property_str(cx, exc, b"stack")
            if value.tag == TAG_EXCEPTION:
                n.free_value(cx, n.get_exception(cx))
            else:
                stack = self._text(value)
                n.free_value(cx, value)
        n.free_value(cx, exc)
        if text is None:
            return quickjs.JSException("(Failed obtaining QuickJS error string. Concurrency issue?)")
        overflow = "stack overflow" in text or "call stack size exceeded" in text
        return (quickjs.StackOverflow if overflow else quickjs.JSException)(f"{text}\n{stack or ''}")


_native: Native | None = None
_native_error: str | None = None


def native() -> Native | None:
    """The native hooks, or None (with :data:`_native_error` saying why) if unusable."""
    global _native, _native_error
    if _native is None and _native_error is None:
        if os.environ.get("TRAITOR_QJS_HOOKS", "1") == "0":
            _native_error = "disabled by TRAITOR_QJS_HOOKS=0"
        else:
            try:
                _native = Native()
            except Exception as exc:  # pragma: no cover - depends on the binding build
                _native_error = f"{type(exc).__name__}: {exc}"
    return _native


# --------------------------------------------------------------------------- prelude


class Prelude:
    """The prelude of every run, compiled once per worker.

    ``modules`` maps a module name to ``(function names, source or None)``. Each
    module's ``source`` becomes a part of its own, compiled once too (as the body of
    ``function (module, exports, require, __host)`` at global scope, like ``new
    Function``): a source that does not compile fails only ``require`` of that module.

    Parts, numbered as the JS side loads them: 0 fmt, 1 timers, 2 require, 3 libs
    and 4 esm (script libraries), 5 console (the core's console section, for runs
    whose core went without it), then one per module with a source.
    """

    def __init__(self, modules: dict[str, tuple[list[str], str | None]], hooks: Native | None) -> None:
        text = Path(__file__).with_name("prelude.js").read_text(encoding="utf-8")
        parts: dict[str, str] = {}
        name = None
        for line in text.splitlines(keepends=True):
            if line.startswith("//@part "):
                name = line.split()[1]
                parts[name] = ""
            elif name is not None:
                parts[name] += line
        # the core without and with its console section (see prelude.js); that section
        # alone is part "console"
        head, console, tail = parts["core"].split("//@console\n")
        parts["core"] = head + tail
        self._core_with_console = head + console + tail
        parts["console"] = (
            '(function (K, G) {\n  "use strict";\n  var load = K.load, LIMIT = K.LIMIT, now = K.now;\n'
            + console
            + "  K.has[5] = true; // this part's number (PARTS)\n})(__t_K, globalThis);\n"
        )
        self.native = hooks
        self._scratch = quickjs.Context()
        table: dict[str, list[Any]] = {}
        module_parts: list[tuple[str, str]] = []  # (file name, source)
        for mod_name, (fns, src) in modules.items():
            mod_name = str(mod_name)
            index = -1
            if src is not None:
                index = len(PARTS) - 1 + len(module_parts)
                module_parts.append((f"module:{mod_name}", self._module_part(mod_name, str(src), index)))
            table[mod_name] = [[str(fn) for fn in fns], index]
        parts["require"] = parts["require"].replace("@@MODULES@@", json.dumps(table))
        self.sources = parts
        self.module_sources = [src for _, src in module_parts]
        self._fetch = "1" if "http" in table else "0"
        self._core: dict[tuple[int, bool], bytes] = {}
        self._core_source: dict[int, str] = {}
        self.parts: list[bytes] = []
        if hooks is not None:
            cx = hooks.pointers(self._scratch)[1]
            self.parts = [hooks.compile(cx, parts[p], "prelude") for p in PARTS[1:]]
            self.parts += [hooks.compile(cx, src, filename) for filename, src in module_parts]

    def _module_part(self, name: str, source: str, index: int) -> str:
        key = json.dumps(name)
        text = (
            f"__t_K.mods[{key}] = function (module, exports, require, __host) {{\n{source}\n}};\n"
            f"__t_K.has[{index}] = true;\n"
        )
        try:  # parse only: the function is created, not called
            self._scratch.eval("(function () {\n" + text + "\n})")
        except (quickjs.JSException, quickjs.StackOverflow, ValueError) as exc:
            message = json.dumps(f"module '{name}' does not compile: {str(exc).partition(chr(10))[0]}")
            text = f"__t_K.mods[{key}] = function () {{ throw new SyntaxError({message}); }};\n__t_K.has[{index}] = true;\n"
        return text

    def library(self, name: str, version: int, code: str) -> LibraryCode:
        """The definition of one library version, ready for :class:`Sandbox` (bytecode
        with the native hooks, else source): see ``jsmodules.define_script``."""
        from traitor.runtime.jsmodules import ESM_HEADER, define_script, thrower

        source = define_script(name, version, code)
        esm = code.startswith(ESM_HEADER)
        if self.native is None:
            return LibraryCode(source, esm)
        cx = self.native.pointers(self._scratch)[1]
        filename = f"lib/{name}@{version}"
        try:
            return LibraryCode(self.native.compile(cx, source, filename), esm)
        except SyntaxError:  # the service checks syntax before sending; this is a backstop
            failure = thrower(f"{filename} does not compile")
            return LibraryCode(self.native.compile(cx, define_script(name, version, failure), filename), False)

    def core(self, limit: int, console: bool) -> bytes:
        """The core's bytecode for an output limit. ``console``: with its console section
        (≈ 15 µs per run), else with the accessor that loads that section as a part on
        first use (≈ 25 µs then: one read and one evaluation cost less than two)."""
        key = (limit, console)
        code = self._core.get(key)
        if code is None:
            assert self.native is not None
            if len(self._core) > 64:
                self._core.clear()
            source = self._core_text(limit, hooks=True, console=console)
            code = self._core[key] = self.native.compile(self.native.pointers(self._scratch)[1], source, "prelude")
        return code

    def source(self, limit: int) -> str:
        """Everything as one script, for contexts without the native hooks."""
        text = self._core_source.get(limit)
        if text is None:
            if len(self._core_source) > 64:
                self._core_source.clear()
            core = self._core_text(limit, hooks=False, console=True)
            rest = "".join(self.sources[p] for p in PARTS[1:] if p != "console") + "".join(self.module_sources)
            text = self._core_source[limit] = core + rest
        return text

    def _core_text(self, limit: int, hooks: bool, console: bool) -> str:
        core = self._core_with_console if console else self.sources["core"]
        core = core.replace("@@LIMIT@@", str(int(limit))).replace("@@LAZY_CONSOLE@@", "0" if console else "1")
        return core.replace("@@HOOKS@@", "1" if hooks else "0").replace("@@FETCH@@", self._fetch)


# --------------------------------------------------------------------------- execution state

# The runs whose JS is on the C stack, innermost last; None marks a preemption
# boundary (the worker serving other runs inside an interrupt handler).
_stack: list[Any] = []
_depth = 0  # preemptions currently on the stack
_preempt: Callable[[], None] | None = None
_housekeeping: Callable[[], None] | None = None
_on_depth: Callable[[int], None] | None = None
_others_waiting: Callable[[], bool] = lambda: False
_slice = 0.05
_max_nesting = 16
_stack_bytes = 2 << 20
_in_tracker = False
# Thread CPU time costs a system call (≈ 3 µs in a VM, no vDSO); monotonic time does
# not. A slice's CPU use is bounded by its wall time, so short slices are charged
# their wall time and the CPU clock is read at most every PROBE seconds of a slice.
PROBE = 0.005


def configure(
    *,
    preempt: Callable[[], None] | None = None,
    housekeeping: Callable[[], None] | None = None,
    on_depth: Callable[[int], None] | None = None,
    others_waiting: Callable[[], bool] | None = None,
    slice_seconds: float | None = None,
    max_nesting: int | None = None,
    stack_bytes: int | None = None,
) -> None:
    """Set the worker's scheduling hooks and knobs (module-wide).

    ``preempt()`` serves other runs while a long one is suspended; ``housekeeping()``
    (deadlines of the other runs, sending what is ready) is called every few ms of a
    long slice even where preemption is not allowed; ``on_depth(n)`` hears how many
    runs are suspended under preemptions whenever that changes."""
    global _preempt, _housekeeping, _on_depth, _others_waiting, _slice, _max_nesting, _stack_bytes
    if preempt is not None:
        _preempt = preempt
    if housekeeping is not None:
        _housekeeping = housekeeping
    if on_depth is not None:
        _on_depth = on_depth
    if others_waiting is not None:
        _others_waiting = others_waiting
    if slice_seconds is not None:
        _slice = slice_seconds
    if max_nesting is not None:
        _max_nesting = max_nesting
    if stack_bytes is not None:
        _stack_bytes = stack_bytes


def _enter(sb: Sandbox) -> None:
    sb.wall0 = sb.probe_at = _monotonic()
    sb.cpu0 = sb.probe_cpu = 0.0
    sb.executing = True
    _stack.append(sb)


def _leave(sb: Sandbox) -> None:
    sb.cpu_used += _thread_time() - sb.cpu0 if sb.cpu0 else _monotonic() - sb.wall0
    sb.executing = False
    _stack.pop()


def _slice_cpu(sb: Sandbox, now: float) -> float:
    """Precise CPU time of the current slice (reads the thread CPU clock)."""
    cpu = _thread_time()
    if not sb.cpu0:
        sb.cpu0 = cpu - (now - sb.wall0)  # the slice so far counts as all CPU (an upper bound)
    sb.probe_at = now
    sb.probe_cpu = cpu - sb.cpu0
    return sb.probe_cpu


def _serve_others(sb: Sandbox) -> None:
    """Let the worker run other runs while ``sb`` is suspended in its interrupt handler."""
    global _depth
    sb.cpu_used += _thread_time() - sb.cpu0
    _stack.append(None)
    _depth += 1
    try:
        if _on_depth is not None:
            _on_depth(_depth)
        _preempt()  # type: ignore[misc]
    finally:
        _depth -= 1
        _stack.pop()
        if _on_depth is not None:
            _on_depth(_depth)
        sb.cpu0 = _thread_time()
        sb.wall0 = sb.probe_at = _monotonic()
        sb.probe_cpu = 0.0


def _interrupt_check(sb: Sandbox) -> int:
    if sb.stop:
        return 1
    now = _monotonic()
    if now >= sb.wall_deadline:
        sb.stop = STOP_WALL
        return 1
    # Fast path: recent probe, and even counting all wall time since as CPU the budget holds.
    if now - sb.probe_at < PROBE and sb.cpu_used + sb.probe_cpu + (now - sb.probe_at) < sb.cpu_limit:
        return 0
    if sb.cpu_used + _slice_cpu(sb, now) >= sb.cpu_limit:
        sb.stop = STOP_CPU
        return 1
    if _housekeeping is not None and not _in_tracker:
        _housekeeping()
        if sb.stop:
            return 1
    if (
        now - sb.wall0 >= _slice
        and _preempt is not None
        and _depth < _max_nesting
        and not _in_tracker
        and _others_waiting()
    ):
        _serve_others(sb)
        if sb.stop:
            return 1
        if _monotonic() >= sb.wall_deadline:
            sb.stop = STOP_WALL
            return 1
    return 0


def _on_interrupt(rt: int, opaque: int) -> int:
    try:
        sb = _stack[-1] if _stack else None
        if sb is None or sb.rt != rt:
            return 0
        return _interrupt_check(sb)
    except BaseException:  # never let an exception escape into C
        traceback.print_exc()
        return 1


def _on_rejection(cx: int, promise: _JSValue, reason: _JSValue, handled: bool, opaque: int) -> None:
    global _in_tracker
    n = _native
    if n is None:
        return
    was = _in_tracker
    _in_tracker = True
    try:
        g = n.get_global_object(cx)
        k = n.get_property_str(cx, g, b"__t_K")
        f = n.get_property_str(cx, k, b"rej") if k.tag == TAG_OBJECT else _JSValue(0, 3)
        code = 0
        if f.tag == TAG_OBJECT:
            argv = (_JSValue * 3)(promise, reason, _JSValue(1 if handled else 0, TAG_BOOL))
            r = n.call(cx, f, k, 3, argv)
            if r.tag == TAG_INT:
                code = r.u & 0xFFFFFFFF
            elif r.tag == TAG_EXCEPTION:
                n.free_value(cx, n.get_exception(cx))
            else:
                n.free_value(cx, r)
        n.free_value(cx, f)
        n.free_value(cx, k)
        n.free_value(cx, g)
        if code:
            sb = _stack[-1] if _stack else None
            if sb is not None and sb.cx == cx:
                sb.signal(code)
    except BaseException:
        traceback.print_exc()
    finally:
        _in_tracker = was


_INTERRUPT_PTR = _INTERRUPT(_on_interrupt)
_NO_INTERRUPT = _INTERRUPT()  # NULL: no handler
_TRACKER_PTR = _TRACKER(_on_rejection)


# --------------------------------------------------------------------------- sandbox


class Sandbox:
    """One run in one fresh context. Not thread-safe; one worker thread drives all."""

    __slots__ = (
        "seq", "script", "timeout_ms", "cpu_ms", "memory_bytes", "output_bytes", "prelude",
        "ctx", "api", "rt", "cx", "hooked",
        "cpu_used", "cpu_limit", "wall_deadline", "wall0", "cpu0", "probe_at", "probe_cpu", "stop",
        "started_at", "finished_at", "done", "lines", "calls", "inbox",
        "next_at", "waiting", "yielded", "executing", "out_bytes",
        "ready", "rewake", "armed", "libs",
    )  # fmt: skip

    def __init__(
        self,
        seq: int,
        script: str,
        timeout_ms: int,
        cpu_ms: int,
        memory_bytes: int,
        output_bytes: int,
        prelude: Prelude,
        libs: tuple[list[Any], str] | None = None,
    ) -> None:
        self.seq = seq
        self.script = script
        self.timeout_ms = timeout_ms
        self.cpu_ms = cpu_ms
        self.memory_bytes = memory_bytes
        self.output_bytes = output_bytes
        self.prelude = prelude
        #: Script libraries: ([LibraryCode from Prelude.library], links JSON for __t_api(3)).
        self.libs = libs
        self.ctx: NativeContext | quickjs.Context | None = None
        self.api: Any = None
        self.rt = self.cx = 0
        self.hooked = prelude.native is not None
        self.cpu_used = 0.0
        self.cpu_limit = cpu_ms / 1000
        self.wall_deadline = float("inf")  # set by begin()
        self.wall0 = self.cpu0 = self.probe_at = self.probe_cpu = 0.0
        self.stop = 0
        self.started_at = 0
        self.finished_at = 0
        self.done: tuple[str, str | None] | None = None
        self.lines: list[list[Any]] = []  # produced, not yet sent
        self.calls: list[list[Any]] = []  # host calls produced, not yet sent
        self.inbox: list[str] = []  # settled host calls, as JSON array items
        self.next_at = 0  # ms epoch of the earliest timer, 0 = none
        self.waiting = False  # host calls in flight
        self.yielded = False
        self.executing = False
        self.out_bytes = 0
        self.ready = False  # worker bookkeeping: in the ready queue
        self.rewake = False  # worker bookkeeping: woken while executing
        self.armed = 0  # worker bookkeeping: the timer deadline queued for this run

    # ------------------------------------------------------------------ worker API

    def begin(self) -> None:
        """The run starts now: its wall-clock limit counts from here."""
        self.started_at = int(_time() * 1000)
        self.wall_deadline = _monotonic() + self.timeout_ms / 1000

    def step(self) -> None:
        """Run one slice (call begin() first). Afterwards read lines/calls/next_at/
        waiting/yielded/done."""
        if self.done is not None:
            return
        self.yielded = False
        _enter(self)
        try:
            try:
                if self.hooked and self.ctx is not None:
                    self.ctx.enter()  # type: ignore[union-attr]
                if self.ctx is None:
                    if not self._boot():
                        return
                    script = self.script
                    if "\0" in script:  # the binding takes C strings; same meaning in literals
                        script = script.replace("\0", "\\u0000")
                    self._arm()
                    self.ctx.eval(script)  # type: ignore[union-attr]
                elif self.inbox:
                    batch = "[" + ",".join(self.inbox) + "]"
                    self.inbox = []
                    self._arm()
                    self.api(2, batch)
                self._loop()
            except (quickjs.JSException, quickjs.StackOverflow) as exc:
                self._failed(exc)
            except Exception as exc:
                self._final_drain()
                self._finish(ERROR, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            _leave(self)

    def deliver(self, call_id: int, ok: bool, payload: str) -> None:
        """A host call finished: ``payload`` is the result as JSON text, or an error message."""
        if self.done is None:
            item = f"[{int(call_id)},1,{payload}]" if ok else f"[{int(call_id)},0,{json.dumps(payload)}]"
            self.inbox.append(item)

    def kill(self, reason: int) -> None:
        """End the run for ``reason`` (STOP_*).

        The innermost executing run stops at its next interrupt poll (and reports
        then, with its last console lines). A run suspended under a preemption can't
        unwind before the runs above it; it is reported done now and unwinds later."""
        if self.done is not None:
            return
        if self.executing:
            if not self.stop:
                self.stop = reason
            if _stack and _stack[-1] is self:
                return
        self._finish(*self._stopped(reason))

    def signal(self, code: int) -> None:
        """A JS → host signal from the rejection tracker (see prelude.js)."""
        if code == 1:
            if not self.stop:
                self.stop = STOP_OUTPUT
        elif 2 <= code < 2 + len(self.prelude.parts):
            self.prelude.native.run(self.cx, self.prelude.parts[code - 2])  # type: ignore[union-attr]

    # ------------------------------------------------------------------ internals

    def _boot(self) -> bool:
        n = self.prelude.native
        if n is not None:
            ctx = self.ctx = NativeContext(n.runtimes, self.memory_bytes, _stack_bytes)
            self.rt, self.cx = ctx.rt, ctx.cx
            ctx.enter()
            if not self._load_core(ctx):
                if self.stop:
                    self._finish(*self._stopped(self.stop))
                else:
                    self._finish(*self._memory_or(ERROR, "internal error: the prelude failed to load"))
                return False
            self.api = ctx.api
        else:
            ctx = self.ctx = quickjs.Context()
            ctx.set_memory_limit(self.memory_bytes)
            ctx.set_max_stack_size(_stack_bytes)
            self._arm()
            ctx.eval(self.prelude.source(self.output_bytes))
            self.api = ctx.get("__t_api")
        if self.libs is not None:
            definitions, links = self.libs
            if n is not None:  # the parts now, directly: cheaper than on demand through a signal
                n.run(self.cx, self.prelude.parts[_LIBS_PART])
                if any(d.esm for d in definitions):
                    n.run(self.cx, self.prelude.parts[_ESM_PART])
            for definition in definitions:  # defines each library's wrapper; runs none of them
                if n is not None:
                    n.run(self.cx, definition.code)
                else:
                    ctx.eval(definition.code)
            self.api(3, links)
        return True

    def _load_core(self, ctx: NativeContext) -> bool:
        """The prelude's core, with its console section when the script names ``console``
        (a plain substring test: a script that reaches it otherwise loads it on use)."""
        return ctx.boot(self.prelude.core(self.output_bytes, console="console" in self.script))

    def _arm(self) -> None:
        """Without hooks: the binding's CPU limit for the next call (it restarts per call)."""
        if not self.hooked:
            now = _monotonic()
            left = min(self.cpu_limit - self.cpu_used - _slice_cpu(self, now), self.wall_deadline - now)
            self.ctx.set_time_limit(max(left, 0.0) + 0.001)  # type: ignore[union-attr]

    def _loop(self) -> None:
        ctx, api, arm = self.ctx, self.api, self._arm
        while True:
            n = 0
            arm()
            while ctx.execute_pending_job():  # type: ignore[union-attr]
                n += 1
                if not n & 63:
                    if self._should_yield():
                        self.yielded = True
                        break
                    arm()
            arm()
            state = api(0)
            if state:
                self._absorb(state)
                if self.done is not None:
                    return
            else:
                self.next_at = 0
                self.waiting = False
            if self.yielded:
                return
            if self.next_at and self.next_at <= int(_time() * 1000):
                if self._should_yield():
                    self.yielded = True
                    return
                arm()
                if api(1):
                    continue
                return
            if not self.next_at and not self.waiting:
                self._final_checks()
            return

    def _should_yield(self) -> bool:
        """Between promise jobs and timers: stop if a limit hit, yield after a long slice."""
        if self.stop:
            raise quickjs.JSException("InternalError: interrupted")
        if not self.hooked:
            now = _monotonic()
            if now >= self.wall_deadline:
                self.stop = STOP_WALL
            elif self.cpu_used + _slice_cpu(self, now) >= self.cpu_limit:
                self.stop = STOP_CPU
            if self.stop:
                raise quickjs.JSException("InternalError: interrupted")
        return _monotonic() - self.wall0 >= _slice and _others_waiting()

    def _final_checks(self) -> None:
        self._finish(SUCCESS, None)

    def _absorb(self, state: str, lines_only: bool = False) -> int:
        """Take a tick's report (see prelude.js); returns its flags."""
        try:
            flags, at, lines, calls, failure = json.loads(state)
            flags = int(flags)
        except (ValueError, TypeError):
            if lines_only:
                return 0
            raise ValueError(
                "malformed report from the prelude (did the script replace built-ins such as Array.prototype.toJSON?)"
            ) from None
        if lines:
            budget = self.output_bytes + 256
            out = self.lines
            for line in lines:
                if type(line) is not list or len(line) != 3:
                    continue
                ts, level, text = line
                if type(text) is not str or level not in LEVELS or type(ts) not in (int, float):
                    continue
                if text.isascii():
                    self.out_bytes += len(text) + 1
                else:
                    text = _clean(text)
                    self.out_bytes += len(text.encode()) + 1
                if self.out_bytes > budget:
                    self.stop = STOP_OUTPUT
                    break
                out.append([int(ts), level, text])
        if lines_only:
            return flags
        if calls:
            for call in calls:
                if type(call) is list and len(call) == 4 and type(call[0]) is int and all(type(x) is str for x in call[1:]):
                    self.calls.append(call)
        self.next_at = at if type(at) in (int, float) and at > 0 else 0
        self.waiting = bool(flags & 2)
        if flags & 4 or self.stop == STOP_OUTPUT:
            self._finish(OUTPUT_TRUNCATED, f"output truncated at {self.output_bytes} bytes")
        elif failure:
            kind = failure[0] if type(failure) is list and failure else "error"
            text = failure[1] if type(failure) is list and len(failure) > 1 and type(failure[1]) is str else str(failure)
            if kind == "memory":
                self._finish(MEMORY, self._memory_message())
            else:
                self._finish(ERROR, _clean(text))
        return flags

    def _failed(self, exc: Exception) -> None:
        """The JS call raised: an uncaught error, or a limit."""
        text = str(exc)
        head = text.partition("\n")[0]
        reason = self.stop
        if not reason and head.startswith("InternalError: interrupted"):  # the binding's own time limit
            cpu = self.cpu_used + _slice_cpu(self, _monotonic())
            reason = STOP_CPU if cpu >= self.cpu_limit - 0.005 else STOP_WALL
        if self._final_drain() and not reason:
            reason = STOP_OUTPUT  # without hooks the prelude throws when the output is full
        if reason:
            outcome = self._stopped(reason)
        elif "out of memory" in head or (head == "null" and self._near_memory_limit()):
            outcome = (MEMORY, self._memory_message())
        else:
            outcome = (ERROR, _clean(_describe(text)))
        self._finish(*outcome)

    def _stopped(self, reason: int) -> tuple[str, str | None]:
        if reason == STOP_CPU:
            return TIMEOUT, f"CPU limit of {seconds(self.cpu_ms)} s exceeded"
        if reason == STOP_WALL:
            return TIMEOUT, f"timed out after {seconds(self.timeout_ms)} s wall-clock"
        if reason == STOP_OUTPUT:
            return OUTPUT_TRUNCATED, f"output truncated at {self.output_bytes} bytes"
        return ERROR, "cancelled"

    def _memory_message(self) -> str:
        return f"out of memory: limit {mib(self.memory_bytes)} MiB"

    def _near_memory_limit(self) -> bool:
        try:
            used = self.ctx.memory()["malloc_size"]  # type: ignore[union-attr]
        except Exception:
            return False
        return used >= self.memory_bytes * 0.9

    def _memory_or(self, status: str, message: str) -> tuple[str, str]:
        return (MEMORY, self._memory_message()) if self._near_memory_limit() else (status, message)

    def _final_drain(self) -> bool:
        """Collect the console lines a failing slice produced, under a tiny budget.

        True if the prelude says the output was truncated."""
        if self.api is None or self.ctx is None:
            return False
        truncated = False
        reason = self.stop
        self.stop = 0
        self.cpu_limit = self.cpu_used + _slice_cpu(self, _monotonic()) + 0.05
        self.wall_deadline = min(self.wall_deadline, _monotonic()) + 0.1
        try:
            self.ctx.set_memory_limit(self.memory_bytes + (1 << 20))
            self._arm()
            state = self.api(0)
            if state:
                truncated = bool(self._absorb(state, lines_only=True) & 4)
        except Exception:
            pass
        self.stop = reason or self.stop
        return truncated

    def _finish(self, status: str, error: str | None) -> None:
        if self.done is not None:
            return
        if error is not None and len(error) > MAX_ERROR_CHARS:
            error = error[:MAX_ERROR_CHARS] + "\u2026"
        self.done = (status, error)
        self.finished_at = int(_time() * 1000)
        if not self.started_at:  # ended before it started (cancelled)
            self.started_at = self.finished_at
        self.next_at = 0
        self.waiting = False
        self.inbox = []
        self.api = None
        if isinstance(self.ctx, NativeContext):  # after a clean end its runtime serves the next run
            self.ctx.recycle = status == SUCCESS or (status == ERROR and not (error or "").startswith("internal error"))
        self.ctx = None  # frees the context (and, unless recycled, its runtime)


def _clean(text: str) -> str:
    """Text as valid Unicode: JS strings may hold lone surrogates, UTF-8 can't."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode()
    return text


def _describe(text: str) -> str:
    """The binding's exception text → "message\\n stack" without prelude frames.

    Values that are not Errors (``throw "x"``) have no stack: the binding gives
    ``x\\nundefined`` (or ``x\\n`` for null/undefined)."""
    head, _, stack = text.rstrip().partition("\n")
    if stack.strip() == "undefined" or (not stack.strip() and head in ("null", "undefined")):
        return f"Uncaught {head}"
    frames = [line for line in stack.split("\n") if "(prelude:" not in line]
    return "\n".join([head, *frames]) if frames else head
