"""The submit shortcut (``api.routes.shortcut``, ``api.routes.submit.plain_submit``): a plain submit
is answered by the dependency and the endpoint called directly; every other request is declined
before the dependency counts anything, so FastAPI answers it as declared; a route's OpenAPI
operation is the same with or without a shortcut."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.testclient import TestClient

from api.keys.model import ApiKey
from api.routes.resources import Job, ListingSubmission
from api.routes.shortcut import ShortcutRoute, with_shortcut
from api.routes.submit import plain_submit
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

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def run() -> Response | None:
        return await shortcut(Request(scope, receive))

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


def _app(*, shortcut: bool) -> FastAPI:
    router = APIRouter(prefix="/v1", route_class=ShortcutRoute)

    async def plain_only(request: Request) -> Response | None:
        if request.headers.get("x-plain") != "yes":
            return None
        return Response(b'{"via":"shortcut"}', 201, media_type="application/json")

    def endpoint(name: str) -> dict[str, str]:
        """Echo."""
        return {"via": "fastapi", "name": name}

    if shortcut:
        endpoint = with_shortcut(lambda _: plain_only)(endpoint)
    router.post("/echo", status_code=201, summary="echo")(endpoint)
    app = FastAPI()
    app.include_router(router)
    return app


def test_a_route_takes_its_shortcut_and_falls_back_to_fastapi_with_the_same_openapi_operation() -> None:
    with TestClient(_app(shortcut=True)) as client:
        assert client.post("/v1/echo?name=a", headers={"x-plain": "yes"}).json() == {"via": "shortcut"}
        declined = client.post("/v1/echo?name=a")
        assert declined.status_code == 201 and declined.json() == {"via": "fastapi", "name": "a"}
        assert client.post("/v1/echo").status_code == 422  # FastAPI's validation, as declared
    assert _app(shortcut=True).openapi() == _app(shortcut=False).openapi()
