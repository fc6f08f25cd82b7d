"""Worker log lines as JSON, one object per line, rendered by structlog.

::

    {"ts": "2026-11-27T10:12:01.123456Z", "level": "info", "logger": "worker.pipeline",
     "job_id": "3f2a", "attempt": 1, "msg": "job 3f2a started"}

(one line in the log). The worker modules log through the standard library with the job fields
(``JOB_FIELDS``) in ``extra``; structlog's ``ProcessorFormatter`` renders those records, so a
job's lines carry its id, model, version and attempt wherever they are known, and a value with
quotes, spaces, ``=`` or newlines is escaped by the JSON encoder: every line parses one way only
(``json.loads``). An exception's traceback is the ``exception`` field.

Celery's own line for each task that returned (``celery.app.trace`` at INFO, ``Task ...
succeeded in ...``) is left out (:func:`quiet_task_successes`): a job's ``started`` and ``succeeded``
lines, and a callback's outcome, say it already, and at one line per job state change the worker
writes three lines a listing job (Celery's ``received``, ``started``, ``succeeded``) instead of
four. Failures and rejections are still Celery's WARNING and ERROR lines; retries are logged by
``worker.tasks``.

Secrets never reach a record: settings hold them as ``SecretStr``, and errors are built from
codes and server messages, never from credentials (``tests/integration/test_security.py``
searches a worker's whole log for them).
"""

from __future__ import annotations

import logging

import structlog
from structlog.typing import EventDict, WrappedLogger

#: record attributes (from ``extra``) written as fields when present, in this order
JOB_FIELDS = (
    "job_id",
    "model",
    "version",
    "attempt",
    "event",
    "message_id",
    "callback_host",
    "http_status",
    "reason",
    "queue",
)
#: the field that holds the log message (``event`` is taken: it is a callback's event type)
MESSAGE_FIELD = "msg"
#: Celery's logger of task outcomes: success and retry at INFO, rejection WARNING, failure ERROR
CELERY_TRACE_LOGGER = "celery.app.trace"


def _message_last(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Drop unknown (``None``) fields and put the message after what it is about (a traceback,
    ``exception``, follows it)."""
    message = event_dict.pop(MESSAGE_FIELD)
    fields = {key: value for key, value in event_dict.items() if value is not None}
    return {**fields, MESSAGE_FIELD: message}


def json_formatter() -> logging.Formatter:
    """A ``logging`` formatter that renders any record as one JSON line (see the module docs)."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.processors.EventRenamer(MESSAGE_FIELD),
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ExtraAdder(allow=JOB_FIELDS),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _message_last,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    )


def use_json_format(logger: logging.Logger) -> None:
    """Give every handler of ``logger`` the JSON formatter."""
    for handler in logger.handlers:
        handler.setFormatter(json_formatter())


def quiet_task_successes() -> None:
    """Keep Celery's per-task INFO lines (success, retry) out of the log, its warnings and errors
    in. Call before the worker builds its task tracers: they read the level once."""
    logging.getLogger(CELERY_TRACE_LOGGER).setLevel(logging.WARNING)
