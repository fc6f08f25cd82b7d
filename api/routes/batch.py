"""``POST /v1/listings:batch``: up to ``api_max_batch_items`` (at most 1,000) listings in one call.

Each item is validated on its own and submitted through ``Producer.accept``, the same core as
``POST /v1/listings`` (record, publish, ``job.queued`` callback), which gives back the record it
stored, so a new job is not read back; one bad item does not stop the others. The answer is 200
with a result per item, in order: its ``index``, its ``status`` (202 a new job, 200 an idempotent
replay, 422 refused, 503 could not be queued) and either the ``job`` or the item's ``problem``,
whose field paths start ``["body", "items", <index>, ...]``. An item carrying
``idempotency_key`` is idempotent on its own, as a single submit with that key is.

The batch as a whole is refused (problem+json, nothing submitted) when it is malformed or holds
more items than allowed (422, ``["body", "items"]``, ``too_long``), when its body is over
``api_max_batch_body_bytes`` (413), when the key's daily quota cannot take every item (429: each
item counts one job), or while the listing queue is past its bound (503, ``api.admission``).

The colon in the path is an ordinary path character to Starlette's router (Google's AIP-136
custom-method style); ``/v1/listings:batch`` never matches ``/v1/listings``.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema

from api.admission import admit_listings
from api.keys.model import ApiKey
from api.limits import KeyLimits, key_limits
from api.presign import Presigner
from api.problems import FieldError, Problem, ProblemError, field_errors, problem_responses
from api.routes.deps import job_resource, presigner, producer
from api.routes.resources import Job, ListingSubmission
from api.settings import ApiSettings
from core.contracts.bounds import bounded_errors
from core.contracts.v1 import ListingImageRequest
from core.jobs import IdempotencyConflict, StoreError
from core.publish import PublishError
from producer.client import Producer

router = APIRouter(prefix="/v1", tags=["batch"])

#: the most items a batch may hold, whatever the settings say
MAX_BATCH_ITEMS: Final = 1000
#: the path of the route (also where ``api.limits.BodySizeLimit`` allows the bigger body)
BATCH_PATH: Final = "/v1/listings:batch"


class ListingBatch(BaseModel):
    """Listings to submit in one call; each item is a ``POST /v1/listings`` body."""

    model_config = ConfigDict(extra="forbid")

    # items are validated one by one in the route (a bad one is that item's problem), so the
    # model takes any JSON value and the document shows what each item must be
    items: Annotated[
        list[Any],
        Field(min_length=1, max_length=MAX_BATCH_ITEMS),
        WithJsonSchema(
            {
                "type": "array",
                "items": {"$ref": "#/components/schemas/ListingSubmission"},
                "minItems": 1,
                "maxItems": MAX_BATCH_ITEMS,
            }
        ),
    ]


class BatchItemResult(BaseModel):
    """What became of one item."""

    index: int = Field(description="the item's position in ``items``, from 0")
    status: int = Field(description="202 a new job, 200 an idempotent replay, 422 refused, 503 not queued")
    job: Job | None = Field(default=None, description="the job, for 202 and 200")
    problem: Problem | None = Field(default=None, description="why the item was not submitted")


class BatchResult(BaseModel):
    """A result per item, in the items' order."""

    accepted: int = Field(description="items that have a job (new or replayed)")
    refused: int = Field(description="items that have a problem")
    results: list[BatchItemResult]


def _settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


def _item_problem(
    index: int, status: int, title: str, detail: str, *, kind: str, errors: list[FieldError] | None = None
) -> BatchItemResult:
    problem = Problem(
        type=f"https://atelier.dev/problems/{kind}", title=title, status=status, detail=detail, errors=errors
    )
    return BatchItemResult(index=index, status=status, problem=problem)


def _refused(index: int, errors: list[FieldError]) -> BatchItemResult:
    return _item_problem(
        index, 422, "Unprocessable Content", "the item breaks a rule", kind="validation", errors=errors
    )


def _validated(index: int, item: Any, key: ApiKey) -> ListingImageRequest | BatchItemResult:
    """The item as a v1 request with the key's requester, or its 422 result."""
    where = ("body", "items", index)
    try:
        with bounded_errors():
            body = ListingSubmission.model_validate(item)
            if body.requester is not None and body.requester != key.requester:
                message = "requester must be the API key's requester (or left out)"
                return _refused(
                    index, [FieldError(loc=[*where, "requester"], type="requester_mismatch", msg=message)]
                )
            return ListingImageRequest.model_validate(
                {**body.model_dump(mode="json"), "requester": key.requester}
            )
    except ValidationError as error:
        return _refused(index, field_errors(error.errors(include_url=False), prefix=where))


def _submitted(
    index: int, request: ListingImageRequest, submitter: Producer, signer: Presigner
) -> BatchItemResult:
    try:
        record, created = submitter.accept(request)
    except IdempotencyConflict as conflict:
        result = _item_problem(
            index,
            422,
            "Idempotency key reused",
            "this idempotency_key was used with another request",
            kind="idempotency-key-reused",
        )
        assert result.problem is not None
        result.problem.job_id = conflict.job_id
        return result
    except (PublishError, StoreError) as error:
        return _item_problem(
            index, 503, "Service Unavailable", f"could not queue the job: {error}", kind="unavailable"
        )
    except ValidationError as error:  # a condition the model version does not know (Producer.prepare)
        return _refused(index, field_errors(error.errors(include_url=False), prefix=("body", "items", index)))
    return BatchItemResult(index=index, status=202 if created else 200, job=job_resource(record, signer))


@router.post(
    "/listings:batch",
    response_model=BatchResult,
    response_model_exclude_none=True,
    responses=problem_responses(401, 403, 413, 422, 429, 503),
    summary="Submit up to 1,000 listings in one call",
)
def submit_listing_batch(
    batch: ListingBatch,
    key: ApiKey = Depends(admit_listings),  # noqa: B008  (holds the submit-listings scope)
    submitter: Producer = Depends(producer),  # noqa: B008
    signer: Presigner = Depends(presigner),  # noqa: B008
    limits: KeyLimits = Depends(key_limits),  # noqa: B008
    settings: ApiSettings = Depends(_settings),  # noqa: B008
) -> BatchResult:
    """Validate and queue each listing on its own; a result per item (a job or a problem)."""
    if len(batch.items) > settings.api_max_batch_items:
        message = f"a batch holds at most {settings.api_max_batch_items} items"
        raise ProblemError(
            422,
            "Unprocessable Content",
            message,
            kind="validation",
            errors=[FieldError(loc=["body", "items"], type="too_long", msg=message)],
        )
    limits.take_quota(key, cost=len(batch.items))
    results: list[BatchItemResult] = []
    for index, item in enumerate(batch.items):
        checked = _validated(index, item, key)
        results.append(
            checked if isinstance(checked, BatchItemResult) else _submitted(index, checked, submitter, signer)
        )
    accepted = sum(1 for result in results if result.job is not None)
    return BatchResult(accepted=accepted, refused=len(results) - accepted, results=results)
