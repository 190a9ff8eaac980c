"""The web console: static files shipped in the package, served at ``/``.

Everything the console needs lives in ``static/`` (no CDN, works offline):
``index.html``, ``app.css`` (hand-written), ``favicon.svg`` and ``app.js``, the one
bundle built from ``ui-src/`` with ``cd ui-src && npm ci && npm run build``
(Node.js is needed to rebuild it, never to run Traitor).

Static answers carry ``Cache-Control: no-cache`` (browsers revalidate with the
ETag, so an upgrade is picked up at once) and text assets are sent gzip-compressed
to clients that accept it (the bundle shrinks from ≈ 690 KiB to ≈ 230 KiB).
"""

from __future__ import annotations

import gzip
import os
from functools import lru_cache
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, Response
from starlette.datastructures import Headers
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(__file__).parent / "static"

#: Suffixes worth compressing; images other than SVG are already compressed.
COMPRESSIBLE = {".js", ".css", ".html", ".svg", ".json", ".txt", ".map"}
#: Smaller files are sent as they are.
MIN_COMPRESS_BYTES = 1024


@lru_cache(maxsize=32)
def _gzipped(path: str, mtime_ns: int, size: int) -> bytes:
    """The gzip of a file; the cache key changes whenever the file does."""
    del mtime_ns, size  # part of the cache key only
    return gzip.compress(Path(path).read_bytes(), compresslevel=9, mtime=0)


def _accepts_gzip(scope: Scope) -> bool:
    accept = Headers(scope=scope).get("accept-encoding", "")
    for item in accept.split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "").lower() not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


class ConsoleStaticFiles(StaticFiles):
    """StaticFiles that revalidates every time and serves text assets gzip-compressed."""

    def file_response(
        self,
        full_path: os.PathLike[str] | str,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["cache-control"] = "no-cache"
        suffix = Path(full_path).suffix.lower()
        if suffix in COMPRESSIBLE:
            response.headers["vary"] = "Accept-Encoding"
        if (
            status_code != 200
            or not isinstance(response, FileResponse)
            or suffix not in COMPRESSIBLE
            or stat_result.st_size < MIN_COMPRESS_BYTES
            or not _accepts_gzip(scope)
        ):
            return response
        body = _gzipped(str(full_path), stat_result.st_mtime_ns, stat_result.st_size)
        headers = {k: v for k, v in response.headers.items() if k not in ("content-length", "etag")}
        # A different representation needs its own validator; Starlette strips "W/" when comparing.
        headers["etag"] = "W/" + response.headers["etag"]
        headers["content-encoding"] = "gzip"
        return Response(body, status_code=200, headers=headers, media_type=response.media_type)


def mount_ui(app: FastAPI) -> None:
    app.mount("/static", ConsoleStaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers={"cache-control": "no-cache"})

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")
