"""The dead-letter queue, for operators: read why each message is there, replay it, or purge.

A message reaches ``settings.dead_letter_queue`` (through the ``settings.dead_letter_exchange``
topic exchange, keeping its routing key, which is its source queue's name) in one of two ways:

- **a worker refused it unread** (``worker.gate``: not JSON, not a task message, an unknown
  task, arguments or request that do not validate, larger than ``max_message_bytes``). The
  worker re-publishes it, body and headers unchanged, to the dead-letter exchange with the
  ``x-atelier-dead-letter-*`` headers below added, waits for the broker's confirm, then acks
  the original. If that publish fails, it rejects the original without requeue and RabbitMQ
  dead-letters it itself (``x-death`` reason ``rejected``); the reason is then in the log only.
- **RabbitMQ dead-lettered it**: delivered more than ``delivery_limit`` times (its worker
  died on every attempt: ``x-death`` reason ``delivery_limit``) or rejected without requeue.
  RabbitMQ adds the ``x-death`` header (queue, reason, count, time).

:func:`describe` reads either form into one :class:`DeadLetter`. :class:`DeadLetterQueue`
lists, replays (re-publishes to the source queue through the topology with the death headers
removed, and removes the dead letter only after the broker confirmed the publish) and purges.
"""

from __future__ import annotations

import builtins
import hashlib
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kombu import Connection
from kombu import Producer as KombuProducer

from core.contracts.codes import ErrorCode
from core.settings import AtelierSettings
from core.topology import TASK_FOR_KIND, broker_ssl, build_topology, declare

#: why a worker dead-lettered the message: ``<code>: <explanation>``, the code an ``ErrorCode``
REASON_HEADER = "x-atelier-dead-letter-reason"
#: the longest reason header written (a validation error can be long)
MAX_REASON_CHARS = 500
#: the queue the worker took the message from
QUEUE_HEADER = "x-atelier-dead-letter-queue"
#: when the worker dead-lettered it (ISO 8601, UTC)
TIME_HEADER = "x-atelier-dead-lettered-at"
#: the job the message belongs to, when the worker could tell
JOB_HEADER = "x-atelier-job-id"
#: headers a replay removes: ours, RabbitMQ's death records and the quorum delivery count
DEATH_HEADERS = (
    REASON_HEADER,
    QUEUE_HEADER,
    TIME_HEADER,
    JOB_HEADER,
    "x-death",
    "x-first-death-reason",
    "x-first-death-queue",
    "x-first-death-exchange",
    "x-last-death-reason",
    "x-last-death-queue",
    "x-last-death-exchange",
    "x-delivery-count",
)

#: tasks whose task id is their job's id
JOB_TASKS = frozenset(TASK_FOR_KIND.values())


@dataclass(frozen=True)
class DeadLetter:
    """One message in the dead-letter queue, as an operator reads it."""

    message_id: str
    task: str | None
    job_id: str | None
    reason: str
    #: the reason's code when a worker refused the message; ``None`` when RabbitMQ dead-lettered it
    code: ErrorCode | None
    queue: str | None  #: the queue it was dead-lettered from (where a replay sends it)
    death_count: int
    first_death_at: datetime | None


def message_id_of(body: bytes, headers: Mapping[str, Any], properties: Mapping[str, Any]) -> str:
    """The AMQP ``message_id``, else the Celery task id, else a digest of the body."""
    for value in (properties.get("message_id"), headers.get("id")):
        if isinstance(value, str) and value:
            return value
    return "sha256:" + hashlib.sha256(body).hexdigest()[:24]


def dead_letter_reason(code: ErrorCode, detail: str) -> str:
    """The reason header's text: ``<code>: <detail>``, at most :data:`MAX_REASON_CHARS`."""
    return f"{ErrorCode(code).value}: {detail}"[:MAX_REASON_CHARS]


def reason_code(reason: str) -> ErrorCode | None:
    """The ``ErrorCode`` a reason header starts with, or ``None`` if it names none."""
    try:
        return ErrorCode(reason.split(":", 1)[0].strip())
    except ValueError:
        return None


def dead_letter_headers(
    headers: Mapping[str, Any],
    *,
    code: ErrorCode,
    detail: str,
    queue: str,
    job_id: str | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``headers`` plus the ``x-atelier-dead-letter-*`` ones a worker adds when it refuses a
    message with ``code`` (``detail`` explains it)."""
    added: dict[str, Any] = {
        REASON_HEADER: dead_letter_reason(code, detail),
        QUEUE_HEADER: queue,
        TIME_HEADER: (now or datetime.now(UTC)).isoformat(),
    }
    if job_id:
        added[JOB_HEADER] = job_id
    return {**headers, **added}


def replay_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """``headers`` without any death record, so the replayed message starts afresh."""
    return {k: v for k, v in headers.items() if k not in DEATH_HEADERS}


def describe(body: bytes, headers: Mapping[str, Any] | None, properties: Mapping[str, Any]) -> DeadLetter:
    """What a dead-lettered message is and why it is here; never raises on odd headers."""
    headers = dict(headers or {})
    deaths = [d for d in headers.get("x-death") or [] if isinstance(d, Mapping)]
    task = headers.get("task") if isinstance(headers.get("task"), str) else None
    job_id = headers.get(JOB_HEADER) or (
        headers.get("id") if task in JOB_TASKS and isinstance(headers.get("id"), str) else None
    )
    if REASON_HEADER in headers:
        reason = str(headers[REASON_HEADER])
        return DeadLetter(
            message_id=message_id_of(body, headers, properties),
            task=task,
            job_id=job_id,
            reason=reason,
            code=reason_code(reason),
            queue=str(headers.get(QUEUE_HEADER) or "") or None,
            death_count=1 + sum(_count(d) for d in deaths),
            first_death_at=_parse_time(headers.get(TIME_HEADER)),
        )
    first = deaths[-1] if deaths else {}  # RabbitMQ puts the most recent death first
    reason = str(headers.get("x-first-death-reason") or first.get("reason") or "unknown")
    queue = headers.get("x-first-death-queue") or first.get("queue")
    return DeadLetter(
        message_id=message_id_of(body, headers, properties),
        task=task,
        job_id=job_id,
        reason=f"{reason} (by RabbitMQ)",
        code=None,
        queue=str(queue) if queue else None,
        death_count=sum(_count(d) for d in deaths) or 1,
        first_death_at=_parse_time(first.get("time")),
    )


def _count(death: Mapping[str, Any]) -> int:
    count = death.get("count", 1)
    return count if isinstance(count, int) else 1


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


class DeadLetterQueue:
    """Operator actions on ``settings.dead_letter_queue`` over one confirmed broker connection.

    Reading takes messages with ``basic.get`` without acknowledging them; closing the channel
    returns them to the queue, so listing changes nothing but their order and delivery count.
    While one reader holds them they are invisible to another (and RabbitMQ returns them a
    moment after the reader closes): run one operator action at a time.
    """

    def __init__(self, settings: AtelierSettings) -> None:
        self.settings = settings
        self.topology = build_topology(settings)

    @contextmanager
    def _channel(self) -> Iterator[Any]:
        url = self.settings.broker_url.get_secret_value()
        options = {"confirm_publish": True}
        timeout = self.settings.broker_connect_timeout_s
        with Connection(
            url, transport_options=options, connect_timeout=timeout, ssl=broker_ssl(self.settings)
        ) as conn:
            conn.ensure_connection(max_retries=1)
            declare(conn, self.settings)
            channel = conn.channel()
            try:
                yield channel
            finally:
                channel.close()

    def _messages(self, channel: Any) -> Iterator[Any]:
        """Every message now ready in the queue, unacknowledged, each once (an unacked message
        is not delivered again on the same channel)."""
        while (message := channel.basic_get(queue=self.topology.dead_letter.name, no_ack=False)) is not None:
            yield message

    def list(self) -> builtins.list[DeadLetter]:
        """Every dead letter, oldest first, with its reason."""
        with self._channel() as channel:
            return [describe(_body(m), _headers(m), m.properties) for m in self._messages(channel)]

    def replay(self, message_id: str | None = None) -> builtins.list[DeadLetter]:
        """Re-publish the dead letter ``message_id`` (``None``: every one) to its source queue.

        Each is removed from the dead-letter queue only after the broker confirmed its new
        copy; one whose source queue is unknown stays. Returns the replayed ones.
        """
        known = {q.name for q in self.topology.task_queues}
        replayed: builtins.list[DeadLetter] = []
        with self._channel() as channel:
            producer = KombuProducer(channel)
            for message in self._messages(channel):
                headers = _headers(message)
                letter = describe(_body(message), headers, message.properties)
                if message_id is not None and letter.message_id != message_id:
                    continue
                if letter.queue not in known:
                    continue
                properties = message.properties
                producer.publish(
                    _body(message),
                    exchange=self.topology.exchange,
                    routing_key=letter.queue,
                    headers=replay_headers(headers),
                    content_type=properties.get("content_type") or "application/octet-stream",
                    content_encoding=properties.get("content_encoding") or "binary",
                    message_id=properties.get("message_id") or letter.message_id,
                    correlation_id=properties.get("correlation_id"),
                    delivery_mode=2,
                    mandatory=True,
                    retry=False,
                )  # returns once confirmed (confirm_publish); raises on nack
                channel.basic_ack(message.delivery_tag)
                replayed.append(letter)
                if message_id is not None:
                    break
        return replayed

    def purge(self) -> int:
        """Delete every dead letter; returns how many there were."""
        with self._channel() as channel:
            return int(channel.queue_purge(self.topology.dead_letter.name) or 0)


def _headers(message: Any) -> dict[str, Any]:
    return dict(message.properties.get("application_headers") or {})


def _body(message: Any) -> bytes:
    body = message.body
    return body.encode() if isinstance(body, str) else bytes(body)


def new_message_id() -> str:
    """An id for a message that arrived without one (so an operator can replay it alone)."""
    return uuid.uuid4().hex


def as_json(letter: DeadLetter) -> dict[str, Any]:
    """``letter`` as a JSON-ready dict (``atelier dlq list --json``)."""
    return {
        "message_id": letter.message_id,
        "task": letter.task,
        "job_id": letter.job_id,
        "reason": letter.reason,
        "code": letter.code.value if letter.code else None,
        "queue": letter.queue,
        "death_count": letter.death_count,
        "first_death_at": letter.first_death_at.isoformat() if letter.first_death_at else None,
    }
