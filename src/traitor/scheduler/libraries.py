"""Script libraries in the main process: resolving them for runs, and managing them.

:class:`LibraryResolver` sits between the engine and the script runner. ``require``
is synchronous and the sandbox reads nothing from outside, so every library a run
may load is found *before* the run: the job script is scanned for ``lib/…``
specifiers (:mod:`traitor.runtime.jsmodules`), then, transitively, each library's
source; the sources go with the :class:`~traitor.runtime.abc.RunRequest`
(``libraries``). ES module syntax is rewritten into CommonJS on the way.

Caches (all per process):

* the prepared job script, by script text (LRU);
* the prepared library, by ``(name, version)`` — immutable, since the store never
  gives a number twice (LRU);
* the latest version of every library: one snapshot of ``list_libraries``,
  replaced when a library changes here (at once), when another node announces a
  change (``::lib:NAME`` through the coordinator, see :data:`LIBRARY_KEY_PREFIX`),
  and in the background every ``refresh_interval`` seconds (pub/sub may drop a
  message; the snapshot in use stays valid meanwhile).

When everything a run needs is cached, :meth:`LibraryResolver.submit` hands the run
to the runner synchronously (a few dict look-ups); otherwise it reads what is
missing first. A run whose libraries cannot be read (store down) ends as ``error``.

:class:`LibraryService` is what the API uses: validation, writes, the usage check
before a delete, and the change announcements.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

from traitor.domain.errors import ConflictError, NotFoundError, ValidationError
from traitor.domain.job import RunStatus
from traitor.domain.library import (
    LibraryInfo,
    LibraryVersion,
    VersionInfo,
    is_library_specifier,
    parse_specifier,
    validate_name,
    validate_source,
)
from traitor.domain.timeutil import now_ms
from traitor.runtime.abc import ConsoleListener, RunRequest, RunResult, ScriptRunner
from traitor.runtime.jsmodules import Prepared, prepare, syntax_error, thrower

if TYPE_CHECKING:
    from traitor.scheduler.engine import Engine
    from traitor.store.abc import JobStore

log = logging.getLogger("traitor.libraries")

#: Pseudo job id prefix under which library changes travel between cluster nodes.
LIBRARY_KEY_PREFIX = "::lib:"
#: Distinct library versions one run may load.
MAX_LIBRARIES_PER_RUN = 256


class TooManyLibraries(Exception):
    pass


@dataclass(frozen=True, slots=True)
class PreparedLibrary:
    """A library version as runs get it: CommonJS code and the libraries it names."""

    name: str
    version: int
    code: str
    requires: tuple[str, ...]  # lib/… specifiers
    error: tuple[str, int, int] | None = None  # syntax error (message, line, column)


@dataclass(slots=True)
class Usage:
    """Who uses a library: jobs ``(job_id, name)`` and other libraries (by name)."""

    jobs: list[tuple[str, str]] = field(default_factory=list)
    libraries: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.jobs or self.libraries)


class LibraryInUse(ConflictError):
    """A delete refused because jobs or libraries still refer to the library (409)."""

    def __init__(self, name: str, usage: Usage) -> None:
        self.name = name
        self.usage = usage
        parts = []
        if usage.jobs:
            parts.append(f"{len(usage.jobs)} job(s)")
        if usage.libraries:
            parts.append(f"{len(usage.libraries)} other librar{'y' if len(usage.libraries) == 1 else 'ies'}")
        super().__init__(
            f"library {name!r} is used by {' and '.join(parts)}; change them first, or delete with ?force=true"
        )


def _lib_specs(specifiers: Iterable[str]) -> tuple[str, ...]:
    return tuple(s for s in specifiers if is_library_specifier(s))


def prepare_library(lv: LibraryVersion) -> PreparedLibrary:
    """Rewrite a library for runs and check its syntax (a library that does not
    compile is shipped as code that throws the SyntaxError when required)."""
    prepared = prepare(lv.source, library=True)
    error = syntax_error(prepared.code, library=True)
    code = prepared.code
    if error is not None:
        message, line, column = error
        code = thrower(f"lib/{lv.name}@{lv.version}: {message} (line {line}, column {column})")
    return PreparedLibrary(lv.name, lv.version, code, _lib_specs(prepared.specifiers), error)


class _Plan:
    """A job script as runs get it, with the libraries it resolved to last time (valid
    while the resolver's generation has not moved)."""

    __slots__ = ("code", "specs", "generation", "libraries")

    def __init__(self, prepared: Prepared) -> None:
        self.code = prepared.code
        self.specs = _lib_specs(prepared.specifiers)
        self.generation = -1
        self.libraries: dict[str, tuple[int, str]] | None = None


class _LRU(OrderedDict):  # type: ignore[type-arg]
    """At most ``size`` entries and about ``max_bytes`` of code (the newest entry stays)."""

    def __init__(self, size: int, max_bytes: int, weigh: Callable[[Any], int]) -> None:
        super().__init__()
        self.size = size
        self.max_bytes = max_bytes
        self.weigh = weigh
        self.bytes = 0

    def get_touch(self, key: Any) -> Any:
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        return value

    def put(self, key: Any, value: Any) -> None:
        self.discard(key)
        self[key] = value
        self.bytes += self.weigh(value)
        while len(self) > 1 and (len(self) > self.size or self.bytes > self.max_bytes):
            self.bytes -= self.weigh(self.popitem(last=False)[1])

    def discard(self, key: Any) -> None:
        old = self.pop(key, None)
        if old is not None:
            self.bytes -= self.weigh(old)


class LibraryResolver:
    """Finds, fetches and caches the libraries of runs (see the module docstring)."""

    def __init__(
        self,
        store: JobStore,
        *,
        refresh_interval: float = 30.0,
        max_scripts: int = 4096,
        max_libraries: int = 2048,
        max_bytes: int = 64 << 20,
    ) -> None:
        self.store = store
        self.refresh_interval = refresh_interval
        # script text -> _Plan (the text is the key, the code the value: both count)
        self._plans: _LRU = _LRU(max_scripts, max_bytes, lambda plan: 2 * len(plan.code))
        # (name, version) -> PreparedLibrary
        self._libs: _LRU = _LRU(max_libraries, max_bytes, lambda lib: len(lib.code))
        self._missing: set[tuple[str, int]] = set()  # pinned versions that are not stored
        self._latest: dict[str, int] = {}  # name -> latest version (complete snapshot)
        self._snapshot_at: float | None = None  # monotonic time of the snapshot; None: never read
        self._dirty = False
        self._refreshing: asyncio.Task[None] | None = None
        self._pending: dict[str, tuple[asyncio.Task[None], asyncio.Future[RunResult]]] = {}
        #: Moves whenever what a specifier resolves to may have changed.
        self._generation = 0
        #: Counters: runs resolved from the caches alone, runs that read the store first.
        self.stats = {"cached": 0, "fetched": 0, "refreshes": 0}

    # ------------------------------------------------------------------ runs
    def plan(self, script: str) -> _Plan:
        """The prepared form of a job script (cached by its text)."""
        plan = self._plans.get_touch(script)
        if plan is None:
            plan = _Plan(prepare(script, library=False))
            self._plans.put(script, plan)
        return plan

    def submit(
        self, runner: ScriptRunner, request: RunRequest, listener: ConsoleListener | None = None
    ) -> asyncio.Future[RunResult]:
        """``runner.submit`` with the run's libraries attached (and its ES module syntax rewritten)."""
        script = request.script
        if "lib/" not in script and "import" not in script:
            return runner.submit(request, listener)
        plan = self.plan(script)
        specs = plan.specs
        request.script = plan.code
        if not specs:
            return runner.submit(request, listener)
        if plan.generation == self._generation:  # resolved before, nothing changed since
            if time.monotonic() - self._snapshot_at > self.refresh_interval:  # type: ignore[operator]
                self._refresh_soon()
            self.stats["cached"] += 1
            request.libraries = plan.libraries
            return runner.submit(request, listener)
        try:
            libraries = self._walk(specs)[0] if self._snapshot_at is not None else None
        except TooManyLibraries as exc:
            return _failed(str(exc))
        if libraries is not None:
            self.stats["cached"] += 1
            plan.generation, plan.libraries = self._generation, libraries
            request.libraries = libraries
            return runner.submit(request, listener)
        self.stats["fetched"] += 1
        outer: asyncio.Future[RunResult] = asyncio.get_running_loop().create_future()
        task = asyncio.get_running_loop().create_task(self._submit_later(runner, request, listener, specs, outer))
        self._pending[request.run_id] = (task, outer)
        return outer

    def cancel(self, runner: ScriptRunner, run_id: str) -> bool:
        """``runner.cancel``, also for a run still waiting for its libraries."""
        pending = self._pending.pop(run_id, None)
        if pending is None:
            return runner.cancel(run_id)
        task, outer = pending
        task.cancel()
        if not outer.done():
            moment = now_ms()
            outer.set_result(RunResult(RunStatus.ERROR, moment, moment, [], "cancelled"))
        return True

    async def _submit_later(
        self,
        runner: ScriptRunner,
        request: RunRequest,
        listener: ConsoleListener | None,
        specs: tuple[str, ...],
        outer: asyncio.Future[RunResult],
    ) -> None:
        try:
            try:
                request.libraries = await self.resolve(specs)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("run %s: could not load its libraries: %s", request.run_id, exc)
                if not outer.done():
                    moment = now_ms()
                    text = exc if isinstance(exc, TooManyLibraries) else f"{type(exc).__name__}: {exc}"
                    outer.set_result(
                        RunResult(RunStatus.ERROR, moment, moment, [], f"could not load the libraries of this run: {text}")
                    )
                return
            if outer.done():
                return
            try:
                inner = runner.submit(request, listener)
            except Exception as exc:
                outer.set_exception(exc)
                return
        finally:
            self._pending.pop(request.run_id, None)

        def relay(done: asyncio.Future[RunResult]) -> None:
            if outer.done():
                return
            if done.cancelled():
                outer.cancel()
            elif done.exception() is not None:
                outer.set_exception(done.exception())  # type: ignore[arg-type]
            else:
                outer.set_result(done.result())

        inner.add_done_callback(relay)

    async def resolve(self, specs: Iterable[str]) -> dict[str, tuple[int, str]]:
        """``{specifier: (version, code)}`` of every library ``specs`` need, transitively;
        ``(0, "")`` marks one that does not exist."""
        specs = tuple(specs)
        if self._snapshot_at is None:
            await self.refresh()
        for _ in range(64):  # each round reads what the previous one discovered
            libraries, wanted = self._walk(specs)
            if libraries is not None:
                return libraries
            await asyncio.gather(*(self._fetch(name, version) for name, version in wanted))
        raise RuntimeError("library resolution did not settle")

    def _walk(self, specs: tuple[str, ...]) -> tuple[dict[str, tuple[int, str]] | None, list[tuple[str, int]]]:
        """Resolve from the caches: (libraries, []) when complete, else (None, keys to fetch)."""
        if self._snapshot_at is not None and time.monotonic() - self._snapshot_at > self.refresh_interval:
            self._refresh_soon()
        out: dict[str, tuple[int, str]] = {}
        wanted: list[tuple[str, int]] = []
        todo = list(specs)
        latest, libs, missing = self._latest, self._libs, self._missing
        distinct: set[tuple[str, int]] = set()
        while todo:
            spec = todo.pop()
            if spec in out:
                continue
            parsed = parse_specifier(spec)
            if parsed is None:
                out[spec] = (0, "")
                continue
            name, pin = parsed
            newest = latest.get(name)
            version = newest if pin is None else pin
            if newest is None or version is None or version > newest or (name, version) in missing:
                out[spec] = (0, "")
                continue
            key = (name, version)
            lib = libs.get_touch(key)
            if lib is None:
                if key not in wanted:
                    wanted.append(key)
                out[spec] = (version, "")
                continue
            out[spec] = (version, lib.code)
            distinct.add(key)
            if len(distinct) > MAX_LIBRARIES_PER_RUN:
                raise TooManyLibraries(f"a run may load at most {MAX_LIBRARIES_PER_RUN} library versions")
            todo.extend(lib.requires)
        if wanted:
            return None, wanted
        return out, []

    async def _fetch(self, name: str, version: int) -> None:
        lv = await self.store.get_library(name, version)
        if lv is None:
            self._missing.add((name, version))
            return
        self._libs.put((name, version), await asyncio.to_thread(prepare_library, lv))

    # ------------------------------------------------------------------ freshness
    async def refresh(self) -> None:
        """Read the latest version of every library now (joins a refresh in progress,
        and reads again if a change was announced while it read)."""
        self._dirty = True
        task = self._refreshing
        if task is None or task.done():
            task = self._refreshing = asyncio.get_running_loop().create_task(self._refresh_loop())
        await asyncio.shield(task)

    def _refresh_soon(self) -> None:
        if self._refreshing is None or self._refreshing.done():
            self._dirty = True
            self._refreshing = asyncio.get_running_loop().create_task(self._refresh_loop())
            self._refreshing.add_done_callback(_log_failure)

    async def _refresh_loop(self) -> None:
        while self._dirty:
            self._dirty = False
            try:
                infos = await self.store.list_libraries()
            except NotImplementedError:
                infos = []
            self._apply(infos)

    def _apply(self, infos: list[LibraryInfo]) -> None:
        self.stats["refreshes"] += 1
        latest = {info.name: info.version for info in infos}
        gone = set(self._latest) - set(latest)
        if latest != self._latest:
            self._generation += 1
        self._latest = latest
        self._snapshot_at = time.monotonic()
        if gone:
            self._forget(gone)

    def _forget(self, names: set[str]) -> None:
        self._generation += 1
        for key in [k for k in self._libs if k[0] in names]:
            self._libs.discard(key)
        self._missing = {k for k in self._missing if k[0] not in names}

    async def invalidate(self, name: str) -> None:
        """Library ``name`` changed (here or on another node): re-read the latest versions."""
        if self._snapshot_at is None:
            return  # nothing cached yet: the first run reads everything
        await self.refresh()

    def note(self, lv: LibraryVersion | None, name: str, prepared: PreparedLibrary | None = None) -> None:
        """This node just wrote ``lv`` (or deleted ``name`` when ``lv`` is None): runs
        from now on use it, without waiting for a refresh."""
        if lv is None:
            self._latest.pop(name, None)
            self._forget({name})
        else:
            if lv.version > self._latest.get(name, 0):
                self._latest[name] = lv.version
                self._generation += 1
            if prepared is not None:
                self._libs.put((lv.name, lv.version), prepared)
        self._dirty = True  # a snapshot being read may predate this write


def _failed(message: str) -> asyncio.Future[RunResult]:
    future: asyncio.Future[RunResult] = asyncio.get_running_loop().create_future()
    moment = now_ms()
    future.set_result(RunResult(RunStatus.ERROR, moment, moment, [], message))
    return future


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("refreshing the library versions failed: %s", task.exception())


# --------------------------------------------------------------------------- management


def syntax_json(error: tuple[str, int, int] | None) -> dict[str, Any] | None:
    if error is None:
        return None
    message, line, column = error
    return {"message": message, "line": line, "column": column}


def exported_libraries(document: Any) -> list[Any]:
    """The ``libraries`` of an export document (none in a bare array of jobs, or in
    exports made before libraries were exported)."""
    libraries = document.get("libraries", []) if isinstance(document, dict) else []
    return libraries if libraries is not None else []


@dataclass(slots=True)
class LibraryImportReport:
    """What an import did (or, in a dry run, would do) per ``NAME@VERSION``."""

    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


class LibraryService:
    """Library management for the API: rules, writes, usage checks, change notices."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = engine.store
        self.resolver: LibraryResolver = engine.libraries
        self.max_bytes = engine.limits.max_script_bytes

    async def _prepared(self, lv: LibraryVersion) -> PreparedLibrary:
        return await asyncio.to_thread(prepare_library, lv)

    async def create(self, name: Any, source: Any) -> tuple[LibraryVersion, PreparedLibrary]:
        name = validate_name(name)
        source = validate_source(source, self.max_bytes)
        lv = await self.store.add_library_version(name, source, create=True)
        return lv, await self._changed(lv)

    async def update(self, name: str, source: Any) -> tuple[LibraryVersion, PreparedLibrary]:
        name = self._known_name(name)
        source = validate_source(source, self.max_bytes)
        lv = await self.store.add_library_version(name, source, create=False)
        return lv, await self._changed(lv)

    async def _changed(self, lv: LibraryVersion) -> PreparedLibrary:
        prepared = await self._prepared(lv)
        self.resolver.note(lv, lv.name, prepared)
        await self.engine.coordinator.publish(LIBRARY_KEY_PREFIX + lv.name, lv.version)
        return prepared

    async def get(self, name: str, version: int | None = None) -> tuple[LibraryVersion, PreparedLibrary]:
        name = self._known_name(name)
        lv = await self.store.get_library(name, version)
        if lv is None:
            if version is not None and await self.store.get_library(name) is not None:
                raise NotFoundError(f"library {name!r} has no version {version}")
            raise NotFoundError(f"no library named {name!r}")
        prepared = self.resolver._libs.get((lv.name, lv.version)) or await self._prepared(lv)
        return lv, prepared

    async def list(self) -> list[LibraryInfo]:
        return await self.store.list_libraries()

    async def versions(self, name: str) -> list[VersionInfo]:
        name = self._known_name(name)
        versions = await self.store.list_library_versions(name)
        if not versions:
            raise NotFoundError(f"no library named {name!r}")
        return versions

    async def usage(self, name: str) -> Usage:
        """Jobs whose script names ``lib/NAME`` (any version) and libraries whose latest
        version does. Scans every job: O(total script size), fine for a delete."""
        name = self._known_name(name)
        usage = Usage()
        needle = f"lib/{name}"
        async for batch in self.store.iter_jobs():
            for job in batch:
                if needle in job.script and self._names(job.script, library=False, name=name):
                    usage.jobs.append((job.job_id, job.name))
        for info in await self.store.list_libraries():
            if info.name == name:
                continue
            lv = await self.store.get_library(info.name)
            if lv is not None and needle in lv.source and self._names(lv.source, library=True, name=name):
                usage.libraries.append(info.name)
        return usage

    @staticmethod
    def _names(source: str, *, library: bool, name: str) -> bool:
        for spec in prepare(source, library=library).specifiers:
            parsed = parse_specifier(spec)
            if parsed is not None and parsed[0] == name:
                return True
        return False

    async def delete(self, name: str, *, force: bool = False) -> None:
        name = self._known_name(name)
        if await self.store.get_library(name) is None:
            raise NotFoundError(f"no library named {name!r}")
        if not force:
            usage = await self.usage(name)
            if usage:
                raise LibraryInUse(name, usage)
        if not await self.store.delete_library(name):
            raise NotFoundError(f"no library named {name!r}")
        self.resolver.note(None, name)
        await self.engine.coordinator.publish(LIBRARY_KEY_PREFIX + name, 0)

    # ------------------------------------------------------------------ export / import
    async def export(self) -> list[dict[str, Any]]:
        """Every library with every version, oldest first (jobs may pin any of them):
        ``[{"name": …, "versions": [{"version": n, "source": …}, …]}, …]``."""
        exported = []
        for info in await self.store.list_libraries():
            versions = []
            for entry in sorted(await self.store.list_library_versions(info.name), key=lambda v: v.version):
                lv = await self.store.get_library(info.name, entry.version)
                if lv is not None:
                    versions.append({"version": lv.version, "source": lv.source})
            exported.append({"name": info.name, "versions": versions})
        return exported

    async def import_libraries(self, items: Any, *, dry_run: bool = False) -> LibraryImportReport:
        """Recreate exported libraries version by version, idempotently.

        A version the store holds with the same source is unchanged. A missing one is
        added only when it is the number the store gives next, so that ``lib/x@N`` in
        the imported jobs means the same source as where they came from. Anything else
        (another source under that number, a gap) is reported and not written: a
        library's history is never rewritten. Each library is checked on its own."""
        if not isinstance(items, list):
            raise ValidationError("libraries", "expected a JSON array of libraries")
        report = LibraryImportReport()
        for index, item in enumerate(items):
            try:
                name, versions = self._exported_library(item)
            except ValidationError as exc:
                report.errors.append({"index": index, "field": exc.field, "error": exc.message})
                continue
            await self._import_versions(name, versions, dry_run, report)
        return report

    def _exported_library(self, item: Any) -> tuple[str, list[tuple[int, str]]]:
        if not isinstance(item, dict):
            raise ValidationError("libraries", "each library must be an object")
        name = validate_name(item.get("name"))
        raw = item.get("versions")
        if not isinstance(raw, list) or not raw:
            raise ValidationError("versions", "must be a non-empty array of {version, source}")
        versions = []
        for entry in raw:
            number = entry.get("version") if isinstance(entry, dict) else None
            if type(number) is not int or number < 1:
                raise ValidationError("version", "must be a positive integer")
            versions.append((number, validate_source(entry.get("source"), self.max_bytes)))
        return name, sorted(versions)

    async def _import_versions(self, name: str, versions: list[tuple[int, str]], dry_run: bool,
                               report: LibraryImportReport) -> None:
        latest = await self.store.get_library(name)
        next_number = latest.version + 1 if latest is not None else 1
        for number, source in versions:
            label = f"{name}@{number}"
            held = await self.store.get_library(name, number) if number < next_number else None
            if held is not None:
                if held.source == source:
                    report.unchanged.append(label)
                    continue
                report.errors.append({"library": label, "error": "the store holds another source under this "
                                      "version; a library's versions are never rewritten"})
                return
            if number != next_number:
                report.errors.append({"library": label, "error": f"this store would number it {next_number}; "
                                      "versions are kept only in their original numbering"})
                return
            if not dry_run:
                lv = await self.store.add_library_version(name, source)
                await self._changed(lv)
                if lv.version != number:  # a deleted library's numbering goes on
                    report.errors.append({"library": label, "error": f"stored as version {lv.version}"})
                    return
            report.created.append(label)
            next_number += 1

    @staticmethod
    def _known_name(name: Any) -> str:
        try:
            return validate_name(name)
        except ValidationError:
            # A name that cannot exist: answer "not found" (404), as for any other unknown name.
            raise NotFoundError(f"no library named {str(name)[:80]!r}") from None
