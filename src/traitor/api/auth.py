"""Bearer-token access control for HTTP and WebSocket routes."""

from __future__ import annotations

from typing import Awaitable, Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from fastapi.responses import JSONResponse

#: Paths anyone may reach: probes and the console's static files (the console asks for a token).
PUBLIC_PREFIXES = ("/healthz", "/readyz", "/static/", "/favicon")
PUBLIC_EXACT = {"/", "/index.html"}


class TokenMiddleware:
    def __init__(self, app: ASGIApp, authenticate: Callable[[str], Awaitable[bool]]) -> None:
        self.app = app
        self.authenticate = authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path in PUBLIC_EXACT or path.startswith(PUBLIC_PREFIXES):
            await self.app(scope, receive, send)
            return
        token = _bearer(scope)
        if token and await self.authenticate(token):
            await self.app(scope, receive, send)
            return
        message = "missing bearer token" if not token else "invalid or revoked token"
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4401, "reason": message})
            return
        response = JSONResponse({"error": message}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    # Browsers cannot set headers on a WebSocket: the console passes ?token= instead.
    if scope["type"] == "websocket":
        from urllib.parse import parse_qs

        values = parse_qs(scope.get("query_string", b"").decode()).get("token")
        if values:
            return values[0]
    return None
