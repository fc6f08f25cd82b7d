"""The producer: what catalog code and the try-on feature call to submit and follow jobs.

A submission is validate -> record -> publish. Validation comes first, so an invalid request
raises pydantic's ``ValidationError`` (field path and rule) with nothing stored or published;
its paths, messages and inputs are cut to short excerpts (``core.contracts.bounds``), so a
megabyte in a request never comes back in the error. Validation includes the conditions: the
category, colour and pattern are checked against the manifest of the model version the request
will run on (:func:`checked_conditions`: the pinned version, else the default, else the highest
registered; ``core.model_registry``, cached per process), and a ``#rrggbb`` colour is stored as
that version's nearest colour name.
The record is created ``queued`` (or an earlier job comes back, for a repeated idempotency
key) before the message is published, so a worker always finds the record. A repeated key
comes back as the earlier job only for the same request: the record keeps the sha256 of the
canonical request JSON (:func:`request_fingerprint`), and the same key with another request
raises ``core.jobs.IdempotencyConflict`` (the IETF ``Idempotency-Key`` draft's semantics).
When the broker does not confirm, the record is marked ``failed`` with code ``publish_failed``,
the idempotency key is released (a retry with the same key submits again) and
:class:`PublishError` is re-raised: a ``queued`` record always has a message behind it.

Callbacks the producer causes go through the callback queue like every other: ``job.queued``
after a confirmed publish and ``job.canceled`` after a cancel, when the request subscribed to
them; a callback worker signs and sends them (``worker/tasks.py``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple, TypeVar

from core.contracts.conditions import ConditionRefused, ProductConditions, resolve_conditions
from core.contracts.jobs import JobError, JobEventType, JobKind, JobRecord, JobState, ReviewPolicy
from core.contracts.v1 import (
    GarmentByAttributes,
    ListingImageRequest,
    TryOnRequest,
    parse_request,
    validate_request,
)
from core.errors import ErrorCode
from core.jobs import JobPage, JobStore, list_jobs, utcnow
from core.jobs.admission import Admission
from core.model_registry import ModelRegistry, UnknownVersion
from core.publish import Publisher
from core.settings import AtelierSettings
from core.topology import REGENERATE_TASK, TASK_FOR_KIND, regenerate_kwargs, regenerate_task_id
from serving_contract.tensors import PRODUCT_GENERATOR, TRYON_GENERATOR

log = logging.getLogger(__name__)


Request = ListingImageRequest | TryOnRequest
R = TypeVar("R", ListingImageRequest, TryOnRequest)


class Submission(NamedTuple):
    job_id: str
    #: False when an earlier job with the same idempotency key came back instead
    created: bool


class Accepted(NamedTuple):
    """What :meth:`Producer.accept` gives back: the job's record and whether it is new."""

    #: a new job's record as this call stored it (``queued``); an idempotent replay's earlier
    #: job as it is now
    record: JobRecord
    #: False when an earlier job with the same idempotency key came back instead
    created: bool


class Prepared(NamedTuple):
    """A validated request and what its new job is stored as (:meth:`Producer.prepare`)."""

    request: Request
    #: the ``queued`` record, with the idempotency key if any
    record: JobRecord
    #: the request as stored and sent (JSON mode)
    body: dict[str, Any]
    #: :func:`request_fingerprint` of ``body`` when the request has an idempotency key
    fingerprint: str | None


def log_replay(job_id: str, request: Request) -> None:
    log.info("idempotent resubmission", extra={"job_id": job_id, "requester": request.requester})


def log_submitted(record: JobRecord) -> None:
    log.info(
        "submitted", extra={"job_id": record.job_id, "kind": record.kind.value, "requester": record.requester}
    )


def new_job_id() -> str:
    """A job id: 32 lowercase hex digits (a uuid4); also the Celery task id."""
    return uuid.uuid4().hex


def subscribed(request_json: Mapping[str, Any] | None, event: JobEventType) -> bool:
    """Whether a stored request (JSON mode) asked for ``event`` callbacks."""
    callback = (request_json or {}).get("callback")
    if not isinstance(callback, Mapping):
        return False
    return event.value in callback.get("events", ())


def request_fingerprint(body: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON (sorted keys, no spaces) of a validated request: two requests
    that validate to the same model (``'#1c2a5e'`` and ``'navy'``) have the same fingerprint."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def checked_conditions(request: Request, registry: ModelRegistry, *, kind_first: bool = False) -> Request:
    """``request`` once its conditions are known to the version it will run on, with a
    ``#rrggbb`` colour as that version's colour name; else pydantic's ``ValidationError`` naming
    the field, the version and the allowed values (``core.contracts.conditions``), or naming
    ``model_version`` when the version has no manifest; ``kind_first``: each path starts with the
    request's ``kind``, as ``parse_request``'s do."""
    try:
        if isinstance(request, ListingImageRequest):
            product = registry.resolve(PRODUCT_GENERATOR.name, request.model_version)
            made = resolve_conditions(request, product)
            assert isinstance(made, ProductConditions)
            return _with_colour(request, "attributes", request.attributes, made)
        tryon = registry.resolve(TRYON_GENERATOR.name, request.model_version)
        garment = request.garment
        if not isinstance(garment, GarmentByAttributes):
            resolve_conditions(request, tryon)
            return request
        # the garment is made first, by the product model's version a request pinning none runs on
        product = registry.resolve(PRODUCT_GENERATOR.name, None)
        tried = resolve_conditions(request, tryon, product=product)
        assert not isinstance(tried, ProductConditions) and tried.garment is not None
        return _with_colour(request, "garment", garment, tried.garment)
    except ConditionRefused as refused:
        raise refused.validation_error(
            type(request).__name__, kind=request.kind if kind_first else None
        ) from None
    except UnknownVersion as unknown:
        rule = ConditionRefused(("model_version",), "unknown_model_version", unknown.message, unknown.version)
        raise rule.validation_error(
            type(request).__name__, kind=request.kind if kind_first else None
        ) from None


def _with_colour(request: R, field: str, part: Any, made: ProductConditions) -> R:
    """``request`` with ``part`` (its ``field``) naming ``made``'s colour, when it gave ``#rrggbb``."""
    if part.colour == made.colour_name:
        return request
    return request.model_copy(update={field: part.model_copy(update={"colour": made.colour_name})})


#: a requester's review policy, looked up when its job is recorded
PolicyResolver = Callable[[str], ReviewPolicy]


def record_for(
    request: Request, job_id: str, *, review_policy: ReviewPolicy = ReviewPolicy.AUTO
) -> JobRecord:
    """The ``queued`` record of a new job; a listing's under its requester's ``review_policy``
    (a try-on is never held for review: a shopper is waiting, and it never reaches a catalog)."""
    now = utcnow()
    if isinstance(request, ListingImageRequest):
        kind, subject = JobKind.LISTING, request.listing_id
    else:
        kind, subject = JobKind.TRYON, request.shopper_ref
    return JobRecord(
        job_id=job_id,
        kind=kind,
        state=JobState.QUEUED,
        requester=request.requester,
        subject=subject,
        created_at=now,
        updated_at=now,
        seed=request.seed,
        model_version=None if request.model_version is None else str(request.model_version),
        review_policy=review_policy if kind is JobKind.LISTING else ReviewPolicy.AUTO,
    )


class Producer:
    """Submit, inspect, cancel and watch Atelier jobs.

    Parameters (keyword-only besides ``settings``, default ``AtelierSettings()`` from the
    environment):

    - ``store``: the :class:`JobStore`; default one on ``settings.redis_url``.
    - ``watch_poll_interval_s``: how often :meth:`watch` re-reads a record when no change
      notice arrives (default 1.0).
    - ``review_policy_for``: the review policy of a requester (``core.contracts.jobs.ReviewPolicy``),
      written on each new job's record; default ``settings.review_policy`` for everyone. The API
      sets its own, reading each tenant's policy (``api.review.policies``); a lookup that raises
      fails the submission before anything is stored.
    - ``registry``: the model versions' manifests the conditions are checked against
      (``core.model_registry``); default one on ``settings.redis_url``.
    """

    def __init__(
        self,
        settings: AtelierSettings | None = None,
        *,
        store: JobStore | None = None,
        publisher: Publisher | None = None,
        watch_poll_interval_s: float = 1.0,
        review_policy_for: PolicyResolver | None = None,
        registry: ModelRegistry | None = None,
    ) -> None:
        self.settings = settings if settings is not None else AtelierSettings()
        default_policy = self.settings.review_policy
        self.review_policy_for: PolicyResolver = (
            review_policy_for if review_policy_for is not None else lambda requester: default_policy
        )
        self.store = store if store is not None else JobStore(self.settings)
        self.publisher = publisher if publisher is not None else Publisher(self.settings)
        self.watch_poll_interval_s = watch_poll_interval_s
        if registry is None:  # on the store's Redis connections
            registry = ModelRegistry.from_settings(self.settings, client=getattr(self.store, "redis", None))
        self.registry = registry

    def submit_listing(self, request: ListingImageRequest | Mapping[str, Any]) -> str:
        """Queue product images for a listing; returns the job id."""
        if not isinstance(request, ListingImageRequest):
            request = validate_request(ListingImageRequest, request)
        return self.enqueue(request).job_id

    def submit_tryon(self, request: TryOnRequest | Mapping[str, Any]) -> str:
        """Queue a try-on image; returns the job id."""
        if not isinstance(request, TryOnRequest):
            request = validate_request(TryOnRequest, request)
        return self.enqueue(request).job_id

    def submit(self, request: Request | Mapping[str, Any] | str) -> str:
        """Queue either request (a dict or JSON picks its model by ``kind``); returns the job id."""
        return self.enqueue(request).job_id

    def enqueue(self, request: Request | Mapping[str, Any] | str) -> Submission:
        """Like :meth:`submit`, and tells whether a new job was created."""
        job_id, created, _ = self._enqueue(request)
        return Submission(job_id, created)

    def accept(
        self, request: Request | Mapping[str, Any] | str, *, admission: Admission | None = None
    ) -> Accepted:
        """Like :meth:`enqueue`, with the job's record instead of its id: the record this call
        stored, so a caller that answers with the job (the HTTP API) need not read it back; only
        an idempotent replay, whose job is an earlier one, is read from the store.

        ``admission`` (``core.jobs.admission``; a :class:`core.jobs.JobStore` only): the caller's
        own check, run in the store's create script, after validation and before anything is
        written (the HTTP API's per-key rate and quota: one round trip for both and the record); a
        refusal raises its own error with nothing stored or published."""
        job_id, created, stored = self._enqueue(request, admission=admission)
        return Accepted(stored if stored is not None else self.status(job_id), created)

    def prepare(self, request: Request | Mapping[str, Any] | str) -> Prepared:
        """Validate ``request`` and build its new job's record (under its requester's review
        policy) and stored body: what both :meth:`accept` and ``AsyncProducer.accept`` store."""
        parsed = not isinstance(request, ListingImageRequest | TryOnRequest)
        if not isinstance(request, ListingImageRequest | TryOnRequest):
            request = parse_request(request)
        # parse_request's errors start with the request's kind: so do the conditions' then
        request = checked_conditions(request, self.registry, kind_first=parsed)
        policy = ReviewPolicy.AUTO
        if isinstance(request, ListingImageRequest):
            policy = self.review_policy_for(request.requester)
        record = record_for(request, new_job_id(), review_policy=policy)
        if request.idempotency_key is not None:
            record = record.model_copy(update={"idempotency_key": request.idempotency_key})
        body = request.model_dump(mode="json")
        fingerprint = request_fingerprint(body) if request.idempotency_key is not None else None
        return Prepared(request, record, body, fingerprint)

    def _enqueue(
        self, request: Request | Mapping[str, Any] | str, *, admission: Admission | None = None
    ) -> tuple[str, bool, JobRecord | None]:
        """Record and publish: the job id, whether it is new, and the record as stored (``None``
        when the store holds another: a replay's earlier job, or one a worker already moved on)."""
        prepared = self.prepare(request)
        request, record, body = prepared.request, prepared.record, prepared.body
        if admission is None:
            job_id, created = self.store.create(
                record, request.idempotency_key, request=body, fingerprint=prepared.fingerprint
            )
        else:  # the admission hook: only a JobStore takes one
            job_id, created = self.store.create(
                record,
                request.idempotency_key,
                request=body,
                fingerprint=prepared.fingerprint,
                admission=admission,
            )
        if not created:
            log_replay(job_id, request)
            return job_id, False, None
        try:
            self.publisher.publish(TASK_FOR_KIND[record.kind], job_id, body)
        except Exception as error:
            if not self.publish_failed(prepared, error):
                return job_id, True, None
            raise
        log_submitted(record)
        self._notify(job_id, body, JobEventType.QUEUED)
        return job_id, True, record

    def status(self, job_id: str) -> JobRecord:
        """The job's record; raises :class:`core.jobs.JobNotFound`."""
        return self.store.require(job_id)

    def list_jobs(
        self,
        requester: str,
        *,
        limit: int = 50,
        cursor: str | None = None,
        subject: str | None = None,
        state: JobState | None = None,
    ) -> JobPage:
        """A page of ``requester``'s jobs, newest first (``core.jobs.listing``); raises
        ``core.jobs.InvalidCursor`` for a cursor no page returned."""
        return list_jobs(self.store, requester, limit=limit, cursor=cursor, subject=subject, state=state)

    def cancel(self, job_id: str) -> JobRecord:
        """Cancel a queued job (it will never run); a running or finished job comes back unchanged.

        ``core.jobs.cancel_refusal(record)`` says why a job was not canceled.
        """
        record = self.store.request_cancel(job_id)
        if record.state is JobState.CANCELED:
            # a repeated cancel queues it again; the callback task sends each event once
            self._notify(job_id, self.store.get_request(job_id), JobEventType.CANCELED)
        return record

    def regenerate(self, job_id: str, variant: int, regeneration: int) -> None:
        """Ask a worker for remake number ``regeneration`` of a listing image a reviewer rejected
        (``REGENERATE_TASK``); confirmed or raises ``core.publish.PublishError``."""
        self.publisher.send(
            REGENERATE_TASK,
            regenerate_kwargs(job_id, variant, regeneration),
            task_id=regenerate_task_id(job_id, variant, regeneration),
            job_id=job_id,
        )

    def watch(self, job_id: str, timeout: float) -> Iterator[JobRecord]:
        """Yield the record now and on every change until it is terminal; raises
        :class:`core.jobs.WatchTimeout` after ``timeout`` seconds."""
        return self.store.watch(job_id, timeout=timeout, poll_interval=self.watch_poll_interval_s)

    def wait_all(self, job_ids: Iterable[str], timeout_s: float) -> dict[str, JobRecord]:
        """Every job's latest record once all have ended, or at ``timeout_s`` (some may not have:
        check ``state.terminal``); polls every ``watch_poll_interval_s``."""
        pending = set(job_ids)
        records: dict[str, JobRecord] = {}
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            for job_id in list(pending):
                records[job_id] = record = self.status(job_id)
                if record.state.terminal:
                    pending.discard(job_id)
            if pending:
                time.sleep(self.watch_poll_interval_s)
        return records

    def close(self) -> None:
        self.publisher.close()
        self.store.close()
        self.registry.close()

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def notify(self, job_id: str, event: JobEventType) -> None:
        """Queue ``event``'s callback of ``job_id`` if its request subscribed to it (e.g. the end
        of a review, ``job.approved``); logged, not raised, when the broker refuses."""
        self._notify(job_id, self.store.get_request(job_id), event)

    def _notify(self, job_id: str, request_json: Mapping[str, Any] | None, event: JobEventType) -> None:
        """Queue the ``event`` callback if the request subscribed to it (the worker sends it).

        A lost callback message leaves the job as it is, so a publish failure is logged, not raised.
        """
        if not subscribed(request_json, event):
            return
        try:
            self.publisher.publish_callback(job_id, event.value)
        except Exception:
            log.exception("could not queue the %s callback", event.value, extra={"job_id": job_id})

    def publish_failed(self, prepared: Prepared, error: Exception) -> bool:
        """After a publish of ``prepared``'s new job raised ``error``: mark it ``failed`` with
        ``publish_failed`` and release its idempotency key; ``True`` when marked (the caller
        re-raises), ``False`` when a worker already moved it on (it was queued after all)."""
        if self._mark_publish_failed(prepared.record, prepared.request, error):
            return True
        log.warning(
            "publish reported %r but the job is past queued", error, extra={"job_id": prepared.record.job_id}
        )
        return False

    def _mark_publish_failed(self, record: JobRecord, request: Request, error: Exception) -> bool:
        """``queued -> failed`` with ``publish_failed``; ``False`` if the job had moved on."""
        failure = JobError(code=ErrorCode.PUBLISH_FAILED, message=str(error), retryable=True)
        try:
            marked = self.store.transition(
                record.job_id, JobState.FAILED, only_from=(JobState.QUEUED,), error=failure
            )
        except Exception:
            log.exception("could not mark the unpublished job failed", extra={"job_id": record.job_id})
            return True
        if marked and request.idempotency_key is not None:
            self.store.release_idempotency_key(request.requester, request.idempotency_key, record.job_id)
        return marked
