"""The producer over HTTP: the same methods as :class:`producer.client.Producer`, through the
HTTP API (``docs/api.md``) with an API key instead of broker and Redis credentials.

A catalog system or a script that holds only a key (``atelier keys create``) uses
:class:`HttpProducer` as it would the direct ``Producer``: ``submit_listing``, ``submit_tryon``,
``submit``, ``enqueue``, ``status``, ``list_jobs``, ``cancel``, ``watch`` and ``wait_all``.
What differs, because the API decides it:

- The requester is the key's. A request naming another requester is refused (422).
- A job comes back as :class:`Job`, the API's job resource (``job_id``, ``state``, ``error``
  ... as on ``JobRecord``), whose ``outputs`` carry links signed on that read instead of the
  record's ``results`` (the API does not expose bucket and key).
- :meth:`HttpProducer.cancel` of a job past ``queued`` returns the job unchanged, as
  ``Producer.cancel`` does (the API answers 409; ``core.jobs.cancel_refusal`` says why).
- :meth:`HttpProducer.watch` follows the job's Server-Sent Events (``GET /v1/jobs/{id}/events``)
  instead of Redis; a dropped stream is resumed with ``Last-Event-ID``, so no change is missed.

Errors are RFC 9457 problems mapped onto the typed errors the direct producer raises where
there is one (``core.jobs.JobNotFound``, ``core.jobs.IdempotencyConflict``,
``core.jobs.WatchTimeout``), and onto :class:`ApiError` subclasses otherwise: a refused request
is :class:`InvalidRequest`, naming each field and rule. The transport is httpx; nothing here
needs Celery, Redis or the worker.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, NamedTuple

import httpx
from pydantic import BaseModel, ConfigDict, Field

from core.contracts.jobs import JobError, JobEvent, JobKind, JobRecord, JobState
from core.contracts.v1 import ListingImageRequest, TryOnRequest
from core.errors import AtelierError, ErrorCode
from core.jobs import IdempotencyConflict, JobNotFound, WatchTimeout

#: default seconds for connecting and for each read (a watch reads for as long as it is given)
DEFAULT_TIMEOUT_S = 10.0
#: pause before a dropped event stream is reopened with ``Last-Event-ID``
RECONNECT_DELAY_S = 0.5
#: the media type of an error answer (RFC 9457)
PROBLEM_MEDIA_TYPE = "application/problem+json"

Request = ListingImageRequest | TryOnRequest


class Output(BaseModel):
    """One generated image, with a GET link signed on the read that returned it."""

    variant: int
    content_type: str
    url: str
    url_expires_at: datetime


class Job(BaseModel):
    """A job as the API shows it to its requester (``GET /v1/jobs/{id}``)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    job_id: str = Field(alias="id")
    kind: JobKind
    state: JobState
    requester: str
    subject: str
    created_at: datetime
    updated_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    attempts: int = 0
    model: str | None = None
    model_version: str | None = None
    seed: int | None = None
    idempotency_key: str | None = None
    error: JobError | None = None
    outputs: list[Output] = Field(default_factory=list)

    def as_record(self) -> JobRecord:
        """The job as a ``JobRecord`` (without outputs: a record's results name bucket and key)."""
        return JobRecord.model_validate(self.model_dump(exclude={"outputs"}))


class JobList(NamedTuple):
    """One page of the key's jobs, newest first (``core.jobs.JobPage`` over HTTP)."""

    jobs: list[Job]
    #: pass as ``cursor=`` for the next page; ``None`` on the last page
    next_cursor: str | None


class Submission(NamedTuple):
    job_id: str
    #: False when an earlier job with the same idempotency key came back instead
    created: bool


class StreamedEvent(NamedTuple):
    """One Server-Sent Event of a job: its id (pass as ``last_event_id`` to resume) and event."""

    id: int
    event: JobEvent


class ApiError(AtelierError):
    """The API refused the call; ``status`` and ``problem`` (the RFC 9457 body) say why."""

    def __init__(
        self, status: int, problem: Mapping[str, Any], *, code: ErrorCode = ErrorCode.INTERNAL_ERROR
    ):
        self.status = status
        self.problem = dict(problem)
        detail = problem.get("detail") or problem.get("title") or f"HTTP {status}"
        super().__init__(code, f"{status} {detail}")


class InvalidRequest(ApiError, ValueError):
    """A refused request (422, or 413 for a body over the bound): each broken rule is in
    ``errors`` (``loc``, ``type``, ``msg``) and in the message, as ``body.variants:
    less_than_equal (Input should be less than or equal to 8)``."""

    def __init__(self, status: int, problem: Mapping[str, Any]) -> None:
        self.errors: list[dict[str, Any]] = list(problem.get("errors") or [])
        super().__init__(status, problem, code=ErrorCode.INVALID_REQUEST)
        rules = "; ".join(
            f"{'.'.join(str(part) for part in e.get('loc', []))}: {e.get('type')} ({e.get('msg')})"
            for e in self.errors
        )
        if rules:
            self.message = rules
            self.args = (f"{self.code.value}: {rules}",)


class KeyRefused(ApiError):
    """401: the key is missing, unknown or revoked."""

    def __init__(self, status: int, problem: Mapping[str, Any]) -> None:
        super().__init__(status, problem, code=ErrorCode.KEY_NOT_FOUND)


class ScopeRefused(ApiError):
    """403: the key lacks the scope this call needs (or the origin is not allowed)."""

    def __init__(self, status: int, problem: Mapping[str, Any]) -> None:
        super().__init__(status, problem, code=ErrorCode.SCOPE_NOT_ALLOWED)


class ApiUnavailable(ApiError):
    """Not served now, retry after ``retry_after_s`` (429 rate limit or quota, 503 admission or
    a queue or store down, a gateway error, or the API unreachable: ``status`` 0)."""

    retryable = True

    def __init__(self, status: int, problem: Mapping[str, Any], *, retry_after_s: float | None = None):
        super().__init__(status, problem, code=ErrorCode.PUBLISH_FAILED)
        self.retry_after_s = retry_after_s


class RateLimited(ApiUnavailable):
    """429: the key's rate limit or daily quota; ``retry_after_s`` says when to come back."""


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return body
    return {"title": response.reason_phrase, "status": response.status_code}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


def raise_for_problem(response: httpx.Response, *, job_id: str | None = None) -> None:
    """Raise the typed error for a failed answer (nothing for a 2xx)."""
    if response.is_success:
        return
    status, problem = response.status_code, _problem(response)
    kind = str(problem.get("type", ""))
    if status == 404 and job_id is not None:
        raise JobNotFound(job_id)
    if status == 422 and kind.endswith("/idempotency-key-reused"):
        raise IdempotencyConflict(str(problem.get("job_id")))
    if status in (413, 422):
        raise InvalidRequest(status, problem)
    if status == 401:
        raise KeyRefused(status, problem)
    if status == 403:
        raise ScopeRefused(status, problem)
    if status == 429:
        raise RateLimited(status, problem, retry_after_s=_retry_after(response))
    if status in (502, 503, 504):
        raise ApiUnavailable(status, problem, retry_after_s=_retry_after(response))
    raise ApiError(status, problem)


def request_body(request: Request | Mapping[str, Any] | str) -> dict[str, Any]:
    """The JSON body for a request model, dict or JSON string (the server validates it)."""
    if isinstance(request, ListingImageRequest | TryOnRequest):
        return request.model_dump(mode="json", exclude_none=True)
    if isinstance(request, str | bytes):
        loaded = json.loads(request)
        if not isinstance(loaded, dict):
            raise InvalidRequest(422, {"title": "the request is not a JSON object", "status": 422})
        return loaded
    return dict(request)


class HttpProducer:
    """Submit, inspect, cancel and watch Atelier jobs through the HTTP API.

    Parameters: ``base_url`` (``http://127.0.0.1:8000``) and ``key`` (the API key, sent as
    ``Authorization: Bearer``); keyword-only:

    - ``timeout``: seconds to connect and for each read (default :data:`DEFAULT_TIMEOUT_S`).
    - ``transport``: an httpx transport (tests, proxies); default httpx's.
    - ``reconnect_delay_s``: pause before a dropped event stream is resumed (default
      :data:`RECONNECT_DELAY_S`); :meth:`wait_all` polls at this interval too.
    """

    def __init__(
        self,
        base_url: str,
        key: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
        reconnect_delay_s: float = RECONNECT_DELAY_S,
    ) -> None:
        self.timeout = timeout
        self.reconnect_delay_s = reconnect_delay_s
        self.http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {key}"},
            timeout=timeout,
            transport=transport,
        )

    def submit_listing(self, request: ListingImageRequest | Mapping[str, Any]) -> str:
        """Queue product images for a listing; returns the job id."""
        return self._post_submission("/v1/listings", request_body(request)).job_id

    def submit_tryon(self, request: TryOnRequest | Mapping[str, Any]) -> str:
        """Queue a try-on image; returns the job id."""
        return self._post_submission("/v1/tryons", request_body(request)).job_id

    def submit(self, request: Request | Mapping[str, Any] | str) -> str:
        """Queue either request (a dict or JSON picks its route by ``kind``); returns the job id."""
        return self.enqueue(request).job_id

    def enqueue(self, request: Request | Mapping[str, Any] | str) -> Submission:
        """Like :meth:`submit`, and tells whether a new job was created (202) or an earlier one
        came back for the same idempotency key and request (200)."""
        body = request_body(request)
        route = "/v1/tryons" if body.get("kind") == "tryon" else "/v1/listings"
        return self._post_submission(route, body)

    def status(self, job_id: str) -> Job:
        """The job; raises :class:`core.jobs.JobNotFound` (also for another requester's job)."""
        response = self._call("GET", f"/v1/jobs/{job_id}", job_id=job_id)
        return Job.model_validate(response.json())

    def list_jobs(
        self,
        requester: str | None = None,
        *,
        limit: int = 50,
        cursor: str | None = None,
        subject: str | None = None,
        state: JobState | None = None,
    ) -> JobList:
        """A page of the key's requester's jobs, newest first. ``requester`` is the key's and
        may be left out; naming another raises ``ValueError`` (the API never lists them)."""
        params: dict[str, Any] = {"limit": limit}
        for name, value in (("cursor", cursor), ("subject", subject), ("state", state)):
            if value is not None:
                params[name] = str(value)
        page = self._call("GET", "/v1/jobs", params=params).json()
        jobs = [Job.model_validate(job) for job in page["jobs"]]
        if requester is not None and any(job.requester != requester for job in jobs):
            raise ValueError(f"this key lists its own requester's jobs, not {requester!r}'s")
        return JobList(jobs, page.get("next_cursor"))

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued job (it will never run); a job past queued comes back unchanged
        (``core.jobs.cancel_refusal(job.as_record())`` says why)."""
        response = self.http.post(f"/v1/jobs/{job_id}/cancel")
        if response.status_code == 409:
            return self.status(job_id)
        raise_for_problem(response, job_id=job_id)
        return Job.model_validate(response.json())

    def watch(self, job_id: str, timeout: float) -> Iterator[Job]:
        """Yield the job now and on every change until it is terminal; raises
        :class:`core.jobs.WatchTimeout` after ``timeout`` seconds.

        Each event of the stream is followed by a read of the job, so what is yielded is the
        whole resource (outputs signed on that read), as ``status`` returns it."""
        deadline = time.monotonic() + timeout
        job = self.status(job_id)
        yield job
        if job.state.terminal:
            return
        for _ in self.events(job_id, timeout=max(deadline - time.monotonic(), 0.0)):
            latest = self.status(job_id)
            if latest != job:
                job = latest
                yield job
            if job.state.terminal:
                return
        raise WatchTimeout(job.as_record(), timeout)

    def events(
        self, job_id: str, *, timeout: float, last_event_id: int | None = None
    ) -> Iterator[StreamedEvent]:
        """The job's events after ``last_event_id`` (all of them by default) until the terminal
        one, or until ``timeout`` seconds have passed (then the iterator just ends). A stream
        that drops or ends early is reopened with ``Last-Event-ID``: no event is missed or
        repeated."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                for streamed in self._stream(job_id, last_event_id, deadline):
                    yield streamed
                    last_event_id = streamed.id
                    if streamed.event.type.value in _TERMINAL_EVENTS:
                        return
            except (httpx.TransportError, ApiUnavailable):
                pass  # the API restarting or a proxy dropping the connection: resume below
            time.sleep(min(self.reconnect_delay_s, max(deadline - time.monotonic(), 0.0)))

    def wait_all(self, job_ids: Iterable[str], timeout_s: float) -> dict[str, Job]:
        """Every job's latest state once all have ended, or at ``timeout_s`` (some may not
        have: check ``state.terminal``); polls every ``reconnect_delay_s``."""
        pending = set(job_ids)
        jobs: dict[str, Job] = {}
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            for job_id in list(pending):
                jobs[job_id] = job = self.status(job_id)
                if job.state.terminal:
                    pending.discard(job_id)
            if pending:
                time.sleep(self.reconnect_delay_s)
        return jobs

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> HttpProducer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, method: str, url: str, *, job_id: str | None = None, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, url, **kwargs)
        except httpx.TransportError as error:
            raise ApiUnavailable(0, {"title": f"the API is unreachable: {error}"}) from error
        raise_for_problem(response, job_id=job_id)
        return response

    def _post_submission(self, route: str, body: dict[str, Any]) -> Submission:
        headers = {}
        if body.get("idempotency_key"):
            headers["Idempotency-Key"] = str(body["idempotency_key"])
        response = self._call("POST", route, json=body, headers=headers)
        return Submission(response.json()["id"], response.status_code == 202)

    def _stream(self, job_id: str, after: int | None, deadline: float) -> Iterator[StreamedEvent]:
        """One connection to the event stream; ends when the server closes it."""
        headers = {"Accept": "text/event-stream"}
        if after is not None:
            headers["Last-Event-ID"] = str(after)
        read_s = max(deadline - time.monotonic(), 0.1)
        timeout = httpx.Timeout(self.timeout, read=read_s)
        url = f"/v1/jobs/{job_id}/events"
        with self.http.stream("GET", url, headers=headers, timeout=timeout) as response:
            if not response.is_success:
                response.read()
                raise_for_problem(response, job_id=job_id)
            for frame in sse_frames(response.iter_lines()):
                if time.monotonic() >= deadline:
                    return
                if frame is not None and "data" in frame and "id" in frame:
                    yield StreamedEvent(int(frame["id"]), JobEvent.model_validate_json(frame["data"]))


_TERMINAL_EVENTS = frozenset({"job.succeeded", "job.failed", "job.canceled"})


def sse_frames(lines: Iterable[str]) -> Iterator[dict[str, str] | None]:
    """Server-Sent Events frames (WHATWG HTML, "Parsing an event stream") from text lines: a
    dict of ``event``, ``data`` (lines joined by newlines) and ``id`` per dispatched frame,
    and ``None`` for each comment line (a keep-alive), so a reader can check its deadline."""
    frame: dict[str, str] = {}
    for line in lines:
        if not line:
            if frame:
                yield frame
            frame = {}
            continue
        if line.startswith(":"):
            yield None
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            frame["data"] = f"{frame['data']}\n{value}" if "data" in frame else value
        elif field in ("event", "id"):
            frame[field] = value
    # a frame not ended by a blank line when the stream closes is dropped (WHATWG)
