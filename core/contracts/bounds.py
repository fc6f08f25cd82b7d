"""Bounded validation errors: a refusal quotes at most a short excerpt of what it refuses.

A request may carry a megabyte in any field, a dict key or an unknown field's name. pydantic
puts such a key into the error's ``loc`` and some messages repeat the input, so without a bound
the error (and every log line and CLI message made from it) would be as large as the input.
:func:`bounded` shortens each path part, message and input of a ``ValidationError`` and keeps
the error types, so callers still read "which field, which rule".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

#: characters of a caller's value an error quotes before cutting it off with "…"
EXCERPT_CHARS: Final = 32
#: the longest message one validation error keeps (the category list is about 130 characters)
MAX_MESSAGE_CHARS: Final = 240
#: what marks a value cut short
ELLIPSIS: Final = "…"


def excerpt(value: object, *, limit: int = EXCERPT_CHARS) -> str:
    """``value`` as text, cut to ``limit`` characters plus "…" when longer."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + ELLIPSIS


def quoted(value: object) -> str:
    """An excerpt of ``value`` in quotes, for a validator's message (``'navyyy…'``)."""
    return repr(excerpt(value))


def is_bounded(error: ValidationError) -> bool:
    """Whether every path part, message and string input of ``error`` is within its bound."""
    for item in error.errors(include_url=False):
        if any(isinstance(part, str) and len(part) > EXCERPT_CHARS for part in item["loc"]):
            return False
        if len(item["msg"]) > MAX_MESSAGE_CHARS:
            return False
        if isinstance(item["input"], str) and len(item["input"]) > EXCERPT_CHARS:
            return False
    return True


def bounded(error: ValidationError) -> ValidationError:
    """``error`` itself when it is short, else the same errors (locations and types kept) with
    each path part and string input cut to :data:`EXCERPT_CHARS` and each message to
    :data:`MAX_MESSAGE_CHARS`."""
    if is_bounded(error):
        return error
    details: list[InitErrorDetails] = []
    for item in error.errors(include_url=False):
        loc = tuple(excerpt(part) if isinstance(part, str) else part for part in item["loc"])
        value: Any = item["input"]
        details.append(
            {
                # without a context pydantic uses the message as it is (no placeholders filled)
                "type": PydanticCustomError(item["type"], excerpt(item["msg"], limit=MAX_MESSAGE_CHARS)),
                "loc": loc,
                "input": excerpt(value) if isinstance(value, str) else value,
            }
        )
    return ValidationError.from_exception_data(error.title, details)


@contextmanager
def bounded_errors() -> Iterator[None]:
    """Re-raise a ``ValidationError`` from the block as :func:`bounded` makes it."""
    try:
        yield
    except ValidationError as error:
        raise bounded(error) from None
