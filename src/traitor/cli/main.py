"""``traitor``: start a node (default), or manage tokens and jobs offline.

    traitor [flags]                 start the service (see traitor --help)
    traitor export [flags] > f.json write every job as JSON
    traitor import FILE [--dry-run] create or update jobs from JSON
    traitor token create|list|revoke
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import logging.handlers
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from traitor.cli.config import Settings, fail, parse_settings

log = logging.getLogger("traitor")

SUBCOMMANDS = ("export", "import", "token")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in SUBCOMMANDS:
        from traitor.cli import commands

        return commands.run(args[0], args[1:])
    settings = parse_settings(args)
    setup_logging(settings)
    try:
        return run_loop(serve(settings))
    except KeyboardInterrupt:
        return 0


def run_loop(main_coroutine: Any) -> int:
    """Run the service on uvloop when it is installed (it ships with uvicorn[standard]):
    the HTTP and WebSocket paths spend much of their time in the event loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main_coroutine)
    return uvloop.run(main_coroutine)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname.lower(),
                 "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup_logging(settings: Settings) -> None:
    formatter: logging.Formatter
    if settings.log_format == "json":
        formatter = JsonFormatter()
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    log_dir = settings.data_path / "log"
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.handlers.RotatingFileHandler(log_dir / "traitor.log", maxBytes=10 * 1024 * 1024,
                                                             backupCount=5))
    except OSError as exc:
        print(f"traitor: warning: no log file in {log_dir}: {exc}", file=sys.stderr)
    root = logging.getLogger()
    root.handlers.clear()
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)


@dataclass
class HostServices:
    """What host modules may use (``CallContext.services``)."""

    store: Any
    http: Any


def build_engine(settings: Settings) -> tuple[Any, Any]:
    """Assemble store, runtime, coordinator and engine from the flags (nothing started yet)."""
    from traitor.api.metrics import MetricsMiddleware
    from traitor.runtime.modules.http import HttpSettings
    from traitor.runtime.modules.netpolicy import AddressPolicy
    from traitor.runtime.modules.registry import all_modules
    from traitor.runtime.pool import WorkerPool
    from traitor.scheduler.engine import Engine, EngineConfig
    from traitor.store import open_store

    data_dir = settings.data_path
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "plugin").mkdir(exist_ok=True)
    node_id = settings.node_id or f"{socket.gethostname()}:{settings.port}"
    store = open_store(settings.store_url(), namespace=settings.cluster, data_dir=data_dir,
                       synchronous=settings.sync)
    allow = [item.strip() for item in settings.http_allow.split(",") if item.strip()]
    http = HttpSettings(policy=AddressPolicy(allow))
    modules, errors = all_modules(http, data_dir / "plugin")
    for error in errors:
        log.warning("plugin skipped: %s", error)
    runner = WorkerPool(workers=settings.workers, modules=modules, services=HostServices(store=store, http=http))
    coordinator = None
    if settings.mode == "multi":
        from traitor.cluster.redis import RedisCoordinator

        coordinator = RedisCoordinator(settings.redis, cluster=settings.cluster, node_id=node_id)
    metrics = MetricsMiddleware()
    middleware: list[Any] = [metrics]
    if settings.webhook:
        from traitor.scheduler.webhooks import WebhookMiddleware

        middleware.append(WebhookMiddleware(settings.webhook, node=node_id))
    engine = Engine(
        store,
        runner,
        coordinator,
        EngineConfig(node_id=node_id, timezone=settings.timezone, limits=settings.limits()),
        middleware=middleware,
    )
    return engine, http


def startup_line(settings: Settings) -> str:
    """What an operator checks first in a log: version, mode, store (no password), workers."""
    from traitor import __version__
    from traitor.domain.urls import safe_url

    where = f"cluster {settings.cluster!r} on {safe_url(settings.redis)}" if settings.mode == "multi" else "standalone"
    return (f"traitor {__version__} starting: {where}, store {safe_url(settings.store_url())}, "
            f"{settings.workers} script worker(s), data dir {settings.data_path}")


async def serve(settings: Settings) -> int:
    import uvicorn

    from traitor.api.app import ApiSettings, create_app

    log.info("%s", startup_line(settings))
    engine, http = build_engine(settings)
    authenticate = None
    if settings.token:
        from traitor.cli.tokens import TokenChecker

        authenticate = TokenChecker(settings.token, settings.data_path).check
    api = ApiSettings(
        max_body_bytes=settings.max_body,
        allowed_origins=[o.strip() for o in settings.allow_origin.split(",") if o.strip()],
        mode=settings.mode,
        authenticate=authenticate,
    )
    try:
        await engine.start()
    except Exception as exc:  # any start-up failure is reported as one line
        fail(f"cannot start: {exc.__class__.__name__}: {exc}")
    app = create_app(engine, api, manage_engine=False)
    config = uvicorn.Config(app, host=settings.ip, port=settings.port, log_config=None, lifespan="on",
                            timeout_graceful_shutdown=int(settings.grace) + 1, ws_ping_interval=20)
    server = uvicorn.Server(config)
    # uvicorn re-raises the SIGTERM it caught once it has shut down, which would end the
    # process before the engine below is closed (runs flushed, cluster left): handle the
    # signals here instead, the way uvicorn does (a second Ctrl-C forces the exit).
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.handle_exit, sig, None)
    try:
        await server.serve()
    except (OSError, SystemExit) as exc:
        fail(f"could not serve on {settings.ip}:{settings.port}: {exc}")
    finally:
        await engine.close(settings.grace)
        close = getattr(http, "close", None)
        if close is not None:
            await close()
    if not server.started:
        return 1
    return 0
