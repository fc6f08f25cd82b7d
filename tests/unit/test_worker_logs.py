"""Worker log lines (``worker.logs``): one JSON object per line with the job fields, which any
value, quotes and newlines included, cannot break or forge."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from worker.logs import CELERY_TRACE_LOGGER, json_formatter, quiet_task_successes, use_json_format


@pytest.fixture
def worker_logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger whose one handler writes to a string, set up as the worker's are."""
    stream = io.StringIO()
    logger = logging.getLogger("worker.pipeline.test")
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    use_json_format(logger)
    yield logger, stream
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_carries_the_job_fields_and_ends_with_the_message(
    worker_logger: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = worker_logger
    extra = {"job_id": "j1", "model": "product_cgan", "version": "1", "attempt": 2, "queue": None}
    logger.info("job %s %s", "j1", "started", extra=extra)
    [line] = lines(stream)
    assert list(line) == ["ts", "level", "logger", "job_id", "model", "version", "attempt", "msg"]
    assert line["level"] == "info" and line["logger"] == "worker.pipeline.test"
    assert (line["job_id"], line["model"], line["version"], line["attempt"]) == ("j1", "product_cgan", "1", 2)
    assert line["msg"] == "job j1 started" and str(line["ts"]).endswith("Z")


def test_quotes_spaces_and_newlines_in_a_value_cannot_forge_a_field_or_a_line(
    worker_logger: tuple[logging.Logger, io.StringIO],
) -> None:
    """The old ``key=value`` format wrote ``reason="a "b" c"`` and the message as is: a value or
    message could read as more fields (``msg=x job_id=other``) or start a new line."""
    logger, stream = worker_logger
    reason = 'refused: "bad" value job_id=forged level=ERROR'
    message = 'callback to "x y" failed\n{"level": "critical", "msg": "forged line"}'
    logger.warning(message, extra={"job_id": "j2", "reason": reason, "event": "job.failed"})
    assert stream.getvalue().count("\n") == 1  # one record, one line
    [line] = lines(stream)
    assert line["reason"] == reason and line["msg"] == message
    assert line["job_id"] == "j2" and line["level"] == "warning" and line["event"] == "job.failed"


def test_a_traceback_is_a_field_of_the_same_line(worker_logger: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = worker_logger
    try:
        raise ValueError('bad "input"')
    except ValueError:
        logger.exception("job failed", extra={"job_id": "j3"})
    [line] = lines(stream)
    assert line["msg"] == "job failed" and line["job_id"] == "j3"
    assert 'ValueError: bad "input"' in str(line["exception"]) and "Traceback" in str(line["exception"])


def test_only_the_job_fields_are_taken_from_a_record() -> None:
    """Other ``extra`` keys (or attributes a library sets on its records) stay out of the line."""
    record = logging.LogRecord("worker.callbacks", logging.INFO, __file__, 1, "sent", None, None)
    record.http_status, record.callback_host, record.headers = (
        200,
        "shop.example",
        {"webhook-signature": "v1,x"},
    )
    line = json.loads(json_formatter().format(record))
    assert line["http_status"] == 200 and line["callback_host"] == "shop.example"
    assert "headers" not in line and "webhook-signature" not in json.dumps(line)


def test_celery_s_line_per_succeeded_task_is_left_out_but_not_its_failures() -> None:
    trace = logging.getLogger(CELERY_TRACE_LOGGER)
    level = trace.level
    try:
        quiet_task_successes()
        assert not trace.isEnabledFor(logging.INFO)  # "Task ... succeeded in ...", "... retry: ..."
        assert trace.isEnabledFor(logging.WARNING) and trace.isEnabledFor(logging.ERROR)
    finally:
        trace.setLevel(level)
