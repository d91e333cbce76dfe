"""Liveness, readiness and Prometheus metrics (unauthenticated, cheap)."""

from __future__ import annotations

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gasworks import __version__
from gasworks.api.deps import RuntimeDep
from gasworks.api.drain import Drain, shutting_down
from gasworks.api.errors import envelope
from gasworks.api.routing import router as guarded_router
from gasworks.documents.domain import SERVICE as DOCUMENTS
from gasworks.documents.domain import Documents
from gasworks.observability.metrics import REGISTRY

router = guarded_router(tags=["operations"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@router.get(
    "/readyz",
    summary="The database is reachable and the process is not shutting down",
    response_model=None,
)
async def readyz(request: Request, runtime: RuntimeDep) -> dict[str, str] | JSONResponse:
    drain = getattr(request.app.state, "drain", None)
    if isinstance(drain, Drain) and drain.draining:  # fails first on shutdown (api/drain.py)
        exc = shutting_down()
        return JSONResponse(
            envelope(exc.code, exc.message, exc.details),
            status_code=exc.status,
            headers={"Retry-After": "1"},
        )
    if await runtime.db.ping():
        return {"status": "ready", "database": runtime.db.dialect.name}
    return JSONResponse(
        envelope(
            "DATABASE_UNAVAILABLE",
            "The database is unreachable.",
            {"database": runtime.db.dialect.name},
        ),
        status_code=503,
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}}},
)
async def metrics(runtime: RuntimeDep) -> Response:
    docs = runtime.services.get(DOCUMENTS)
    if isinstance(docs, Documents):  # the queue gauges are sampled at scrape time (throttled)
        await docs.refresh_metrics()
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
