"""Offline subcommands: ``export``, ``import`` and ``token``.

``export``/``import`` open the store directly (the same code the API uses, via
:class:`~traitor.scheduler.jobs.JobService`); run them against a stopped
embedded store, or against a cluster's shared store at any time (running nodes
pick the changes up by reconciliation).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any, Sequence

from traitor.cli.config import FLAGS, Parser, parse_settings


def run(command: str, argv: Sequence[str]) -> int:
    if command == "token":
        return token_command(argv)
    extra = Parser(prog=f"traitor {command}", add_help=False)
    if command == "import":
        extra.add_argument("file")
        extra.add_argument("--dry-run", action="store_true")
    extra.add_argument("-h", "--help", action="store_true")
    known, rest = extra.parse_known_args(argv)
    if known.help:
        print(f"usage: traitor {command} {'FILE [--dry-run] ' if command == 'import' else ''}[service flags]\n"
              f"Service flags select the store: --data-dir, --store, -mg, -c (see traitor --help).")
        return 0
    settings = parse_settings(rest)
    if command == "export":
        return asyncio.run(_export(settings))
    return asyncio.run(_import(settings, known.file, known.dry_run))


async def _service(settings: Any) -> Any:
    from traitor.scheduler.engine import Engine, EngineConfig
    from traitor.scheduler.jobs import JobService
    from traitor.store import open_store

    store = open_store(settings.store_url(), namespace=settings.cluster, data_dir=settings.data_path,
                       synchronous=settings.sync)
    await store.start()
    engine = Engine(store, _NoRunner(), config=EngineConfig(timezone=settings.timezone, limits=settings.limits()))
    return store, JobService(engine)


async def _export(settings: Any) -> int:
    from traitor.api.serialize import job_json
    from traitor.domain.timeutil import now_ms, to_rfc3339

    from traitor.scheduler.libraries import LibraryService

    store, jobs = await _service(settings)
    try:
        items = [job_json(job, None, script=True) async for job in jobs.export()]
        libraries = await LibraryService(jobs.engine).export()
    finally:
        await store.close()
    json.dump({"version": 1, "exportedAt": to_rfc3339(now_ms()), "jobs": items, "libraries": libraries},
              sys.stdout, indent=2)
    sys.stdout.write("\n")
    print(f"exported {len(items)} jobs and {len(libraries)} libraries", file=sys.stderr)
    return 0


async def _import(settings: Any, path: str, dry_run: bool) -> int:
    from traitor.domain.errors import ValidationError

    try:
        with (sys.stdin if path == "-" else open(path, encoding="utf-8")) as handle:
            payload = json.load(handle)
    except (OSError, ValueError) as exc:
        print(f"traitor: error: cannot read {path}: {exc}", file=sys.stderr)
        return 1
    store, jobs = await _service(settings)
    try:
        libraries, report = await jobs.import_document(payload, dry_run=dry_run, progress=_progress)
    except ValidationError as exc:
        print(f"traitor: error: {exc}", file=sys.stderr)
        return 1
    finally:
        await store.close()
    print(file=sys.stderr)
    verb = "would be" if dry_run else "were"
    print(f"libraries: {len(libraries.created)} versions created, {len(libraries.unchanged)} unchanged, "
          f"{len(libraries.errors)} rejected", file=sys.stderr)
    for problem in libraries.errors:
        print(f"  library {problem.get('library', '#' + str(problem.get('index')))}: {problem['error']}",
              file=sys.stderr)
    print(f"jobs: {len(report.created)} created, {len(report.updated)} updated, {len(report.unchanged)} unchanged "
          f"({verb} applied), {len(report.errors)} rejected", file=sys.stderr)
    for problem in report.errors:
        print(f"  job #{problem['index']}: {problem['field'] or ''} {problem['error']}", file=sys.stderr)
    return 1 if report.errors or libraries.errors else 0


def _progress(done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    sys.stderr.write(f"\rimporting [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    sys.stderr.flush()


def token_command(argv: Sequence[str]) -> int:
    from traitor.cli.tokens import TokenFile

    parser = Parser(prog="traitor token", description="Manage API tokens (stored hashed in <data-dir>).")
    parser.add_argument("action", choices=("create", "list", "revoke"))
    parser.add_argument("name", nargs="?", help="token name (create) or id/name (revoke)")
    data_flag = next(f for f in FLAGS if f.dest == "data_dir")
    parser.add_argument("--data-dir", default=None, help=data_flag.help)
    args = parser.parse_args(argv)
    settings = parse_settings(["--data-dir", args.data_dir] if args.data_dir else [])
    tokens = TokenFile(settings.data_path)
    if args.action == "create":
        token, entry = tokens.create(args.name or "default")
        print(token)
        print(f"created token {entry['id']} ({entry['name']}); it is shown only once", file=sys.stderr)
    elif args.action == "list":
        for entry in tokens.load():
            state = "revoked" if entry.get("revoked") else "active"
            print(f"{entry['id']}  {entry['name']:<20} {state}")
    else:
        if not args.name:
            parser.error("revoke needs the token's id or name")
        if not tokens.revoke(args.name):
            print(f"traitor: error: no token {args.name!r}", file=sys.stderr)
            return 1
        print(f"revoked {args.name}", file=sys.stderr)
    return 0


class _NoRunner:
    """Stands in for the runtime where jobs are only read and written, never run."""

    queued = busy = 0

    async def start(self) -> None: ...

    async def close(self, grace: float = 0) -> None: ...

    def submit(self, request: Any, listener: Any = None) -> Any:
        raise RuntimeError("offline commands do not run scripts")

    def cancel(self, run_id: str) -> bool:
        return False

