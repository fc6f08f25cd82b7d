"""``GET /v1/jobs/{id}/events``: live status as Server-Sent Events, so a try-on page sees its
picture the moment it exists, without polling or a webhook receiver.

Each state change of the job is one SSE event: ``event:`` the event type (``job.queued``,
``job.started``, ``job.succeeded``, ``job.failed``, ``job.canceled``), ``data:`` the
:class:`~core.contracts.jobs.JobEvent` a callback would carry (output links signed afresh, as
on ``GET /v1/jobs/{id}``), ``id:`` the event's id, which increases along the job's life
(``core.jobs.events``). The stream ends after the terminal event. A client that reconnects with
``Last-Event-ID`` (browsers' ``EventSource`` does so by itself) gets every event after that id
and none twice, because the events are read from the job's stream in the store
(``core.jobs.follower``: ``XREAD BLOCK``, woken by the change; no thread is held while it waits
and nothing polls the record), not from the moment the client happened to be listening.

While nothing happens a comment line goes out every ``api_events_keepalive_s`` so proxies keep
the connection; a stream open ``api_events_max_s`` is ended and the client reconnects. Another
requester's job is 404, as everywhere (and a listing job to a publishable key,
``api.routes.jobs.readable_record``); the key needs the ``read`` scope. SSE framing, pings and
disconnects are ``sse-starlette``'s.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Header, Path, Request
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from api.auth import require
from api.keys.model import ApiKey, Scope
from api.presign import Presigner
from api.problems import problem_responses
from api.routes.deps import presigner, producer
from api.routes.jobs import readable_record
from api.settings import ApiSettings
from core.contracts.jobs import JobEvent, JobEventType, StoredImage
from core.jobs import JobEventFollower, StoredEvent
from core.jobs.follower import MAX_BLOCK_S
from producer.client import Producer

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

#: the media type of the stream (WHATWG HTML, "Server-sent events")
EVENT_STREAM = "text/event-stream"
#: a send that a client does not take within this long drops the connection (a stuck reader)
SEND_TIMEOUT_S = 30.0

JobId = Annotated[str, Path(max_length=64, description="the job id returned by a submit")]
LastEventId = Annotated[
    int | None,
    Header(
        alias="Last-Event-ID",
        ge=0,
        le=2**53,
        description="resume: only events with a greater id are sent (the id of the last event received)",
    ),
]


class JobEventFrame(BaseModel):
    """One event of the stream as an SSE parser hands it over (``event``, ``id``, ``data``).

    The stream's ``schema`` in the document, read per event as OpenAPI before 3.2 reads a
    ``text/event-stream`` schema (3.2 names it ``itemSchema``). ``data`` is the JSON text of a
    :class:`~core.contracts.jobs.JobEvent`: ``contentSchema`` points at that component, which
    ``api.openapi`` publishes with one ``data`` schema per event type.
    """

    event: JobEventType = Field(description="the event type; the same as data's `type`")
    id: str = Field(pattern=r"^[0-9]+$", description="the event id: increases along the job's life")
    data: str = Field(
        description="a JobEvent as one line of JSON",
        json_schema_extra={
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": "#/components/schemas/JobEvent"},
        },
    )


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the job's events, one per state change, until the terminal one. Each has "
        "`event:` the event type, `id:` the event id (increasing) and `data:` a JobEvent as JSON "
        "(`#/components/schemas/JobEvent`; its `data` has one schema per event type); comment "
        "lines keep the connection open.",
        "content": {EVENT_STREAM: {"schema": {"$ref": "#/components/schemas/JobEventFrame"}}},
    },
    **problem_responses(401, 403, 404, 422, 503),
}


def _settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    response_model=None,
    responses=_RESPONSES,
    summary="Follow a job's state changes (Server-Sent Events)",
)
async def job_events(
    job_id: JobId,
    last_event_id: LastEventId = None,
    key: ApiKey = Depends(require(Scope.READ)),  # noqa: B008
    submitter: Producer = Depends(producer),  # noqa: B008
    signer: Presigner = Depends(presigner),  # noqa: B008
    settings: ApiSettings = Depends(_settings),  # noqa: B008
) -> EventSourceResponse:
    """Every state change of the job as it happens, from after ``Last-Event-ID`` when given;
    the stream ends after the terminal event."""
    await run_in_threadpool(readable_record, submitter, key, job_id)
    frames = _frames(
        JobEventFollower(submitter.settings),
        job_id,
        after=last_event_id or 0,
        signer=signer,
        max_s=settings.api_events_max_s,
    )
    return EventSourceResponse(frames, ping=settings.api_events_keepalive_s, send_timeout=SEND_TIMEOUT_S)


async def _frames(
    follower: JobEventFollower, job_id: str, *, after: int, signer: Presigner, max_s: float
) -> AsyncIterator[ServerSentEvent]:
    """The SSE frames of the job's events after ``after``, until its terminal event (or the
    job is gone, or ``max_s`` passed). The first read does not wait, so a client resuming a
    finished job is answered at once."""
    deadline = time.monotonic() + max_s
    block: float | None = None
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            events = await follower.read(
                job_id, after=after, block_s=None if block is None else min(block, remaining)
            )
            for stored in events:
                yield frame(stored, signer)
                if stored.terminal:
                    return
                after = stored.id
            if not events:
                latest = await follower.latest(job_id)
                if latest is None or (latest.terminal and latest.id <= after):
                    return  # expired or erased, or the client has the end already
            block = MAX_BLOCK_S
    finally:
        with anyio.CancelScope(shield=True):  # a client that left cancels us: close anyway
            await follower.aclose()


def frame(stored: StoredEvent, signer: Presigner) -> ServerSentEvent:
    """One event as an SSE frame, its output links (if any) signed now."""
    event: JobEvent = stored.event
    if event.data.get("results"):
        signed = [
            signer.sign(StoredImage.model_validate(image)).model_dump(mode="json")
            for image in event.data["results"]
        ]
        event = event.model_copy(update={"data": {**event.data, "results": signed}})
    return ServerSentEvent(data=event.model_dump_json(), event=event.type.value, id=str(stored.id))
