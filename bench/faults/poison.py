"""Raw messages for the poison-message checks: published as bytes, past the producer's checks.

Shared by the fault suite (``bench/faults/queue_scenarios.py``) and the dead-letter tests.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from kombu import Connection
from kombu import Producer as KombuProducer

from core.settings import AtelierSettings
from core.topology import LISTING_TASK
from producer.client import Producer

#: Celery's protocol-2 "embed" part of a task body
EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def task_body(kwargs: Any) -> bytes:
    """A Celery protocol-2 task body with these keyword arguments."""
    return json.dumps([[], kwargs, EMBED]).encode()


def publish_raw(
    settings: AtelierSettings,
    body: bytes,
    *,
    headers: dict[str, Any] | None = None,
    content_type: str = "application/json",
    exchange: str | None = None,
    routing_key: str | None = None,
) -> str:
    """Publish ``body`` as is (confirmed) to ``exchange`` (default: the namespace's) with
    ``routing_key`` (default: the listing queue); returns its message id."""
    message_id = uuid.uuid4().hex
    with Connection(settings.broker_url.get_secret_value(), transport_options={"confirm_publish": True}) as c:
        KombuProducer(c.default_channel).publish(
            body,
            exchange=settings.exchange if exchange is None else exchange,
            routing_key=routing_key or settings.listing_queue,
            headers=headers or {},
            content_type=content_type,
            content_encoding="utf-8",
            message_id=message_id,
            delivery_mode=2,
            retry=False,
        )
    return message_id


def parked_job(settings: AtelierSettings, request: dict[str, Any]) -> tuple[str, bytes, dict[str, Any]]:
    """A job submitted for real whose message was taken off its queue before any worker saw it:
    (job id, body, headers), to be tampered with and published raw."""
    parking = settings.model_copy(update={"listing_queue": f"{settings.exchange}.parking"})
    with Producer(parking) as producer:
        job_id = producer.submit(request)
    with Connection(settings.broker_url.get_secret_value()) as c:
        message = c.default_channel.basic_get(queue=parking.listing_queue, no_ack=True)
        c.default_channel.queue_delete(parking.listing_queue)
    if message is None:
        raise RuntimeError("the parked job's message is not in its queue")
    body = message.body.encode() if isinstance(message.body, str) else bytes(message.body)
    return job_id, body, dict(message.properties["application_headers"])


def poison_messages(
    settings: AtelierSettings, request: dict[str, Any], *, max_bytes: int
) -> tuple[dict[str, str], str]:
    """Publish one message of each poison kind; returns ({reason code: message id}, the id of
    the job whose real message was sent with a wrong ``schema_version``)."""
    job_id, body, headers = parked_job(settings, request)
    kwargs = json.loads(body)[1]
    wrong_version = {**kwargs, "request": {**kwargs["request"], "schema_version": "2"}}
    task = {"task": LISTING_TASK, "id": uuid.uuid4().hex}
    sent = {
        "not_json": publish_raw(settings, b"\x00{not json", headers=task),
        "invalid_request": publish_raw(settings, task_body(wrong_version), headers=headers),
        "invalid_arguments": publish_raw(settings, task_body({"job_id": uuid.uuid4().hex}), headers=task),
        "message_too_large": publish_raw(settings, b"x" * (max_bytes + 1), headers=task),
        "unknown_task": publish_raw(
            settings, task_body({}), headers={"task": "atelier.no.such.task", "id": uuid.uuid4().hex}
        ),
        "not_a_task_message": publish_raw(settings, b"hello", content_type="text/plain"),
    }
    return sent, job_id
