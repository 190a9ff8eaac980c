"""The FastAPI application: routes, error shapes, limits and lifecycle.

Every error leaves as ``{"error": "<message>"}`` with 400 / 401 / 404 / 409 /
413, and 500 only for server faults (without a stack trace).
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from traitor.domain.errors import ConflictError, NotFoundError, TraitorError, ValidationError
from traitor.scheduler.engine import Engine
from traitor.scheduler.jobs import JobService

log = logging.getLogger("traitor.api")


@dataclass
class ApiSettings:
    #: Largest request body accepted, bytes (413 above).
    max_body_bytes: int = 1024 * 1024
    #: Extra origins allowed to open WebSockets and make CORS requests.
    allowed_origins: list[str] = field(default_factory=list)
    mode: str = "std"
    #: Checks a bearer token; ``None`` means the API is open (loopback only).
    authenticate: Callable[[str], Awaitable[bool]] | None = None
    #: Serve ordinary compatibility creates on the fast lane (``compat.CreateFastLane``);
    #: ``False`` sends every request through FastAPI's routing (tests compare the two).
    fast_creates: bool = True


@dataclass
class AppContext:
    engine: Engine
    jobs: JobService
    settings: ApiSettings


def context(request: Any) -> AppContext:
    return request.app.state.ctx


def create_app(engine: Engine, settings: ApiSettings | None = None, *, manage_engine: bool = True) -> FastAPI:
    """Build the app; with ``manage_engine`` its lifespan starts and closes the engine."""
    from traitor.api import compat, debug, health, libraries, v1
    from traitor.ui import mount_ui

    settings = settings or ApiSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage_engine:
            await engine.start()
        try:
            yield
        finally:
            if manage_engine:
                await engine.close(app.state.shutdown_grace)

    app = FastAPI(
        title="Traitor",
        version="1",
        summary="A distributed timing-task service whose jobs are JavaScript programs.",
        description="Compatibility routes of the original service under `/api`, the versioned API under `/api/v1`.",
        lifespan=lifespan,
    )
    app.state.ctx = AppContext(engine=engine, jobs=JobService(engine), settings=settings)
    app.state.shutdown_grace = 10.0
    _install_error_handlers(app)
    app.include_router(compat.router)
    app.include_router(v1.router)
    app.include_router(libraries.router)
    app.include_router(debug.router)
    app.include_router(health.router)
    mount_ui(app)
    # Middleware added first runs innermost: the fast lane sees requests only after the
    # token check, the body limit and the JSON-by-default label, as the routes do.
    if settings.fast_creates:
        app.add_middleware(compat.CreateFastLane, jobs=app.state.ctx.jobs)
    app.add_middleware(JsonByDefaultMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.authenticate is not None:
        from traitor.api.auth import TokenMiddleware

        app.add_middleware(TokenMiddleware, authenticate=settings.authenticate)
    return app


#: The HTTP status each domain error answers with (body ``{"error": str(exc)}``).
ERROR_STATUS: dict[type[TraitorError], int] = {ValidationError: 400, NotFoundError: 404, ConflictError: 409}


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def error_status(exc: BaseException) -> int | None:
    """The status :data:`ERROR_STATUS` gives ``exc`` (by its nearest class, as handlers are
    looked up), or ``None`` for an unexpected exception (a 500)."""
    for cls in type(exc).__mro__:
        status = ERROR_STATUS.get(cls)  # type: ignore[call-overload]
        if status is not None:
            return status
    return None


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return f"malformed JSON body: {err.get('ctx', {}).get('error', 'cannot parse')}"
        location = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        where = ".".join(location)
        if err.get("type") == "model_attributes_type" or (not location and "body" in err.get("loc", ())):
            if err.get("type") == "missing":
                parts.append("a JSON body is required")
            else:
                parts.append("the request body must be a JSON object")
            continue
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
    return "; ".join(parts) or "invalid request"


def _install_error_handlers(app: FastAPI) -> None:
    async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
        return error(error_status(exc) or 500, str(exc))

    for cls in ERROR_STATUS:
        app.add_exception_handler(cls, _domain_error)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(400, _describe_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _fault(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error(500, "internal server error (see the server log)")


class BodyLimitMiddleware:
    """Answer 413 to bodies over the limit, declared or streamed, before any route reads them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes or declared < 0:
                    await self._reject(send, declared)
                    return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._reject(send, seen)

    async def _reject(self, send: Send, size: int) -> None:
        body = JSONResponse(
            {"error": f"request body too large: the limit is {self.max_bytes} bytes (--max-body)"},
            status_code=413 if size >= 0 else 400,
        )
        await body({"type": "http"}, _empty_receive, send)


class JsonByDefaultMiddleware:
    """Read API bodies as JSON when the client did not say otherwise.

    ``curl -d '{...}'`` (the original README's way) labels JSON as a form;
    the original accepted it, so API routes do too. ``/api/script`` keeps
    the label, since it also takes the script as plain text.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/") and scope["path"] != "/api/script":
            declared = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
            # Copy the scope only to relabel it: most requests already say what they send.
            if not declared or declared.startswith(b"application/x-www-form-urlencoded"):
                headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
                scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        await self.app(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


async def _empty_receive() -> Message:
    return {"type": "http.disconnect"}
