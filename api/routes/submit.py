"""``POST /v1/listings`` and ``POST /v1/tryons``: validate, then ``Producer.enqueue`` (the same
core as the Python producer: record, publish, ``job.queued`` callback), answered 202 with the job
and ``Location: /v1/jobs/{id}``.

``Idempotency-Key`` (IETF draft ``httpapi-idempotency-key-header``): the same key and the same
request give the same job (202 the first time, 200 with ``Idempotent-Replayed: true`` after,
never a second job, also under concurrent identical requests: the store's create is one
script); the same key with another request is 422. "The same request" is the same validated
request (its sha256 fingerprint, ``producer.client.request_fingerprint``), so ``'#1c2a5e'`` and
``'navy'`` are the same colour. Keys are scoped to the requester. The header may be left out and
the body's ``idempotency_key`` used instead; both present and different is 422.

``Prefer: wait=N`` (RFC 7240 section 4.3, as Replicate's predictions API takes it): the answer
waits up to N seconds (at most ``api_prefer_wait_max_s``) for the job to end and, if it does,
is 200 with the finished job (outputs included); otherwise the usual 202 with the job as it is.
An honoured wait is confirmed with ``Preference-Applied: wait=N`` (N as capped); other
preferences, and a ``wait`` that is not a number of seconds, are ignored, as the RFC asks. The
wait follows the job's event stream (``core.jobs.JobEventFollower``): the route is ``async``
and holds no thread while it waits; the submit itself runs in a submit thread, as before.

What runs before the submit is one dependency per route (:func:`submission`), on the event loop:
the key (401), its origin (403, ``api.cors``), its rate (429), its scope (403) and admission for
listings (503). The submit itself (validate, ``Producer.accept``, which gives back the record it
stored, so nothing is read back) is the one trip a request makes off the event loop, to the
submit threads (:data:`SUBMIT_THREADS`); the services come from the app's state, not from a
dependency each. The daily quota (429) is taken by the job's create script (``Producer.accept``'s
admission hook, ``core.jobs.admission``), so only for a job that is created: an idempotent replay
takes none, and neither does a request refused before it. A plain submit's rate is counted
there too, so it makes one Redis round trip in all: validated, then rate, quota and record in one
script (``api.limits``). The answers come in this order: 401, 403 (origin), 429 (rate), 403
(scope), 503 (listing queue), 422 (the body, the requester, the conditions, a try-on's garment),
then an idempotent replay (200) or a reused key (422), then 429 (quota). So a refused rate
still comes before a 422 (a request refused before its create script counts its rate in a round
trip of its own, and over the rate gets the 429), while the quota now comes after it: an invalid
request over its quota gets its 422, as does a reused key, and a replay its 200. (Until the quota
moved into the create script, it came right after the listing queue, and an invalid request or a
replay spent quota too.) A refused rate or quota stores no job and publishes nothing; a refused
quota counts against the rate, as any other answered request.
With ``api_async_submit`` (off by default) the submit stays on the event loop instead
(``producer.accept_async.AsyncProducer``: ``redis.asyncio`` and an asyncio AMQP client, the same
record, message and errors). Off because ``python -m bench.api.async_ab`` found no clear win on a
loaded 2-core machine: about 10-20% less API CPU per submit, a lower p99 at 8 clients, but a
higher one at 1 and 32 clients and fewer submits per second at 32 (``bench/api/async_ab.json``).

A plain submit (a JSON body that validates, well-formed headers, a bearer key) is answered in
front of the app (``api.routes.shortcut``, :func:`plain_submit`): the same dependency and endpoint,
called directly, and the job serialised once. Any other request is FastAPI's, as declared.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Final, TypeVar

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import TypeAdapter, ValidationError

from api.admission import ListingAdmission
from api.auth import authenticated, bearer, missing_scope
from api.cors import origin_allowed
from api.keys.model import ApiKey, Scope
from api.limits import KeyLimits, SubmitLimits
from api.presign import Presigner
from api.problems import FieldError, ProblemError, field_errors, problem_responses
from api.routes.deps import job_resource
from api.routes.resources import Job, ListingSubmission, TryOnSubmission
from api.routes.shortcut import Shortcut, with_shortcut
from api.settings import ApiSettings
from api.threads import REQUESTS, BlockingThreads
from core.contracts.bounds import bounded_errors
from core.contracts.jobs import JobKind, JobRecord
from core.contracts.v1 import (
    MAX_IDENTIFIER_CHARS,
    GarmentFromListing,
    ListingImageRequest,
    TryOnRequest,
)
from core.jobs import IdempotencyConflict, JobEventFollower, JobStore, StoreError
from core.publish import PublishError
from producer.accept_async import AsyncProducer
from producer.client import Accepted, Producer

router = APIRouter(prefix="/v1", tags=["submit"])

#: threads that run the submits (validate, record, publish and wait for the broker's confirm): as
#: many as the broker connections a producer pools (Celery's ``broker_pool_limit``), so a submit
#: never waits for a connection and the cores are not shared among more threads than help
SUBMIT_THREADS: Final = 10
#: (a submit runs on the event loop instead when it is the only request in flight: ``api.threads``)
_submit_threads = BlockingThreads(SUBMIT_THREADS, name="atelier-submit", inline_when=REQUESTS.alone)

T = TypeVar("T")


async def in_submit_thread(call: Callable[..., T], *args: Any) -> T:
    """``call(*args)`` in a submit thread (``api.threads``: a hop that costs the event loop less
    than FastAPI's thread pool); the event loop serves other requests meanwhile."""
    return await _submit_threads.run(call, *args)


#: the pattern of an idempotency key (a v1 identifier)
IDEMPOTENCY_KEY_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9._:-]{{0,{MAX_IDENTIFIER_CHARS - 1}}}$"

#: the longest ``Prefer`` header taken
MAX_PREFER_CHARS: Final = 1024

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=MAX_IDENTIFIER_CHARS,
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="the same key and request return the same job; the same key with another request: 422",
    ),
]

Prefer = Annotated[
    str | None,
    Header(
        alias="Prefer",
        max_length=MAX_PREFER_CHARS,
        description="RFC 7240. `wait=N`: answer once the job has ended, waiting up to N seconds "
        "(capped by the server): 200 with the finished job, or the usual 202 if it has not ended; "
        "an honoured wait is confirmed by `Preference-Applied: wait=N`",
    ),
]

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": Job,
        "description": "an idempotent replay: the job this key and request created before; or, "
        "with `Prefer: wait=N`, the job that ended within the wait",
    },
    **problem_responses(401, 403, 413, 422, 429, 503),
}


def _refused(loc: list[str | int], rule: str, message: str) -> ProblemError:
    return ProblemError(
        422,
        "Unprocessable Content",
        message,
        kind="validation",
        errors=[FieldError(loc=loc, type=rule, msg=message)],
    )


def _as_request(
    body: ListingSubmission | TryOnSubmission, key: ApiKey, header_key: str | None
) -> dict[str, Any]:
    """The v1 request: the body with the key's requester and the idempotency key."""
    if body.requester is not None and body.requester != key.requester:
        raise _refused(
            ["body", "requester"],
            "requester_mismatch",
            "requester must be the API key's requester (or left out)",
        )
    if header_key is not None and body.idempotency_key not in (None, header_key):
        raise _refused(
            ["body", "idempotency_key"],
            "idempotency_key_mismatch",
            "idempotency_key differs from the Idempotency-Key header",
        )
    data = body.model_dump(mode="json")
    data["requester"] = key.requester
    data["idempotency_key"] = header_key if header_key is not None else body.idempotency_key
    return data


@contextmanager
def _submit_errors() -> Iterator[None]:
    """The core's refusals of a submit as the API answers them (422, 503)."""
    try:
        yield
    except IdempotencyConflict as conflict:
        raise ProblemError(
            422,
            "Idempotency key reused",
            "this Idempotency-Key was used with another request",
            kind="idempotency-key-reused",
            job_id=conflict.job_id,
        ) from None
    except (PublishError, StoreError) as error:
        raise ProblemError(
            503, "Service Unavailable", f"could not queue the job: {error}", headers={"Retry-After": "1"}
        ) from None
    # --- issue 16: a condition the model version does not know (Producer.prepare) is a 422 ---
    except ValidationError as error:
        errors = field_errors(error.errors(include_url=False), prefix=("body",))
        detail = "; ".join(f"{'.'.join(map(str, e.loc[1:]))}: {e.msg}" for e in errors[:1])
        raise ProblemError(422, "Unprocessable Content", detail, kind="validation", errors=errors) from None
    # --- end issue 16 ---


def _answer(accepted: Accepted, signer: Presigner, response: Response) -> Job:
    """202 with the new job, or 200 with an idempotent replay's; ``Location`` either way."""
    record, created = accepted
    response.headers["Location"] = f"/v1/jobs/{record.job_id}"
    if created:
        response.status_code = 202
    else:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return job_resource(record, signer)


def _submit(
    submitter: Producer,
    signer: Presigner,
    request: ListingImageRequest | TryOnRequest,
    response: Response,
    limits: SubmitLimits | None = None,
) -> Job:
    """``Producer.accept``, with the key's ``limits`` counted by the job's create script."""
    with _submit_errors():
        accepted = submitter.accept(request, admission=limits)
    if limits is not None and limits.allowance is not None:
        response.headers.update(limits.allowance.headers())
    return _answer(accepted, signer, response)


async def _submit_async(
    accepting: AsyncProducer,
    signer: Presigner,
    request: ListingImageRequest | TryOnRequest,
    response: Response,
) -> Job:
    with _submit_errors():
        accepted = await accepting.accept(request)
    return _answer(accepted, signer, response)


def _async_producer(state: Any) -> AsyncProducer | None:
    """The app's :class:`AsyncProducer` when ``api_async_submit`` is on (made in the running loop
    on first use, closed by the app's lifespan), else ``None``: the submit threads."""
    if not state.async_submit:
        return None
    if state.accepting is None:
        state.accepting = AsyncProducer(state.producer)
    accepting: AsyncProducer = state.accepting
    return accepting


#: the request scope entry where a submit's dependency leaves the limits its job's create script
#: counts (``api.limits.SubmitLimits``; absent or ``None``: nothing left to count)
LIMITS_IN_CREATE: Final = "atelier.submit_limits"


def limits_in_create(state: Any) -> bool:
    """Whether a submit's limits can be counted in its job's create script: the submit threads'
    ``Producer`` (not ``api_async_submit``) with a Redis job store on the limits' Redis."""
    known: bool | None = getattr(state, "limits_in_create", None)
    if known is None:
        limits: KeyLimits = state.limits
        store = state.producer.store
        known = not state.async_submit and isinstance(store, JobStore) and limits.shares_redis(store.settings)
        state.limits_in_create = known
    return known


def submission(scope: Scope, *, admit: bool, plain: bool = False) -> Callable[..., Awaitable[ApiKey]]:
    """The submit route's one dependency, in the order every ``/v1`` route answers: the caller's
    key (else 401), its origin if from a browser (else 403, ``api.cors``), its rate (else 429),
    ``scope`` (else 403) and room in the listing queue if ``admit`` (else 503, ``api.admission``).
    A key refused here counts its rate alone (a 429 comes first) and never spends quota.

    The limits (``api.limits``): ``plain`` (the shortcut's, ``plain_submit``) counts no limit
    here: the rate and one job of the quota are counted by the job's create script, in the round
    trip that stores the record (:data:`LIMITS_IN_CREATE`, :func:`counted_submit`). Otherwise
    (FastAPI's dependency) the rate is counted now, as on every route, and the quota by the
    create script. Where the create script cannot count them (:func:`limits_in_create`), both are
    counted now, in one round trip. One dependency, not one per check: FastAPI's solving costs
    CPU per dependency, and this runs on every submit."""

    async def submitting(
        request: Request,
        response: Response,
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
    ) -> ApiKey:
        key = await authenticated(request, credentials)
        await origin_allowed(request, key)
        state = request.app.state
        refused = None
        if not key.allows(scope):
            refused = missing_scope(scope)
        elif admit:
            admission: ListingAdmission = state.listing_admission
            refused = await admission.refusal()
        limits: KeyLimits = state.limits
        if refused is not None:
            await limits.count(key)
            raise refused
        allowance = None
        if not limits_in_create(state):
            allowance = await limits.count(key, jobs=1)
        else:
            if not plain:
                allowance = await limits.count(key)
            request.scope[LIMITS_IN_CREATE] = limits.admission(key, rates=plain)
        if allowance is not None:
            response.headers.update(allowance.headers())
        return key

    submitting.__name__ = f"submission_{scope.name.lower()}{'_plain' if plain else ''}"
    return submitting


async def counted_submit(request: Request, key: ApiKey, call: Callable[..., Job], *args: Any) -> Job:
    """``call(*args, limits)`` in a submit thread, ``limits`` being what the dependency left for
    the job's create script to count (:data:`LIMITS_IN_CREATE`). A submit refused before that
    script ran (422: invalid, an unknown condition, a garment not found) counts its rate then, in
    a round trip of its own: over the rate, the answer is the rate's 429 instead."""
    limits: SubmitLimits | None = request.scope.get(LIMITS_IN_CREATE)
    try:
        return await in_submit_thread(call, *args, limits)
    except ProblemError as refused:
        if limits is not None and limits.rates_pending and refused.problem.status < 500:
            key_limits: KeyLimits = request.app.state.limits
            await key_limits.count(key)
        raise


_listing_check = submission(Scope.SUBMIT_LISTINGS, admit=True)
_tryon_check = submission(Scope.SUBMIT_TRYONS, admit=False)
_listing_plain_check = submission(Scope.SUBMIT_LISTINGS, admit=True, plain=True)
_tryon_plain_check = submission(Scope.SUBMIT_TRYONS, admit=False, plain=True)


def preferred_wait(prefer: str | None) -> int | None:
    """The N of ``wait=N`` in a ``Prefer`` header (RFC 7240: comma-separated preferences, each
    ``name[=value]`` with ``;`` parameters; names are case-insensitive, values may be quoted),
    or ``None`` when there is none or its value is not a number of seconds."""
    for preference in (prefer or "").split(","):
        name, _, value = preference.split(";", 1)[0].partition("=")
        value = value.strip().strip('"')
        if name.strip().lower() == "wait" and value.isascii() and value.isdigit():
            return int(value)
    return None


async def _after_wait(
    job: Job,
    prefer: str | None,
    response: Response,
    *,
    submitter: Producer,
    signer: Presigner,
    settings: ApiSettings,
) -> Job:
    """``job``, or the job once ended if ``Prefer: wait=N`` asked for it and it ended in time
    (then 200); ``Preference-Applied`` says a wait was honoured and for how long at most."""
    if prefer is None:
        return job
    wait = min(preferred_wait(prefer) or 0, math.floor(settings.api_prefer_wait_max_s))
    if wait <= 0:
        return job
    response.headers["Preference-Applied"] = f"wait={wait}"
    if not job.state.terminal:
        async with JobEventFollower(submitter.settings) as follower:
            if await follower.wait_for_end(job.id, timeout=wait) is None:
                return job
        job = job_resource(await in_submit_thread(submitter.status, job.id), signer)
    response.status_code = 200
    return job


def _validated(model: type[ListingImageRequest] | type[TryOnRequest], data: dict[str, Any]) -> Any:
    try:
        with bounded_errors():
            return model.model_validate(data)
    except ValidationError as error:  # the key's requester breaking a rule, at most
        raise ProblemError(
            422,
            "Unprocessable Content",
            "the request breaks a rule",
            kind="validation",
            errors=field_errors(error.errors(include_url=False), prefix=("body",)),
        ) from None


#: what a submit answers with: the job, serialised as FastAPI serialises a ``response_model``
_JOB: Final = TypeAdapter(Job)
#: the one body type a plain submit has (FastAPI takes ``+json`` types and parameters too)
_PLAIN_CONTENT_TYPE: Final = "application/json"
_IDEMPOTENCY_KEY_SHAPE: Final = re.compile(IDEMPOTENCY_KEY_PATTERN)
#: the submit routes' status when the submit does not set one (as their ``status_code``)
_SUBMIT_STATUS: Final = 202

Endpoint = Callable[..., Awaitable[Job]]


def plain_submit(
    body_model: type[ListingSubmission] | type[TryOnSubmission],
    check: Callable[..., Awaitable[ApiKey]],
) -> Callable[[Endpoint], Shortcut]:
    """The shortcut (``api.routes.shortcut``) of a submit route whose body is ``body_model`` and
    whose dependency is ``check`` (:func:`submission`): for a plain submit (content type exactly
    ``application/json``, a body that parses and validates as ``body_model``, well-formed
    ``Idempotency-Key`` and ``Prefer`` if present, a bearer key), ``check`` and the endpoint are
    called directly and the job is serialised once; anything else is declined before ``check``
    counts anything, and FastAPI answers it (with the error it always gave)."""

    def make(endpoint: Endpoint) -> Shortcut:
        async def answer(request: Request, raw_body: bytes) -> Response | None:
            headers = request.headers
            if headers.get("content-type") != _PLAIN_CONTENT_TYPE:
                return None
            idempotency_key, prefer = headers.get("idempotency-key"), headers.get("prefer")
            if idempotency_key is not None and not _IDEMPOTENCY_KEY_SHAPE.fullmatch(idempotency_key):
                return None
            if prefer is not None and len(prefer) > MAX_PREFER_CHARS:
                return None
            credentials = await bearer(request)
            if credentials is None:
                return None
            try:  # as FastAPI reads a JSON body: json.loads, then the model's validation
                body = body_model.model_validate(json.loads(raw_body))
            except (ValueError, ValidationError):  # invalid JSON or UTF-8 too: FastAPI's 400/422
                return None
            response = Response()  # what FastAPI gives a route to set its status and headers on
            del response.headers["content-length"]
            response.status_code = None  # type: ignore[assignment]  # unset: the route's default
            key = await check(request, response, credentials)
            job = await endpoint(
                body=body,
                request=request,
                response=response,
                idempotency_key=idempotency_key,
                prefer=prefer,
                key=key,
            )
            status = response.status_code or _SUBMIT_STATUS
            answered = Response(_JOB.dump_json(job, by_alias=True), status, media_type="application/json")
            answered.headers.raw.extend(response.headers.raw)
            return answered

        return answer

    return make


@router.post(
    "/listings",
    status_code=202,
    response_model=Job,
    responses=_RESPONSES,
    summary="Submit a listing's product images",
)
@with_shortcut(plain_submit(ListingSubmission, _listing_plain_check))
async def submit_listing(
    body: ListingSubmission,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
    prefer: Prefer = None,
    key: ApiKey = Depends(_listing_check),  # noqa: B008
) -> Job:
    """Queue product images for a listing; 202 with the job and ``Location`` (with
    ``Prefer: wait=N``, 200 with the finished job if it ends within N seconds)."""
    state = request.app.state
    accepting = _async_producer(state)
    if accepting is not None:
        submitted = _validated(ListingImageRequest, _as_request(body, key, idempotency_key))
        job = await _submit_async(accepting, state.presigner, submitted, response)
    else:
        job = await counted_submit(
            request,
            key,
            _accept_listing,
            body,
            response,
            idempotency_key,
            key,
            state.producer,
            state.presigner,
        )
    return await _after_wait(
        job, prefer, response, submitter=state.producer, signer=state.presigner, settings=state.settings
    )


def _accept_listing(
    body: ListingSubmission,
    response: Response,
    idempotency_key: str | None,
    key: ApiKey,
    submitter: Producer,
    signer: Presigner,
    limits: SubmitLimits | None,
) -> Job:
    request = _validated(ListingImageRequest, _as_request(body, key, idempotency_key))
    return _submit(submitter, signer, request, response, limits)


@router.post(
    "/tryons",
    status_code=202,
    response_model=Job,
    responses=_RESPONSES,
    summary="Submit a virtual try-on",
)
@with_shortcut(plain_submit(TryOnSubmission, _tryon_plain_check))
async def submit_tryon(
    body: TryOnSubmission,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
    prefer: Prefer = None,
    key: ApiKey = Depends(_tryon_check),  # noqa: B008
) -> Job:
    """Queue a try-on image; 202 with the job and ``Location`` (with ``Prefer: wait=N``, 200
    with the finished job if it ends within N seconds). A garment from a listing must name one
    of this requester's listing jobs."""
    state = request.app.state
    accepting = _async_producer(state)
    if accepting is not None:
        job = await _accept_tryon_async(body, response, idempotency_key, key, accepting, state.presigner)
    else:
        job = await counted_submit(
            request, key, _accept_tryon, body, response, idempotency_key, key, state.producer, state.presigner
        )
    return await _after_wait(
        job, prefer, response, submitter=state.producer, signer=state.presigner, settings=state.settings
    )


def _accept_tryon(
    body: TryOnSubmission,
    response: Response,
    idempotency_key: str | None,
    key: ApiKey,
    submitter: Producer,
    signer: Presigner,
    limits: SubmitLimits | None,
) -> Job:
    request: TryOnRequest = _validated(TryOnRequest, _as_request(body, key, idempotency_key))
    if isinstance(request.garment, GarmentFromListing):
        _check_garment_source(submitter.store.get(request.garment.job_id), key)
    return _submit(submitter, signer, request, response, limits)


async def _accept_tryon_async(
    body: TryOnSubmission,
    response: Response,
    idempotency_key: str | None,
    key: ApiKey,
    accepting: AsyncProducer,
    signer: Presigner,
) -> Job:
    request: TryOnRequest = _validated(TryOnRequest, _as_request(body, key, idempotency_key))
    if isinstance(request.garment, GarmentFromListing):
        _check_garment_source(await accepting.store.get(request.garment.job_id), key)
    return await _submit_async(accepting, signer, request, response)


def _check_garment_source(source: JobRecord | None, key: ApiKey) -> None:
    """A garment from a listing must name one of the key's requester's listing jobs (else 422)."""
    if source is None or source.requester != key.requester or source.kind is not JobKind.LISTING:
        raise _refused(
            ["body", "garment", "job_id"],
            "listing_not_found",
            "no listing job with this id for this key's requester",
        )
