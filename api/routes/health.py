"""``/healthz`` (the process answers) and ``/readyz`` (Redis and the broker answer too), for
the orchestrator's probes; and ``/metrics`` for Prometheus. None of them needs a key."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.readiness import Readiness

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}


@router.get("/healthz", response_model=Health)
def live() -> Health:
    """The process is up and serving."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health, "description": "a dependency is not reachable"}},
)
async def ready(request: Request) -> Any:
    """Redis and the broker answer: the API can take jobs."""
    readiness: Readiness = request.app.state.readiness
    checks = await run_in_threadpool(readiness.check)
    ok = all(outcome == "ok" for outcome in checks.values())
    body = Health(status="ok" if ok else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
