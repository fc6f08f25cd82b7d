"""Worker log lines as ``key=value`` pairs, then the message: one line per record, grep-able.

::

    ts=2026-11-27T10:12:01.123Z level=INFO logger=worker.pipeline job_id=3f2a attempt=1 msg=job 3f2a started

The job fields (``JOB_FIELDS``) come from the ``extra`` the worker modules pass, so a job's
lines carry its id, model, version and attempt wherever they are known. The message is the
last field and written as is. Secrets never reach a record: settings hold them as
``SecretStr``, and errors are built from codes and server messages, never from credentials
(``tests/integration/test_security.py`` searches a worker's whole log for them).
"""

from __future__ import annotations

import logging
import time
from typing import Any

#: record attributes written as ``key=value`` (when present), in this order
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


class KeyValueFormatter(logging.Formatter):
    """``ts level logger <job fields> msg``; an exception's traceback follows on its own lines."""

    def format(self, record: logging.LogRecord) -> str:
        when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        fields: list[tuple[str, Any]] = [
            ("ts", f"{when}.{int(record.msecs):03d}Z"),
            ("level", record.levelname),
            ("logger", record.name),
        ]
        fields += [
            (name, getattr(record, name)) for name in JOB_FIELDS if getattr(record, name, None) is not None
        ]
        line = " ".join(f"{key}={_value(value)}" for key, value in fields)
        line = f"{line} msg={record.getMessage()}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def _value(value: Any) -> str:
    text = str(value)
    return f'"{text}"' if not text or any(c.isspace() or c in '"=' for c in text) else text


def use_key_value_format(logger: logging.Logger) -> None:
    """Give every handler of ``logger`` the ``KeyValueFormatter``."""
    for handler in logger.handlers:
        handler.setFormatter(KeyValueFormatter())
