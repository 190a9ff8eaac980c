"""Liveness, readiness and metrics endpoints."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from traitor.api.app import context
from traitor.api.metrics import MetricsMiddleware

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/readyz", summary="The store (and Redis in cluster mode) answer")
async def readyz(request: Request) -> JSONResponse:
    engine = context(request).engine
    checks: dict[str, str] = {}
    for name, probe in (("store", engine.store.ping), ("cluster", engine.coordinator.ping)):
        try:
            await asyncio.wait_for(probe(), timeout=2.0)
            checks[name] = "ok"
        except Exception as exc:  # any failure means "not ready", whatever its type
            checks[name] = f"failing: {exc.__class__.__name__}: {exc}"
    ready = all(v == "ok" for v in checks.values()) and engine.started
    return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks},
                        status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    engine = context(request).engine
    collector = next((m for m in engine.middleware if isinstance(m, MetricsMiddleware)), None)
    if collector is None:
        return Response("", media_type=CONTENT_TYPE_LATEST)
    collector.refresh(engine)
    started = time.perf_counter()
    try:
        await asyncio.wait_for(engine.store.ping(), timeout=2.0)
        collector.store_latency.observe(time.perf_counter() - started)
    except Exception:
        pass
    return Response(generate_latest(collector.registry), media_type=CONTENT_TYPE_LATEST)
