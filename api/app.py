"""The HTTP API as an ASGI app: :func:`create_app` builds it around the services it is given.

Why FastAPI: the OpenAPI 3.1 document is generated from the same pydantic v2 models as the
request contracts in ``core.contracts`` (the submission bodies *are* those models, less
``requester``), so the published schema is the contract and cannot drift from it; uvicorn
serves it (``atelier api serve``). Routes that call Redis or the broker are plain functions,
which FastAPI runs in its thread pool (the submit routes: in their own submit threads,
``api.threads``, or on the loop with ``api_async_submit``: ``producer.accept_async``, whose
connections the app's lifespan closes), so the blocking clients of the core stay as they are.

Everything the routes touch is injected, so tests build the app against real services:
``producer`` (a :class:`producer.client.Producer`: the same core as the Python client, never
around it), ``keys`` (a :class:`api.keys.model.KeyVerifier`), ``presigner`` (default
:class:`api.presign.S3Presigner` on the settings), ``readiness`` (default Redis and broker),
``limits`` (default :class:`api.limits.KeyLimits`: per-key rate and daily quota in Redis),
``listing_admission`` (default :class:`api.admission.ListingAdmission`: 503 for listings while
their queue is past its bound), ``eraser`` (default :class:`api.storage.S3ObjectEraser`),
``origins`` (default :class:`api.cors.RegisteredOrigins` over ``keys``, if it has ``all_origins``:
the CORS origins a preflight is answered for), ``pages`` (default :class:`api.pages.PageSettings`:
the pages for people, such as the try-on page at ``/try-on``, outside the OpenAPI document) and
``review`` (default :class:`api.review.desk.ReviewDesk` on the key store's database, when ``keys``
has one: ``/v1/review``, and each tenant's review policy written on its new listing jobs).

Every error is ``application/problem+json`` (``api.problems``); bodies over
``api_max_body_bytes`` get 413 before parsing, every ``/v1`` request counts against its key's
rate (``api.limits``) and, from a browser, must come from one of its key's CORS origins
(``api.cors``); requests are counted by route template and status (``api.metrics``, served on
``/metrics``). The OpenAPI document is ``api.openapi``'s: FastAPI's, with links and the event
schema added.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.admission import ListingAdmission
from api.cors import KeyCors, NoOrigins, OriginSource, RegisteredOrigins, origin_allowed
from api.keys.errors import KeyStoreUnavailable
from api.keys.model import KeyVerifier
from api.limits import BodySizeLimit, KeyLimits, rate_limited
from api.metrics import ApiMetrics, MetricsMiddleware
from api.openapi import document
from api.pages import PageSettings, install_pages
from api.presign import Presigner, S3Presigner
from api.problems import (
    Problem,
    ProblemError,
    field_errors,
    problem_response,
    problem_responses,
)
from api.readiness import Readiness
from api.review import routes as review_routes
from api.review.desk import ReviewDesk
from api.routes import batch, erase, events, health, jobs, models, submit
from api.routes.shortcut import FrontedApp
from api.settings import ApiSettings
from api.storage import ObjectEraser, S3ObjectEraser
from core.jobs import StoreError
from core.publish import PublishError
from core.topology import is_filesystem_broker
from producer.accept_async import AsyncProducer
from producer.client import Producer

log = logging.getLogger(__name__)

#: what the OpenAPI document says the API is
DESCRIPTION = """Atelier's HTTP front door: submit listing and try-on jobs, read and list your jobs,
cancel queued ones. Authenticate with `Authorization: Bearer <key>`; the requester of every job is
the key's. Errors are RFC 9457 `application/problem+json`."""


def _version() -> str:
    try:
        return version("atelier")
    except PackageNotFoundError:  # pragma: no cover - run from a checkout without install
        return "0.0.0"


def create_app(
    *,
    producer: Producer,
    keys: KeyVerifier,
    settings: ApiSettings | None = None,
    presigner: Presigner | None = None,
    readiness: Readiness | None = None,
    limits: KeyLimits | None = None,
    listing_admission: ListingAdmission | None = None,
    eraser: ObjectEraser | None = None,
    origins: RegisteredOrigins | None = None,
    pages: PageSettings | None = None,
    review: ReviewDesk | None = None,
) -> FastAPI:
    """The API app over these services (the caller owns them and closes them)."""
    settings = settings if settings is not None else ApiSettings()
    app = FrontedApp(
        lifespan=_closing_async_producer,
        title="Atelier API",
        version=_version(),
        description=DESCRIPTION,
        servers=[{"url": settings.api_public_url}] if settings.api_public_url else None,
    )
    app.state.settings = settings
    app.state.producer = producer
    # the submit routes' asyncio path (api.routes.submit): made on first use, closed on shutdown
    app.state.async_submit = settings.api_async_submit and not is_filesystem_broker(producer.settings)
    app.state.accepting = None
    app.state.keys = keys
    app.state.presigner = presigner if presigner is not None else S3Presigner(settings)
    app.state.readiness = readiness if readiness is not None else Readiness(settings)
    app.state.metrics = ApiMetrics(CollectorRegistry())
    app.state.limits = limits if limits is not None else KeyLimits(settings)
    app.state.listing_admission = (
        listing_admission if listing_admission is not None else ListingAdmission(settings)
    )
    app.state.eraser = eraser if eraser is not None else S3ObjectEraser(settings)
    engine = getattr(keys, "engine", None)
    if review is None and engine is not None and producer is not None:
        review = ReviewDesk(engine, producer)
    if review is not None:
        review.attach()
    app.state.review = review

    # every /v1 request comes from one of its key's origins, if from a browser (api.cors), and
    # counts against its key's rate (api.limits); health and metrics do neither. The submit
    # routes check both in their own single dependency (with the quota: one Redis round trip)
    limited: dict[str, Any] = {
        "dependencies": [Depends(origin_allowed), Depends(rate_limited)],
        "responses": problem_responses(403, 429),
    }
    app.include_router(submit.router, responses=limited["responses"])
    app.include_router(batch.router, **limited)
    app.include_router(jobs.router, **limited)
    app.include_router(events.router, **limited)
    app.include_router(erase.router, **limited)
    app.include_router(models.router, **limited)
    app.include_router(review_routes.router, **limited)
    app.include_router(health.router)
    install_pages(app, pages if pages is not None else PageSettings())
    _install_problem_handlers(app)
    # the last added is the outermost: metrics count the 413s the size limit answers
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.api_max_body_bytes,
        max_bytes_by_path={batch.BATCH_PATH: settings.api_max_batch_body_bytes},
    )
    if origins is None:
        origins = RegisteredOrigins(keys if isinstance(keys, OriginSource) else NoOrigins())
    app.add_middleware(KeyCors, origins=origins)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.openapi = lambda: document(app)  # type: ignore[method-assign]
    # the plain submits are answered in front of all the above (api.routes.shortcut)
    app.front_shortcuts(max_bytes=settings.api_max_body_bytes)
    return app


@asynccontextmanager
async def _closing_async_producer(app: FastAPI) -> AsyncIterator[None]:
    """Close the submit routes' asyncio connections (``api_async_submit``) and the admission's
    broker connection when the server stops."""
    yield
    await app.state.listing_admission.close()
    accepting: AsyncProducer | None = app.state.accepting
    if accepting is not None:
        app.state.accepting = None
        await accepting.close()


def _install_problem_handlers(app: FastAPI) -> None:
    """Every error as problem+json: ours, FastAPI's validation, Starlette's 404/405, the core's
    unavailable services (503) and anything unexpected (500, details in the log only)."""

    async def problem(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ProblemError)
        return problem_response(error.problem, instance=request.url.path, headers=error.headers)

    async def invalid(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        found = Problem(
            type="https://atelier.dev/problems/validation",
            title="Unprocessable Content",
            status=422,
            detail="the request breaks a rule",
            errors=field_errors(error.errors()),
        )
        return problem_response(found, instance=request.url.path)

    async def http_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        found = Problem(title=_reason(error.status_code), status=error.status_code, detail=str(error.detail))
        return problem_response(found, instance=request.url.path, headers=error.headers)

    async def unavailable(request: Request, error: Exception) -> JSONResponse:
        log.warning("a service behind the API is unavailable: %r", error)
        found = Problem(
            title="Service Unavailable", status=503, detail="a service behind the API is unavailable; retry"
        )
        return problem_response(found, instance=request.url.path, headers={"Retry-After": "1"})

    async def internal(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path, exc_info=error)
        found = Problem(
            title="Internal Server Error", status=500, detail="an error on our side; it was logged"
        )
        return problem_response(found, instance=request.url.path)

    app.add_exception_handler(ProblemError, problem)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(StoreError, unavailable)
    app.add_exception_handler(PublishError, unavailable)
    app.add_exception_handler(KeyStoreUnavailable, unavailable)
    app.add_exception_handler(Exception, internal)


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
