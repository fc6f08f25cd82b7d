"""Problem details stay bounded whatever the request held: paths, rules and messages are cut to
excerpts and at most ``MAX_ERRORS`` entries come back."""

from __future__ import annotations

from api.problems import MAX_ERRORS, field_errors
from core.contracts.bounds import EXCERPT_CHARS, MAX_MESSAGE_CHARS


def test_field_errors_are_bounded_and_keep_path_and_rule() -> None:
    huge = "k" * 100_000
    errors = [
        {"loc": ("attributes", huge, 3), "type": "string_too_long", "msg": "m" * 10_000, "input": huge}
        for _ in range(MAX_ERRORS + 10)
    ]
    bounded = field_errors(errors, prefix=("body",))
    assert len(bounded) == MAX_ERRORS
    first = bounded[0]
    assert first.loc[:2] == ["body", "attributes"] and first.loc[3] == 3
    assert isinstance(first.loc[2], str) and len(first.loc[2]) == EXCERPT_CHARS + 1
    assert first.type == "string_too_long" and len(first.msg) == MAX_MESSAGE_CHARS + 1
