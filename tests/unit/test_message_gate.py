"""The worker's gate on raw message bytes, the reading of dead letters, and the size limit."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.contracts.codes import ErrorCode
from core.dead_letters import REASON_HEADER, dead_letter_headers, describe, replay_headers
from core.publish import MessageTooLarge, Publisher, message_size
from core.settings import AtelierSettings
from core.topology import CALLBACK_TASK, LISTING_TASK, TRYON_TASK
from tests.examples import LISTING_EXAMPLE as VALID_LISTING
from worker.gate import inspect_message

KNOWN = {LISTING_TASK, TRYON_TASK, CALLBACK_TASK}
JOB = "a" * 32
EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def body(kwargs: Any, args: Any = ()) -> bytes:
    return json.dumps([list(args), kwargs, EMBED]).encode()


def check(
    raw: bytes | str,
    headers: Any = None,
    content_type: str | None = "application/json",
    max_bytes: int = 10_000,
) -> tuple[str, str | None] | None:
    headers = {"task": LISTING_TASK, "id": JOB} if headers is None else headers
    poison = inspect_message(raw, headers, content_type, known_tasks=KNOWN, max_bytes=max_bytes)
    return None if poison is None else (poison.code, poison.job_id)


def test_a_valid_job_message_and_a_valid_callback_message_pass() -> None:
    assert check(body({"job_id": JOB, "request": VALID_LISTING})) is None
    callback = {"task": CALLBACK_TASK, "id": f"{JOB}.job.succeeded"}
    assert check(body({"job_id": JOB, "event": "job.succeeded"}), callback) is None


@pytest.mark.parametrize(
    ("raw", "headers", "content_type", "expected"),
    [
        (b"x" * 10_001, None, "application/json", ("message_too_large", None)),
        (b"{}", {}, "application/json", ("not_a_task_message", None)),
        (b"{}", {"task": "atelier.nope", "id": JOB}, "application/json", ("unknown_task", None)),
        (b"\x80\x81", None, "application/json", ("not_json", JOB)),
        (b"{not json", None, "application/json", ("not_json", JOB)),
        (b"[]", None, "application/x-python-serialize", ("unsupported_content_type", JOB)),
        (b'{"a": 1}', None, "application/json", ("invalid_arguments", JOB)),
        (body({"job_id": JOB}), None, "application/json", ("invalid_arguments", JOB)),
        (body({"job_id": JOB, "request": []}), None, "application/json", ("invalid_arguments", JOB)),
        (
            body({"job_id": JOB, "request": {}}, args=[1]),
            None,
            "application/json",
            ("invalid_arguments", JOB),
        ),
        (
            body({"job_id": 5, "event": "x"}),
            {"task": CALLBACK_TASK},
            "application/json",
            ("invalid_arguments", None),
        ),
    ],
)
def test_each_kind_of_poison_message_is_named(
    raw: bytes, headers: Any, content_type: str, expected: tuple[str, str | None]
) -> None:
    assert check(raw, headers, content_type) == expected


def test_a_wrong_schema_version_is_an_invalid_request_naming_the_field_and_the_job_of_the_kwargs() -> None:
    other = "b" * 32
    request = {**VALID_LISTING, "schema_version": "2"}
    poison = inspect_message(
        body({"job_id": other, "request": request}),
        {"task": LISTING_TASK, "id": JOB},
        "application/json",
        known_tasks=KNOWN,
        max_bytes=10_000,
    )
    assert poison is not None and (poison.code, poison.job_id) == ("invalid_request", other)
    assert "schema_version" in poison.reason and poison.request == request


@given(raw=st.binary(max_size=300), task=st.sampled_from([LISTING_TASK, TRYON_TASK, CALLBACK_TASK, "x"]))
def test_any_bytes_give_a_clear_answer_and_never_raise(raw: bytes, task: str) -> None:
    poison = inspect_message(raw, {"task": task}, "application/json", known_tasks=KNOWN, max_bytes=200)
    assert poison is not None and poison.code and len(poison.reason) <= 500


@given(kwargs=st.dictionaries(st.text(max_size=10), st.none() | st.integers() | st.text(max_size=20)))
def test_any_json_kwargs_give_a_clear_answer_and_never_raise(kwargs: dict[str, Any]) -> None:
    poison = inspect_message(
        body(kwargs), {"task": LISTING_TASK}, "application/json", known_tasks=KNOWN, max_bytes=10_000
    )
    assert poison is not None and poison.code in {"invalid_arguments", "invalid_request"}


def test_a_worker_refused_dead_letter_reads_its_reason_queue_job_and_time() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    headers = dead_letter_headers(
        {"task": LISTING_TASK, "id": JOB},
        code=ErrorCode.NOT_JSON,
        detail="bad",
        queue="atelier.listing",
        job_id=JOB,
        now=at,
    )
    letter = describe(b"{", headers, {"message_id": "m-1"})
    assert (letter.message_id, letter.task, letter.job_id, letter.reason) == (
        "m-1",
        LISTING_TASK,
        JOB,
        "not_json: bad",
    )
    assert (letter.queue, letter.death_count, letter.first_death_at) == ("atelier.listing", 1, at)
    assert letter.code is ErrorCode.NOT_JSON


def test_a_rabbitmq_dead_letter_reads_x_death_and_gets_a_body_digest_id_without_ids() -> None:
    first, last = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    headers = {
        "x-death": [
            {"queue": "atelier.tryon", "reason": "rejected", "count": 1, "time": last},
            {"queue": "atelier.listing", "reason": "delivery_limit", "count": 2, "time": first},
        ],
        "x-first-death-reason": "delivery_limit",
        "x-first-death-queue": "atelier.listing",
        "task": "atelier.no.such",
        "id": "n1",
    }
    letter = describe(b"body", headers, {})
    assert letter.reason == "delivery_limit (by RabbitMQ)" and letter.queue == "atelier.listing"
    assert (letter.death_count, letter.first_death_at, letter.job_id) == (3, first, None)
    assert letter.message_id == "n1"
    assert describe(b"body", {}, {}).message_id.startswith("sha256:")
    assert describe(b"body", {"x-death": "odd"}, {}).reason == "unknown (by RabbitMQ)"


def test_a_replay_drops_every_death_header_and_keeps_the_task_headers() -> None:
    headers = dead_letter_headers(
        {"task": LISTING_TASK, "id": JOB}, code=ErrorCode.NOT_JSON, detail="r", queue="q", job_id=JOB
    )
    headers.update({"x-death": [], "x-first-death-queue": "q", "x-delivery-count": 3})
    assert REASON_HEADER in headers
    assert replay_headers(headers) == {"task": LISTING_TASK, "id": JOB}


def test_the_producer_refuses_a_message_over_the_size_limit_before_connecting() -> None:
    settings = AtelierSettings(
        _env_file=None, broker_url="amqp://nobody:x@127.0.0.1:1//", max_message_bytes=1024
    )  # type: ignore[call-arg]
    publisher = Publisher(settings)
    request = {**VALID_LISTING, "attributes": {**VALID_LISTING["attributes"], "style": {"k": "v" * 2000}}}
    assert message_size({"job_id": JOB, "request": request}) > 1024
    with pytest.raises(MessageTooLarge) as raised:
        publisher.publish(LISTING_TASK, JOB, request)
    assert raised.value.delivered_maybe is False and "1024-byte limit" in str(raised.value)


def test_the_size_limit_is_a_setting_with_a_floor() -> None:
    assert AtelierSettings(_env_file=None).max_message_bytes == 256 * 1024  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        AtelierSettings(_env_file=None, max_message_bytes=10)  # type: ignore[call-arg]
