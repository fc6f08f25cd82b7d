"""The submit shortcut (``api.routes.shortcut``, ``api.routes.submit.plain_submit``): a plain submit
is answered in front of the app by the dependency and the endpoint called directly; every other
request is declined before the dependency counts anything, so FastAPI answers it as declared (its
body replayed); the front adds what the layers it skips would have (``Vary``, metrics, the
exception handlers' answers); a route's OpenAPI operation is the same with or without a shortcut."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from api.cors import KeyCors, NoOrigins, RegisteredOrigins
from api.keys.model import ApiKey
from api.metrics import ApiMetrics, MetricsMiddleware
from api.problems import ProblemError, problem_response
from api.routes.resources import Job, ListingSubmission
from api.routes.shortcut import FrontedApp, with_shortcut
from api.routes.submit import plain_submit
from api.threads import REQUESTS
from core.contracts.jobs import JobKind, JobState
from tests.examples import LISTING_EXAMPLE

TOKEN = "atl_0123456789abcdef_" + "a" * 43
LISTING = {k: v for k, v in LISTING_EXAMPLE.items() if k not in ("requester", "idempotency_key")}
PLAIN = {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"}


class Calls:
    """A stand-in for the route's dependency and endpoint that records what they were given."""

    def __init__(self) -> None:
        self.checked: list[str] = []
        self.given: dict[str, Any] = {}

    async def check(self, request: Request, response: Response, credentials: Any) -> ApiKey:
        self.checked.append(credentials.credentials)
        response.headers["RateLimit-Remaining"] = "9"
        return ApiKey(key_id="0123456789abcdef", requester="shop-a", scopes=frozenset())

    async def endpoint(self, **given: Any) -> Job:
        self.given = given
        given["response"].status_code = 202
        given["response"].headers["Location"] = "/v1/jobs/" + "f" * 32
        return Job(
            id="f" * 32,
            kind=JobKind.LISTING,
            state=JobState.QUEUED,
            requester="shop-a",
            subject=given["body"].listing_id,
            created_at=datetime(2026, 1, 2, tzinfo=UTC),
        )


def answer(calls: Calls, headers: dict[str, str], body: bytes) -> Response | None:
    shortcut = plain_submit(ListingSubmission, calls.check)(calls.endpoint)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/listings",
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        "query_string": b"",
    }

    async def run() -> Response | None:
        return await shortcut(Request(scope), body)

    return asyncio.run(run())


def test_a_plain_submit_calls_the_dependency_then_the_endpoint_and_answers_the_job_once() -> None:
    calls = Calls()
    headers = {**PLAIN, "idempotency-key": "order-7", "prefer": "wait=2"}
    answered = answer(calls, headers, json.dumps(LISTING).encode())
    assert answered is not None and answered.status_code == 202
    assert calls.checked == [TOKEN]
    given = calls.given
    assert given["body"] == ListingSubmission.model_validate(LISTING)
    assert given["idempotency_key"] == "order-7" and given["prefer"] == "wait=2"
    assert given["key"].requester == "shop-a"
    assert answered.headers["content-type"] == "application/json"
    assert answered.headers["location"] == "/v1/jobs/" + "f" * 32
    assert answered.headers["ratelimit-remaining"] == "9"  # the dependency's headers are kept
    job = json.loads(bytes(answered.body))
    assert job["id"] == "f" * 32 and job["subject"] == LISTING["listing_id"] and job["outputs"] == []


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({**PLAIN, "content-type": "application/json; charset=utf-8"}, json.dumps(LISTING)),
        ({**PLAIN, "content-type": "text/plain"}, json.dumps(LISTING)),
        ({k: v for k, v in PLAIN.items() if k != "authorization"}, json.dumps(LISTING)),
        ({**PLAIN, "authorization": "Basic dXNlcjpwYXNz"}, json.dumps(LISTING)),
        ({**PLAIN, "idempotency-key": "-starts-with-a-dash"}, json.dumps(LISTING)),
        ({**PLAIN, "idempotency-key": "k" * 500}, json.dumps(LISTING)),
        ({**PLAIN, "prefer": "wait=1, " + "x" * 1100}, json.dumps(LISTING)),
        (PLAIN, "{not json"),
        (PLAIN, "[1, 2]"),
        (PLAIN, ""),
        (PLAIN, json.dumps({**LISTING, "variants": 0})),
        (PLAIN, json.dumps({**LISTING, "unknown_field": 1})),
    ],
)
def test_anything_but_a_plain_submit_is_declined_before_the_dependency_runs(
    headers: dict[str, str], body: str
) -> None:
    calls = Calls()
    assert answer(calls, headers, body.encode()) is None
    assert calls.checked == [] and calls.given == {}


#: what the test app's shortcut answers, and what its endpoint raises
FAILURES: dict[str, Exception] = {
    "problem": ProblemError(429, "Too Many Requests", "slow down", headers={"Retry-After": "3"}),
    "unexpected": RuntimeError("a bug"),
}


def _app(*, shortcut: bool, max_bytes: int = 1024) -> FastAPI:
    """A fronted app with ``POST /v1/echo``: its shortcut answers requests with ``x-plain: yes``
    (``x-fail`` makes it raise), FastAPI the others."""
    router = APIRouter(prefix="/v1")
    seen: list[bytes] = []

    async def plain_only(request: Request, body: bytes) -> Response | None:
        if request.headers.get("x-plain") != "yes":
            return None
        seen.append(body)
        failure = request.headers.get("x-fail")
        if failure is not None:
            raise FAILURES[failure]
        answered = Response(b'{"via":"shortcut"}', 201, media_type="application/json")
        answered.headers["Location"] = "/v1/echo/1"
        return answered

    async def endpoint(request: Request, name: str) -> dict[str, str]:
        """Echo."""
        return {"via": "fastapi", "name": name, "body": (await request.body()).decode()}

    if shortcut:
        endpoint = with_shortcut(lambda _: plain_only)(endpoint)
    router.post("/echo", status_code=201, summary="echo")(endpoint)
    app = FrontedApp()
    app.state.metrics = ApiMetrics(CollectorRegistry())
    app.state.seen = seen
    app.include_router(router)
    app.add_exception_handler(ProblemError, _problem)
    app.add_middleware(KeyCors, origins=RegisteredOrigins(NoOrigins()))
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.front_shortcuts(max_bytes=max_bytes)
    return app


async def _problem(request: Request, error: Exception) -> Response:
    assert isinstance(error, ProblemError)
    return problem_response(error.problem, instance=request.url.path, headers=error.headers)


def _count(app: FastAPI, status: str) -> float:
    found = app.state.metrics.registry.get_sample_value(
        "atelier_api_requests_total", {"method": "POST", "route": "/v1/echo", "status": status}
    )
    return found or 0.0


def test_a_route_takes_its_shortcut_and_falls_back_to_fastapi_with_the_same_openapi_operation() -> None:
    app = _app(shortcut=True)
    with TestClient(app) as client:
        plain = client.post("/v1/echo?name=a", content=b"{}", headers={"x-plain": "yes"})
        assert plain.json() == {"via": "shortcut"} and plain.status_code == 201
        assert [(k, v) for k, v in plain.headers.items() if k != "date"] == [
            ("content-length", "18"),
            ("content-type", "application/json"),
            ("location", "/v1/echo/1"),
            ("vary", "Origin"),  # as the CORS layer it skipped adds on every /v1 answer
        ]
        declined = client.post("/v1/echo?name=a", content=b"the body")
        assert declined.status_code == 201  # FastAPI's, with the body the front read, replayed
        assert declined.json() == {"via": "fastapi", "name": "a", "body": "the body"}
        assert declined.headers["vary"] == "Origin"
        assert client.post("/v1/echo").status_code == 422  # FastAPI's validation, as declared
    assert app.state.seen == [b"{}"]
    assert _count(app, "201") == 2 and _count(app, "422") == 1  # counted once each, front or not
    assert _app(shortcut=True).openapi() == _app(shortcut=False).openapi()


def test_the_front_leaves_to_the_app_bodies_it_does_not_take_whole() -> None:
    app = _app(shortcut=True, max_bytes=8)
    with TestClient(app) as client:
        too_large = client.post("/v1/echo?name=a", content=b"123456789", headers={"x-plain": "yes"})
        assert too_large.json()["via"] == "fastapi"  # the app's size limit would answer it

        def chunks() -> Iterator[bytes]:
            yield b"{}"

        chunked = client.post("/v1/echo?name=a", content=chunks(), headers={"x-plain": "yes"})
        assert chunked.json()["via"] == "fastapi"  # no Content-Length
    assert app.state.seen == []


def test_what_a_shortcut_raises_is_answered_by_the_apps_handlers() -> None:
    app = _app(shortcut=True)
    with TestClient(app, raise_server_exceptions=False) as client:
        headers = {"x-plain": "yes", "x-fail": "problem"}
        refused = client.post("/v1/echo?name=a", content=b"{}", headers=headers)
        assert refused.status_code == 429 and refused.headers["retry-after"] == "3"
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["vary"] == "Origin" and refused.json()["instance"] == "/v1/echo"
        failed = client.post(
            "/v1/echo?name=a", content=b"{}", headers={"x-plain": "yes", "x-fail": "unexpected"}
        )
        assert failed.status_code == 500 and "vary" not in failed.headers  # as Starlette's error layer
    assert _count(app, "429") == 1 and _count(app, "500") == 1
    assert REQUESTS.count == 0
