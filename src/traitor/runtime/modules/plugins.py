"""Plugins: host modules written in Python by the operator.

A plugin is a Python module that offers one :class:`~traitor.runtime.modules.HostModule`.
The primary form is a factory function, called once when the plugin is loaded::

    # hello.py
    from traitor.runtime.modules import CallContext, HostModule

    def greet(ctx: CallContext, name: str) -> str:          # plain: runs in a thread
        return f"Hello, {name}!"

    async def wait(ctx: CallContext, ms: int) -> int:        # async: awaited on the loop
        ...

    def traitor_module() -> HostModule:
        return HostModule(name="hello", functions={"greet": greet, "wait": wait})

A module-level constant ``TRAITOR_MODULE = HostModule(...)`` works too (when a module
defines both, the factory is used). Scripts then call ``require('hello').greet('x')``,
which returns a Promise; ``source`` (optional JS, see ``HostModule``) can shape the
exports, e.g. to add Node-style callbacks.

Where plugins come from:

* installed packages exposing the entry-point group ``traitor.modules``; the entry
  point may name a factory (``hello = "traitor_hello:traitor_module"``, preferred), a
  ``HostModule`` object, or a module that has one of the two names above. The
  entry point's name must equal the module's ``name``;
* every ``*.py`` file in ``<data-dir>/plugin/`` (files whose name starts with ``_`` or
  ``.`` are ignored), imported under a private module name.

Rules: the module name matches ``^[a-z][a-z0-9_-]{0,63}$`` (so the ``lib/`` prefix,
which is reserved for script libraries, can never be taken), function names are JS
identifiers not starting with ``__``, every function is callable. A plugin that
fails to import, raises, returns the wrong type, breaks a rule, or takes a name that a
built-in or an earlier plugin has (entry points first, by name, then files, by file
name) is skipped with a log record and a :class:`PluginError`; loading never fails.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection

from traitor.runtime.modules import HostModule

log = logging.getLogger("traitor.plugins")

ENTRY_POINT_GROUP = "traitor.modules"
FACTORY_NAME = "traitor_module"
CONSTANT_NAME = "TRAITOR_MODULE"
#: Names of the built-in modules (see ``registry.builtin_modules``); plugins cannot take them.
BUILTIN_NAMES: frozenset[str] = frozenset({"http", "kv"})
RESERVED_PREFIX = "lib/"

MODULE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
FUNCTION_NAME = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


@dataclass(frozen=True, slots=True)
class PluginError:
    """A plugin that was skipped: where it came from, its module name if known, and why."""

    origin: str
    reason: str
    name: str | None = None

    def __str__(self) -> str:
        named = f" (module {self.name!r})" if self.name else ""
        return f"plugin {self.origin}{named} skipped: {self.reason}"


class _Rejected(Exception):
    def __init__(self, reason: str, name: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.name = name


def validate_module(module: Any) -> HostModule:
    """Check a plugin's offering; raise ``_Rejected`` with the reason if it is unusable."""
    if not isinstance(module, HostModule):
        raise _Rejected(f"expected a traitor.runtime.modules.HostModule, got {type(module).__name__}")
    name = module.name
    if not isinstance(name, str) or not MODULE_NAME.match(name) or name.startswith(RESERVED_PREFIX):
        raise _Rejected(f"invalid module name {name!r} (must match {MODULE_NAME.pattern})")
    if not isinstance(module.functions, dict):
        raise _Rejected("'functions' must be a dict of name: callable", name)
    for fname, fn in module.functions.items():
        if not isinstance(fname, str) or not FUNCTION_NAME.match(fname) or fname.startswith("__"):
            raise _Rejected(f"invalid function name {fname!r} (a JS identifier not starting with '__')", name)
        if not callable(fn):
            raise _Rejected(f"function {fname!r} is not callable ({type(fn).__name__})", name)
    if module.source is not None and not isinstance(module.source, str):
        raise _Rejected("'source' must be a string of JavaScript or None", name)
    if not module.functions and not module.source:
        raise _Rejected("it defines no functions and no source", name)
    return module


def _from_object(obj: Any, what: str) -> HostModule:
    """Turn what a plugin offers (module, factory, HostModule) into a checked HostModule."""
    if isinstance(obj, types.ModuleType):
        factory = getattr(obj, FACTORY_NAME, None)
        if factory is not None:
            obj = factory
        elif hasattr(obj, CONSTANT_NAME):
            obj = getattr(obj, CONSTANT_NAME)
        else:
            raise _Rejected(f"{what} defines neither {FACTORY_NAME}() nor {CONSTANT_NAME}")
    if not isinstance(obj, HostModule) and callable(obj):
        try:
            obj = obj()
        except (Exception, SystemExit) as exc:
            raise _Rejected(f"{FACTORY_NAME}() raised {_describe(exc)}") from exc
    return validate_module(obj)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        where = f"{exc.filename}:{exc.lineno}" if exc.filename else f"line {exc.lineno}"
        return f"SyntaxError: {exc.msg} ({where})"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _load_entry_point(ep: importlib.metadata.EntryPoint) -> tuple[HostModule, str]:
    dist = getattr(ep, "dist", None)
    label = f"entry point {ep.name} = {ep.value}"
    if dist is not None:
        label += f" ({dist.metadata['Name']} {dist.version})"
    try:
        obj = ep.load()
    except (Exception, SystemExit) as exc:
        raise _Rejected(f"import failed: {_describe(exc)}") from exc
    module = _from_object(obj, label)
    if module.name != ep.name:
        raise _Rejected(f"the entry point is named {ep.name!r} but its module is named {module.name!r}", module.name)
    path = getattr(sys.modules.get(ep.module), "__file__", None)
    return module, f"{path} [{label}]" if path else label


def _load_file(path: Path) -> tuple[HostModule, str]:
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    stem = re.sub(r"\W", "_", path.stem)
    mod_name = f"traitor_plugin_{stem}_{digest}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise _Rejected("cannot be imported")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = mod  # as a normal import would (dataclasses, pickling need it)
    try:
        spec.loader.exec_module(mod)
        module = _from_object(mod, str(path))
    except BaseException as exc:
        sys.modules.pop(mod_name, None)
        if isinstance(exc, _Rejected):
            raise
        if isinstance(exc, (Exception, SystemExit)):
            raise _Rejected(f"import failed: {_describe(exc)}") from exc
        raise
    return module, str(path)


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    return sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: (ep.name, ep.value))


def load_plugins(
    plugin_dir: Path | None,
    *,
    reserved: Collection[str] = BUILTIN_NAMES,
) -> tuple[dict[str, HostModule], list[PluginError]]:
    """Discover and load every plugin; return the good ones by name and the skipped ones.

    ``plugin_dir`` is ``<data-dir>/plugin`` (``None`` or missing: entry points only).
    ``reserved``: names already taken (the built-in modules). Never raises for a bad
    plugin: each is logged (``traitor.plugins``) and reported in the error list.
    """
    loaded: dict[str, HostModule] = {}
    errors: list[PluginError] = []
    taken = set(reserved)

    candidates: list[tuple[str, Any]] = [(f"entry point {ep.name!r}", ep) for ep in _entry_points()]
    if plugin_dir is not None:
        plugin_dir = Path(plugin_dir)
        if plugin_dir.is_dir():
            for path in sorted(plugin_dir.glob("*.py")):
                if path.name.startswith(("_", ".")) or not path.is_file():
                    log.debug("ignoring %s in the plugin folder", path)
                    continue
                candidates.append((str(path), path))
        elif plugin_dir.exists():
            error = PluginError(str(plugin_dir), "the plugin folder is not a directory")
            log.warning("%s", error)
            errors.append(error)
        else:
            log.debug("no plugin folder at %s", plugin_dir)

    for origin, source in candidates:
        try:
            module, where = _load_entry_point(source) if isinstance(source, importlib.metadata.EntryPoint) else _load_file(source)
        except _Rejected as exc:
            error = PluginError(origin, exc.reason, exc.name)
            log.error("%s", error)
            errors.append(error)
            continue
        except Exception as exc:  # anything unforeseen in a plugin must not stop the service
            error = PluginError(origin, f"unexpected failure: {_describe(exc)}")
            log.exception("%s", error)
            errors.append(error)
            continue
        if module.name in taken:
            kind = "a built-in module" if module.name in reserved else f"the plugin from {loaded[module.name].origin}"
            error = PluginError(origin, f"the name {module.name!r} is already taken by {kind}", module.name)
            log.warning("%s", error)
            errors.append(error)
            continue
        module.origin = where
        loaded[module.name] = module
        taken.add(module.name)
        log.info(
            "loaded plugin module %r from %s (functions: %s)",
            module.name,
            where,
            ", ".join(module.functions) or "none",
        )
    return loaded, errors
