"""Live status over real HTTP: ``GET /v1/jobs/{id}/events`` (Server-Sent Events, with
``Last-Event-ID`` resume) and ``Prefer: wait=N`` on the submit routes, on jobs that really run.

One stack for the module (``embedded.stack.Stack``): the session's Triton, a private S3 server
and one listing worker process, on a private namespace; the API on uvicorn in a thread, with
keys on a fresh PostgreSQL database. No try-on worker runs, so a try-on stays queued: that is
the job that cannot finish in time, and the one canceled while a client listens.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.keys.model import Scope
from api.keys.store import KeyStore
from api.routes.submit import preferred_wait
from api.settings import ApiSettings
from core.contracts.jobs import JobEvent
from embedded.stack import Pool, Stack
from embedded.triton import TritonServer
from producer.client import Producer
from tests.examples import LISTING_EXAMPLE, TRYON_EXAMPLE
from tests.integration.services import require_services, serving
from worker.storage import ImageStore

pytestmark = [pytest.mark.triton, pytest.mark.slow]

PEPPER = "events-test-pepper"
#: a small, quick listing job as the API takes it (no requester, no callback)
LISTING = {
    **{k: v for k, v in LISTING_EXAMPLE.items() if k not in ("requester", "idempotency_key", "callback")},
    "variants": 1,
    "output": {"format": "png", "size": 64},
}
TRYON = {k: v for k, v in TRYON_EXAMPLE.items() if k != "requester"}
#: how long a job may take on a busy machine
JOB_TIMEOUT_S = 60.0
ALL_SCOPES = [Scope.SUBMIT_LISTINGS, Scope.SUBMIT_TRYONS, Scope.READ, Scope.CANCEL]
#: keep-alive comments this often (short, so a test sees one)
KEEPALIVE_S = 0.5


@dataclass
class Live:
    url: str
    #: shop-a with every job scope; shop-b likewise; shop-a without read
    a: str
    b: str
    a_submit_only: str
    #: the stack's bucket, to see what a job left behind
    images: ImageStore

    def client(self, token: str | None, timeout: float = JOB_TIMEOUT_S) -> httpx.Client:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)


@dataclass
class Frame:
    """One SSE event as a client parses it (WHATWG HTML, "Server-sent events")."""

    event: str | None = None
    id: str | None = None
    data: list[str] = field(default_factory=list)

    def job_event(self) -> JobEvent:
        return JobEvent.model_validate_json("\n".join(self.data))


@dataclass
class Stream:
    frames: list[Frame] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    ended: bool = False


def read_stream(response: httpx.Response, *, stop_after: int | None = None) -> Stream:
    """Parse an SSE body until the server ends it, or ``stop_after`` events arrived."""
    stream, current = Stream(), Frame()
    for line in response.iter_lines():
        if line.startswith(":"):
            stream.comments.append(line)
        elif line == "":
            if current.data:
                stream.frames.append(current)
                if stop_after is not None and len(stream.frames) >= stop_after:
                    return stream
            current = Frame()
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                current.data.append(value)
            elif name in ("event", "id"):
                setattr(current, name, value)
    stream.ended = True
    return stream


@pytest.fixture(scope="module")
def live(
    triton: TritonServer, keys_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    require_services()
    workdir: Path = tmp_path_factory.mktemp("events")
    with Stack(
        tag="events",
        workdir=workdir,
        triton_grpc_url=triton.grpc_url,
        receiver=False,
        workers=[Pool("listing")],
    ) as stack:
        shared = {k: v for k, v in stack.settings.model_dump().items() if k in ApiSettings.model_fields}
        settings = ApiSettings.model_validate({**shared, "api_events_keepalive_s": KEEPALIVE_S})
        keys = KeyStore(keys_database, pepper=PEPPER)
        producer = Producer(settings)
        try:
            with serving(create_app(producer=producer, keys=keys, settings=settings)) as url:
                yield Live(
                    url=url,
                    a=keys.create(
                        "shop-a",
                        scopes=[Scope.SUBMIT_LISTINGS, Scope.SUBMIT_TRYONS, Scope.READ, Scope.CANCEL],
                    )[1],
                    b=keys.create("shop-b", scopes=[Scope.SUBMIT_LISTINGS, Scope.READ])[1],
                    a_submit_only=keys.create("shop-a", scopes=[Scope.SUBMIT_LISTINGS])[1],
                    images=ImageStore(stack.settings),
                )
        finally:
            producer.close()
            keys.close()


def submit_listing(client: httpx.Client, **headers: str) -> httpx.Response:
    return client.post("/v1/listings", json=LISTING, headers=headers)


def events(client: httpx.Client, job_id: str, *, stop_after: int | None = None, **headers: str) -> Stream:
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return read_stream(response, stop_after=stop_after)


# --- Server-Sent Events ---


def test_a_listener_sees_queued_running_succeeded_in_order_and_the_stream_ends(live: Live) -> None:
    with live.client(live.a) as client:
        job_id = submit_listing(client).json()["id"]
        stream = events(client, job_id)
    assert stream.ended
    assert [f.event for f in stream.frames] == ["job.queued", "job.started", "job.succeeded"]
    ids = [int(f.id) for f in stream.frames if f.id is not None]
    assert len(ids) == 3 and ids == sorted(set(ids))
    parsed = [f.job_event() for f in stream.frames]
    assert [e.type.value for e in parsed] == [f.event for f in stream.frames]
    assert [e.data["state"] for e in parsed] == ["queued", "running", "succeeded"]
    assert all(e.data["job_id"] == job_id and e.data["requester"] == "shop-a" for e in parsed)
    # the output link is signed on this read, and it works
    (image,) = parsed[-1].data["results"]
    assert datetime.fromisoformat(image["url_expires_at"]) > datetime.now(UTC)
    fetched = httpx.get(image["url"], timeout=10)
    assert fetched.status_code == 200 and fetched.content.startswith(b"\x89PNG")


def test_a_client_that_reconnects_with_last_event_id_gets_the_rest_and_none_twice(live: Live) -> None:
    with live.client(live.a) as client:
        job_id = submit_listing(client).json()["id"]
        first = events(client, job_id, stop_after=1)  # then the client disconnects
        assert [f.event for f in first.frames] == ["job.queued"] and not first.ended
        rest = events(client, job_id, **{"Last-Event-ID": str(first.frames[0].id)})
        assert rest.ended
        # resuming after the end: nothing more, and the stream ends at once
        started = time.monotonic()
        after_end = events(client, job_id, **{"Last-Event-ID": str(rest.frames[-1].id)})
        assert after_end.ended and after_end.frames == []
        assert time.monotonic() - started < 2
    assert [f.event for f in rest.frames] == ["job.started", "job.succeeded"]
    ids = [f.id for f in first.frames + rest.frames]
    assert len(set(ids)) == 3


def test_a_listener_of_a_queued_job_gets_keepalive_comments_and_sees_it_canceled(live: Live) -> None:
    with live.client(live.a) as client, live.client(live.a) as canceler:
        job_id = client.post("/v1/tryons", json=TRYON).json()["id"]  # no try-on worker: stays queued

        def cancel_soon() -> None:
            time.sleep(3 * KEEPALIVE_S)
            assert canceler.post(f"/v1/jobs/{job_id}/cancel").status_code == 200

        thread = threading.Thread(target=cancel_soon)
        thread.start()
        stream = events(client, job_id)
        thread.join()
    assert stream.ended and [f.event for f in stream.frames] == ["job.queued", "job.canceled"]
    assert stream.comments, "no keep-alive comment while the job waited"


def test_a_running_job_canceled_over_http_stops_at_its_next_step_and_keeps_no_object(live: Live) -> None:
    """Eight 1024-px images take the worker a second or more to encode and store: the cancel,
    sent as soon as the stream says the job started, lands while it runs (202), and the worker
    ends it canceled before it records success, with none of its objects left."""
    slow = {**LISTING, "variants": 8, "output": {"format": "png", "size": 1024}}
    with live.client(live.a) as client:
        job_id = client.post("/v1/listings", json=slow).json()["id"]
        started = events(client, job_id, stop_after=2)
        assert [f.event for f in started.frames] == ["job.queued", "job.started"]
        canceled = client.post(f"/v1/jobs/{job_id}/cancel")
        assert canceled.status_code == 202, canceled.text
        assert canceled.json()["state"] == "running"
        rest = events(client, job_id, **{"Last-Event-ID": str(started.frames[-1].id)})
        assert [f.event for f in rest.frames] == ["job.canceled"]
        job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["state"] == "canceled" and job["outputs"] == []
    assert live.images.list_keys(f"listing/{job_id}/") == []
    with live.client(live.a) as client:
        refused = client.post(f"/v1/jobs/{job_id}/cancel")
    assert refused.status_code == 200 and refused.json()["state"] == "canceled"  # idempotent


def test_events_of_another_requesters_job_are_404_and_need_the_read_scope(live: Live) -> None:
    with live.client(live.a) as a:
        job_id = submit_listing(a).json()["id"]
    for token, status in ((live.b, 404), (live.a_submit_only, 403), (None, 401)):
        with live.client(token) as client:
            response = client.get(f"/v1/jobs/{job_id}/events")
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
    with live.client(live.a) as a:
        bad = a.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "not-a-number"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["header", "Last-Event-ID"]


# --- Prefer: wait ---


def test_prefer_wait_answers_200_with_the_finished_job_and_its_outputs(live: Live) -> None:
    with live.client(live.a) as client:
        response = submit_listing(client, Prefer="wait=30")
    assert response.status_code == 200, response.text
    assert response.headers["preference-applied"] == "wait=30"
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["state"] == "succeeded" and len(job["outputs"]) == 1
    assert job["outputs"][0]["url"].startswith("http")


def test_prefer_wait_on_a_job_that_cannot_finish_in_time_answers_202_when_the_wait_is_up(
    live: Live,
) -> None:
    with live.client(live.a) as client:
        started = time.monotonic()
        response = client.post("/v1/tryons", json=TRYON, headers={"Prefer": "respond-async, wait=1"})
        took = time.monotonic() - started
    assert response.status_code == 202, response.text
    assert response.headers["preference-applied"] == "wait=1"
    assert response.json()["state"] == "queued"
    assert 0.9 <= took < 2.5, took


def test_the_wait_preference_is_read_as_rfc_7240_writes_it_and_anything_else_is_ignored() -> None:
    assert preferred_wait(None) is None
    assert preferred_wait("respond-async") is None
    assert preferred_wait('respond-async, WAIT="12"; x=1') == 12
    assert preferred_wait("wait=soon") is None and preferred_wait("wait=-3") is None
    assert preferred_wait("wait=\u00b2") is None  # a digit to Python, not to HTTP
