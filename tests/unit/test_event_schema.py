"""The typed schema of ``JobEvent.data`` (``core.contracts.jobs``) and the OpenAPI document's
additions (``api.openapi``): each event type's ``data`` has its own published schema, every event
the core builds fits it (as JSON Schema, in ``docs/schemas`` and in ``docs/openapi.json``), the
wire format is unchanged (``data`` still reads as a dict, unknown fields and newer error codes
included), and the document's links name real operations and parameters."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from api.cli import openapi_text
from api.openapi import JOB_LINKS, JOB_OPERATIONS
from core.contracts.codes import ErrorCode
from core.contracts.jobs import (
    EVENT_FOR_STATE,
    GateCheck,
    GateReport,
    ImageDecision,
    ImageReview,
    JobApprovedData,
    JobCanceledData,
    JobError,
    JobEvent,
    JobEventType,
    JobFailedData,
    JobKind,
    JobQueuedData,
    JobRecord,
    JobRejectedData,
    JobReviewRequiredData,
    JobStartedData,
    JobState,
    JobSucceededData,
    StoredImage,
)
from core.jobs.events import build_event

REPO = Path(__file__).resolve().parents[2]
CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
#: the model each event type's data is
DATA_MODEL = {
    JobEventType.QUEUED: JobQueuedData,
    JobEventType.STARTED: JobStartedData,
    JobEventType.SUCCEEDED: JobSucceededData,
    JobEventType.FAILED: JobFailedData,
    JobEventType.CANCELED: JobCanceledData,
    JobEventType.REVIEW_REQUIRED: JobReviewRequiredData,
    JobEventType.APPROVED: JobApprovedData,
    JobEventType.REJECTED: JobRejectedData,
}
#: the states whose records hold stored images, and the decision on them
WITH_IMAGES = {
    JobState.SUCCEEDED: None,
    JobState.AWAITING_REVIEW: ImageDecision.PENDING,
    JobState.APPROVED: ImageDecision.APPROVED,
    JobState.REJECTED: ImageDecision.REJECTED,
}


def record(state: JobState) -> JobRecord:
    """A try-on record in ``state`` with what the worker records on the way there."""
    ended = state.terminal
    made = state in WITH_IMAGES
    decision = WITH_IMAGES.get(state)
    return JobRecord(
        job_id="3f2a9c0d4b5e6f708192a3b4c5d6e7f8",
        kind=JobKind.TRYON,
        state=state,
        requester="shop-a",
        subject="shopper-7",
        created_at=CREATED,
        started_at=CREATED + timedelta(seconds=1) if state is not JobState.QUEUED else None,
        finished_at=CREATED + timedelta(seconds=2) if ended else None,
        attempts=1 if state in (JobState.RUNNING, JobState.SUCCEEDED, JobState.FAILED) else 0,
        model="tryon-cvae" if made else None,
        model_version="3" if made else None,
        seed=7 if made else None,
        results=[
            StoredImage(
                variant=0,
                bucket="atelier",
                key="tryon/x/0.png",
                content_type="image/png",
                url="https://s3.test/atelier/tryon/x/0.png?sig",
                url_expires_at=CREATED + timedelta(hours=1),
                gate=GateReport(
                    passed=True, checks=[GateCheck(name="blank", score=0.4, threshold=0.1, passed=True)]
                ),
                review=None if decision is None else ImageReview(status=decision, reason="r"),
            )
        ]
        if made
        else [],
        error=JobError(code=ErrorCode.INFERENCE_FAILED, message="m", retryable=False)
        if state is JobState.FAILED
        else None,
    )


def validator(schema: dict[str, Any], document: dict[str, Any] | None = None) -> Draft202012Validator:
    """A validator of ``schema``, its ``#/components/...`` references resolved in ``document``."""
    if document is not None:
        schema = {**schema, "components": document["components"]}
    return Draft202012Validator(schema)


def openapi() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(openapi_text())
    return document


EVENTS = [build_event(record(state), event) for state, event in EVENT_FOR_STATE.items()]


@pytest.mark.parametrize("event", EVENTS, ids=lambda event: event.type.value)
def test_every_built_event_fits_its_types_data_model(event: JobEvent) -> None:
    typed = event.typed_data()
    assert type(typed) is DATA_MODEL[event.type]
    assert typed.model_dump(mode="json", exclude_unset=True) == event.data  # nothing lost or added


@pytest.mark.parametrize("event", EVENTS, ids=lambda event: event.type.value)
def test_every_built_event_validates_against_the_published_schemas(event: JobEvent) -> None:
    body = json.loads(event.model_dump_json())
    committed = json.loads((REPO / "docs" / "schemas" / "JobEvent.json").read_text(encoding="utf-8"))
    validator(committed).validate(body)
    document = openapi()
    validator({"$ref": "#/components/schemas/JobEvent"}, document).validate(body)


def test_the_schema_refuses_data_another_event_type_would_carry() -> None:
    document = openapi()
    check = validator({"$ref": "#/components/schemas/JobEvent"}, document)
    succeeded = json.loads(build_event(record(JobState.SUCCEEDED), JobEventType.SUCCEEDED).model_dump_json())
    without_results = {k: v for k, v in succeeded["data"].items() if k != "results"}
    assert not check.is_valid({**succeeded, "data": without_results})
    started = json.loads(build_event(record(JobState.RUNNING), JobEventType.STARTED).model_dump_json())
    assert not check.is_valid({**started, "data": {**started["data"], "attempts": 0}})


def test_data_is_one_schema_per_event_type_told_apart_by_state() -> None:
    data = openapi()["components"]["schemas"]["JobEvent"]["properties"]["data"]
    mapping = data["discriminator"]["mapping"]
    assert data["discriminator"]["propertyName"] == "state"
    assert {state: ref.rsplit("/", 1)[1] for state, ref in mapping.items()} == {
        state.value: DATA_MODEL[event].__name__ for state, event in EVENT_FOR_STATE.items()
    }


def test_a_typed_view_refuses_a_state_that_is_not_its_event_types() -> None:
    queued = build_event(record(JobState.QUEUED), JobEventType.QUEUED)
    mislabelled = queued.model_copy(update={"type": JobEventType.CANCELED})
    with pytest.raises(ValueError, match="cannot report the state 'queued'"):
        mislabelled.typed_data()


def test_the_wire_format_is_unchanged_data_reads_as_a_dict_with_unknown_fields_and_codes() -> None:
    """An older receiver (dict access) reads what a newer sender sends; only the strict typed view
    refuses an error code this release does not know."""
    failed = json.loads(build_event(record(JobState.FAILED), JobEventType.FAILED).model_dump_json())
    failed["data"]["error"]["code"] = "a_code_added_later"
    failed["data"]["a_field_added_later"] = 1
    event = JobEvent.model_validate(failed)
    assert event.data["error"]["code"] == "a_code_added_later" and event.data["a_field_added_later"] == 1
    assert json.loads(event.model_dump_json()) == failed
    with pytest.raises(ValidationError):
        event.typed_data()


def test_the_event_stream_response_points_each_frame_at_the_job_event_component() -> None:
    document = openapi()
    stream = document["paths"]["/v1/jobs/{job_id}/events"]["get"]["responses"]["200"]["content"]
    assert stream == {"text/event-stream": {"schema": {"$ref": "#/components/schemas/JobEventFrame"}}}
    frame = document["components"]["schemas"]["JobEventFrame"]["properties"]
    assert frame["data"]["contentSchema"] == {"$ref": "#/components/schemas/JobEvent"}
    assert frame["event"]["$ref"] == "#/components/schemas/JobEventType"


def test_every_link_names_an_operation_and_a_parameter_it_has() -> None:
    document = openapi()
    by_id = {
        operation["operationId"]: operation
        for path in document["paths"].values()
        for operation in path.values()
    }
    links = [
        (status, name, link)
        for path in document["paths"].values()
        for operation in path.values()
        for status, response in operation["responses"].items()
        for name, link in response.get("links", {}).items()
    ]
    assert len(links) >= sum(len(link.statuses) * (len(link.targets) - 1) for link in JOB_LINKS)
    for status, name, link in links:
        assert status[0] == "2", name
        target = by_id[link["operationId"]]
        declared = {f"{p['in']}.{p['name']}" for p in target.get("parameters", [])}
        assert set(link["parameters"]) <= declared, (name, link)


def test_a_submit_links_to_reading_cancelling_following_and_erasing_its_job() -> None:
    paths = openapi()["paths"]
    for status in ("202", "200"):
        tryon = paths["/v1/tryons"]["post"]["responses"][status]["links"]
        assert set(tryon) == set(JOB_OPERATIONS)
        listing = paths["/v1/listings"]["post"]["responses"][status]["links"]
        assert set(listing) == set(JOB_OPERATIONS) - {"EraseTryOn"}
        for link in tryon.values():
            assert link["parameters"] == {"path.job_id": "$response.body#/id"}


def test_review_events_link_approved_images_only() -> None:
    approved = record(JobState.APPROVED)
    kept = approved.results[0]
    assert kept.gate is not None
    decision = ImageReview(status=ImageDecision.REJECTED, reason="wrong colour")
    refused = kept.model_copy(update={"variant": 1, "review": decision})
    approved = approved.model_copy(update={"results": [kept, refused]})

    data = build_event(approved, JobEventType.APPROVED).data
    assert [image["variant"] for image in data["results"]] == [0] and data["results"][0]["url"]
    assert data["rejected"] == [
        {
            "variant": 1,
            "gate": kept.gate.model_dump(mode="json"),
            "review": decision.model_dump(mode="json"),
        }
    ]
    for state, event in [
        (JobState.AWAITING_REVIEW, JobEventType.REVIEW_REQUIRED),
        (JobState.REJECTED, JobEventType.REJECTED),
    ]:
        images = build_event(record(state), event).data["images"]
        assert images and all("url" not in image for image in images)
