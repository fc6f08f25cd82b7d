"""RFC 9457 problem details: every error the API answers is ``application/problem+json``.

A problem has ``type`` (a URI naming the kind of problem; ``about:blank`` for plain HTTP
statuses), ``title``, ``status``, ``detail`` and, for a refused request, ``errors``: one entry
per broken rule with pydantic's field path (``loc``), rule (``type``) and message (``msg``).
Each entry is bounded as the CLI's (``core.contracts.bounds``): a megabyte in a field, a key
or a query parameter never comes back whole, and at most :data:`MAX_ERRORS` entries come back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from pydantic_core import ErrorDetails

from core.contracts.bounds import MAX_MESSAGE_CHARS, excerpt

#: the media type of every error response (RFC 9457 section 3)
PROBLEM_MEDIA_TYPE: Final = "application/problem+json"
#: where the problem types below are documented
PROBLEM_BASE: Final = "https://atelier.dev/problems/"
#: most validation errors one problem lists (a request can break a rule per field)
MAX_ERRORS: Final = 32


class FieldError(BaseModel):
    """One broken rule of a refused request."""

    loc: list[str | int] = Field(
        description="where: 'body', 'query', 'header' or 'path', then the field path"
    )
    type: str = Field(
        description="pydantic's rule name, e.g. 'missing', 'string_too_long', 'extra_forbidden'"
    )
    msg: str = Field(description=f"what the rule says, at most {MAX_MESSAGE_CHARS} characters")


class Problem(BaseModel):
    """RFC 9457 problem details (what every 4xx and 5xx answer holds)."""

    type: str = Field(default="about:blank", description="URI naming the kind of problem")
    title: str = Field(description="short summary of the kind of problem")
    status: int = Field(description="the HTTP status code")
    detail: str | None = Field(default=None, description="what went wrong with this request")
    instance: str | None = Field(default=None, description="the path of the request")
    errors: list[FieldError] | None = Field(
        default=None, description=f"each broken rule of a refused request (at most {MAX_ERRORS})"
    )
    job_id: str | None = Field(default=None, description="the job concerned, where one is")


class ProblemError(Exception):
    """Raise anywhere in a route to answer with this problem."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        kind: str | None = None,
        headers: Mapping[str, str] | None = None,
        job_id: str | None = None,
        errors: Sequence[FieldError] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.problem = Problem(
            type=PROBLEM_BASE + kind if kind else "about:blank",
            title=title,
            status=status,
            detail=detail,
            job_id=job_id,
            errors=list(errors) if errors is not None else None,
        )
        self.headers = dict(headers or {})


def field_errors(
    errors: Iterable[ErrorDetails | Mapping[str, Any]], *, prefix: Sequence[str | int] = ()
) -> list[FieldError]:
    """pydantic's errors as bounded :class:`FieldError` entries (at most :data:`MAX_ERRORS`)."""
    bounded: list[FieldError] = []
    for item in errors:
        if len(bounded) == MAX_ERRORS:
            break
        loc = [*prefix, *item.get("loc", ())]
        bounded.append(
            FieldError(
                loc=[part if isinstance(part, int) else excerpt(str(part)) for part in loc],
                type=excerpt(str(item.get("type", "invalid"))),
                msg=excerpt(str(item.get("msg", "")), limit=MAX_MESSAGE_CHARS),
            )
        )
    return bounded


def problem_response(
    problem: Problem, *, instance: str | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """``problem`` as an ``application/problem+json`` response."""
    if instance is not None and problem.instance is None:
        problem = problem.model_copy(update={"instance": excerpt(instance, limit=256)})
    return JSONResponse(
        problem.model_dump(mode="json", exclude_none=True),
        status_code=problem.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=dict(headers or {}),
    )


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` entries for these error statuses: each a :class:`Problem` as
    ``application/problem+json``."""
    return {
        status: {
            "model": Problem,
            "description": DESCRIPTIONS.get(status, "error"),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


#: what each error status means on this API (the OpenAPI descriptions)
DESCRIPTIONS: Final = {
    400: "malformed request (not JSON)",
    401: "no key, or a key that is unknown or revoked",
    403: "the key lacks the scope this route needs, or the browser Origin is not one of the key's "
    "CORS origins (type origin-not-allowed)",
    404: "no such job for this key's requester",
    409: "the job cannot change that way now",
    413: "the body is over the configured size",
    415: "the body is not application/json",
    422: "the request breaks a rule (errors name each field and rule), or reuses an idempotency key",
    429: "over the key's request rate or daily job quota; retry after Retry-After seconds",
    500: "an error on our side",
    503: "a service behind the API (Redis, the broker) is unavailable, or the listing queue is full; "
    "retry after Retry-After seconds",
}
