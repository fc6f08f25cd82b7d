"""The published OpenAPI document: FastAPI's, plus what FastAPI cannot say from the routes alone.

- Error responses are ``application/problem+json`` only (FastAPI adds an ``application/json``
  twin to every documented response).
- Models no route returns as JSON but clients read all the same are components too: the
  :class:`~core.contracts.jobs.JobEvent` of each callback and each SSE frame, with its ``data``
  one schema per event type, and the frame itself (``api.routes.events.JobEventFrame``, the
  stream's schema).
- Links (OpenAPI 3.1 section 4.8.20): what a response's job id leads to. A submit's 202 links to
  reading, cancelling, following and (a try-on) erasing that job, and so on (:data:`JOB_LINKS`),
  so a client generator, a reader and schemathesis's stateful phase see the API's state graph
  instead of inferring it from ``Location``. Targets are named by ``operationId``, looked up here
  from method and path: a renamed route function cannot leave a link dangling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from fastapi import FastAPI
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api.problems import PROBLEM_MEDIA_TYPE
from api.routes.events import JobEventFrame
from core.contracts.jobs import JobEvent

#: where the document's components live (the ``$ref`` prefix of every schema)
COMPONENTS_REF: Final = "#/components/schemas/{model}"
#: models published as components though no route body or JSON response names them: the event
#: of a callback and of a stream frame, and the frame (the stream's schema names it)
EXTRA_MODELS: Final[tuple[type[BaseModel], ...]] = (JobEvent, JobEventFrame)


@dataclass(frozen=True)
class Operation:
    """An operation of the document, by method and path template."""

    method: str
    path: str


@dataclass(frozen=True)
class JobLink:
    """A link from ``status`` of ``source`` to the operations ``targets`` name (see
    :data:`JOB_OPERATIONS`), passing the job id found at ``job_id`` (a runtime expression)."""

    source: Operation
    statuses: tuple[str, ...]
    job_id: str
    targets: tuple[str, ...]


#: what a job id leads to: link name -> (operation, what the link is for)
JOB_OPERATIONS: Final = {
    "GetJob": (Operation("get", "/v1/jobs/{job_id}"), "read the job (state, outputs)"),
    "CancelJob": (Operation("post", "/v1/jobs/{job_id}/cancel"), "cancel the job while it is queued"),
    "FollowJobEvents": (Operation("get", "/v1/jobs/{job_id}/events"), "follow its state changes (SSE)"),
    "EraseTryOn": (Operation("delete", "/v1/tryons/{job_id}"), "erase the try-on and its images"),
}
_ANY_JOB = ("GetJob", "CancelJob", "FollowJobEvents", "EraseTryOn")
_LISTING_JOB = ("GetJob", "CancelJob", "FollowJobEvents")  # a listing job is never erased

#: every response that names a job, and where its id is
JOB_LINKS: Final = (
    JobLink(Operation("post", "/v1/listings"), ("202", "200"), "$response.body#/id", _LISTING_JOB),
    JobLink(Operation("post", "/v1/tryons"), ("202", "200"), "$response.body#/id", _ANY_JOB),
    JobLink(
        Operation("post", "/v1/listings:batch"), ("200",), "$response.body#/results/0/job/id", _LISTING_JOB
    ),
    JobLink(Operation("get", "/v1/jobs"), ("200",), "$response.body#/jobs/0/id", _ANY_JOB),
    JobLink(Operation("get", "/v1/jobs/{job_id}"), ("200",), "$response.body#/id", _ANY_JOB),
    JobLink(Operation("post", "/v1/jobs/{job_id}/cancel"), ("200",), "$response.body#/id", _ANY_JOB),
)
#: the next page of a listing
NEXT_PAGE: Final = Operation("get", "/v1/jobs")


def document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document (built once, then cached on the app as FastAPI does)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    built = FastAPI.openapi(app)
    _problems_only(built)
    _add_components(built, EXTRA_MODELS)
    _add_links(built)
    app.openapi_schema = built
    return built


def _problems_only(document: dict[str, Any]) -> None:
    for path in document.get("paths", {}).values():
        for operation in path.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if status[0] in "45" and PROBLEM_MEDIA_TYPE in content:
                    content.pop("application/json", None)


def _add_components(document: dict[str, Any], models: tuple[type[BaseModel], ...]) -> None:
    """Add ``models`` (and the schemas they refer to) to the components. A name FastAPI already
    published must be the same schema: two different ``JobError``\\ s would be a bug to surface."""
    _, definitions = models_json_schema(
        [(model, "serialization") for model in models], ref_template=COMPONENTS_REF
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in definitions.get("$defs", {}).items():
        if _without_null_defaults(schemas.setdefault(name, schema)) != _without_null_defaults(schema):
            raise ValueError(f"two different schemas are both named {name!r} in the OpenAPI document")
    document["components"]["schemas"] = dict(sorted(schemas.items()))


def _without_null_defaults(schema: Any) -> Any:
    """``schema`` without ``"default": null``: FastAPI drops those from the schemas it publishes
    (it serializes the document with ``exclude_none``), pydantic's own keep them."""
    if isinstance(schema, dict):
        return {
            key: _without_null_defaults(value)
            for key, value in schema.items()
            if not (key == "default" and value is None)
        }
    if isinstance(schema, list):
        return [_without_null_defaults(value) for value in schema]
    return schema


def _operation(document: dict[str, Any], operation: Operation) -> dict[str, Any]:
    try:
        found: dict[str, Any] = document["paths"][operation.path][operation.method]
    except KeyError:
        raise ValueError(
            f"a link names {operation.method.upper()} {operation.path}, which the API lacks"
        ) from None
    return found


def _add_links(document: dict[str, Any]) -> None:
    for link in JOB_LINKS:
        source = _operation(document, link.source)
        for status in link.statuses:
            links = source["responses"][status].setdefault("links", {})
            for name in link.targets:
                target, purpose = JOB_OPERATIONS[name]
                if target == link.source:
                    continue  # a read links to the others, not to itself
                links[name] = {
                    "operationId": _operation(document, target)["operationId"],
                    "parameters": {"path.job_id": link.job_id},
                    "description": f"{purpose}: the job id is {link.job_id}",
                }
    listing = _operation(document, NEXT_PAGE)
    listing["responses"]["200"].setdefault("links", {})["NextPage"] = {
        "operationId": listing["operationId"],
        "parameters": {
            "query.cursor": "$response.body#/next_cursor",
            **{f"query.{name}": f"$request.query.{name}" for name in ("subject", "state", "limit")},
        },
        "description": "the next page (no link to follow when next_cursor is absent: the last page)",
    }
