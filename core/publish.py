"""Publishing jobs to the broker by task name, with publisher confirms.

The producer never imports worker code: it sends ``atelier.listing.generate`` and friends by
name through a Celery app configured only for sending. On RabbitMQ every publish waits for the
broker's ``basic.ack``; a refused connection, a ``basic.nack``, an unroutable message or a
confirm that does not arrive in ``publish_confirm_timeout_s`` raises :class:`PublishError`
within :attr:`Publisher.max_publish_time_s`. A publish either was confirmed or raises; it never
hangs and never vanishes silently. A publish that raised may still have reached the queue
(``delivered_maybe``), and a retry after a dropped connection may queue a message twice, so
workers treat the job record, not the message, as the truth.

kombu's ``filesystem://`` transport (the embedded default) has no confirms: a message counts as
published once its file is written.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from amqp.exceptions import (
    AMQPError,
    ChannelError,
    ConnectionForced,
    MessageNacked,
    RecoverableConnectionError,
)
from celery import Celery
from kombu.exceptions import KombuError

from core.errors import ErrorCode, RetryableError
from core.settings import AtelierSettings
from core.topology import (
    CALLBACK_TASK,
    Topology,
    build_topology,
    callback_kwargs,
    callback_task_id,
    celery_config,
    declare,
    is_filesystem_broker,
)

log = logging.getLogger(__name__)

#: pause before each reconnect attempt grows by this much (seconds), up to one second
_RECONNECT_STEP_S = 0.5
#: AMQP reply code of a mandatory message the exchange could not route to any queue
NO_ROUTE = 312


class PublishError(RetryableError):
    """The broker did not confirm a message; the job must not count as queued.

    ``delivered_maybe`` is true when the message left this process before the failure (no
    confirm in time, or the connection dropped while waiting): it may still reach a worker,
    which then finds the job record failed and drops it.
    """

    default_code = ErrorCode.PUBLISH_FAILED

    def __init__(self, message: str, *, task_name: str, job_id: str, delivered_maybe: bool) -> None:
        super().__init__(self.default_code, message)
        self.task_name = task_name
        self.job_id = job_id
        self.delivered_maybe = delivered_maybe

    def __str__(self) -> str:
        return self.message


class BrokerUnavailable(PublishError):
    """No connection to the broker (refused, unreachable, handshake or login failed)."""


class PublishNotConfirmed(PublishError):
    """The broker nacked the message, returned it as unroutable, or did not confirm in time."""


class MessageTooLarge(PublishError):
    """The message is over ``max_message_bytes``: never sent (a worker would dead-letter it)."""

    retryable = False
    default_code = ErrorCode.MESSAGE_TOO_LARGE


def message_size(kwargs: dict[str, Any]) -> int:
    """Bytes of the JSON body Celery sends for ``kwargs`` (protocol 2: ``[args, kwargs, embed]``)."""
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    return len(json.dumps([[], kwargs, embed]).encode())


#: the ``argsrepr`` header of every Atelier task message: they take keyword arguments only
ARGS_REPR = "()"


def kwargs_repr(kwargs: Mapping[str, Any]) -> str:
    """The ``kwargsrepr`` header of a task message (what Celery's logs and monitors show of its
    keyword arguments): each argument's repr, a nested one (a job's request, a callback's
    payload) as ``{...}``. Celery's default is a ``saferepr`` of the whole request: about 0.11 ms
    of CPU a message (an eighth of a submit's) for a header nothing here reads, and it copied
    the request, callback URL included, into the headers."""
    shown = ("{...}" if isinstance(value, Mapping) else repr(value) for value in kwargs.values())
    return "{" + ", ".join(f"{name!r}: {value}" for name, value in zip(kwargs, shown, strict=True)) + "}"


def refuse_oversized(
    task_name: str, kwargs: dict[str, Any], *, job_id: str, settings: AtelierSettings
) -> None:
    """Raise :class:`MessageTooLarge` when the message is over ``max_message_bytes``."""
    size = message_size(kwargs)
    if size > settings.max_message_bytes:
        raise MessageTooLarge(
            f"the {task_name} message would be {size} bytes, over the "
            f"{settings.max_message_bytes}-byte limit (max_message_bytes)",
            task_name=task_name,
            job_id=job_id,
            delivered_maybe=False,
        )


def send_only_app(settings: AtelierSettings) -> Celery:
    """A private Celery app (never the current one) configured only for sending
    (:func:`core.topology.celery_config`); on RabbitMQ a broker that stops answering mid-declare
    raises instead of blocking forever."""
    app = Celery("atelier-producer", set_as_current=False)
    app.conf.update(celery_config(settings))
    if not is_filesystem_broker(settings):
        timeout = settings.publish_confirm_timeout_s
        options = {**app.conf.broker_transport_options, "read_timeout": timeout, "write_timeout": timeout}
        app.conf.broker_transport_options = options
    return app


class Publisher:
    """Sends task messages through a send-only Celery app.

    Parameters (keyword-only besides ``settings``):

    - ``app``: a Celery app to send through; default a private one built from
      :func:`core.topology.celery_config`, never set as the current app.

    Reads from settings: ``broker_url``; ``publish_confirm_timeout_s``, the wait for
    ``basic.ack`` and for any broker reply (socket read/write timeout); ``broker_connect_timeout_s``
    per connection attempt; ``publish_retries``, how often a publish is repeated on a new
    connection after the old one turned out dead (a broker restart) or the message came back
    unroutable (its queue was deleted; the new connection declares it again). A missing confirm
    or a nack is never retried. The topology is declared once per publisher, before its first
    message.
    """

    def __init__(self, settings: AtelierSettings, *, app: Celery | None = None) -> None:
        self.settings = settings
        self.topology: Topology = build_topology(settings)
        self._confirms = not is_filesystem_broker(settings)
        self.app = app if app is not None else send_only_app(settings)
        self._declared = False
        self._lock = threading.Lock()

    @property
    def _connect_budget_s(self) -> float:
        attempts = self.settings.publish_retries + 1
        return attempts * (self.settings.broker_connect_timeout_s + _RECONNECT_STEP_S)

    @property
    def max_publish_time_s(self) -> float:
        """Upper bound of one :meth:`publish` call, however the broker misbehaves."""
        attempts = self.settings.publish_retries + 1
        # declaring (first publish only) and each attempt connect; one reply wait can time out
        # while declaring, and one while waiting for the confirm (a timeout is never retried)
        return (attempts + 1) * self._connect_budget_s + 2 * self.settings.publish_confirm_timeout_s

    def declare(self) -> None:
        """Declare every exchange and queue (idempotent); raises :class:`BrokerUnavailable`."""
        connection = self.app.connection_for_write()
        try:
            self._connect(connection)
            declare(connection, self.settings)
        except (KombuError, AMQPError, OSError) as error:
            connection.collect()  # no close handshake: the broker may not answer it
            raise BrokerUnavailable(
                f"cannot declare the broker topology: {error!r}",
                task_name="",
                job_id="",
                delivered_maybe=False,
            ) from error
        connection.release()
        self._declared = True

    def publish(self, task_name: str, job_id: str, request_json: dict[str, Any], *, retries: int = 0) -> None:
        """Send ``task_name(job_id=..., request=...)`` with ``task_id=job_id``; confirmed or raises.

        ``retries`` > 0 marks the message as a retry of a job already ``running`` (the stuck-job
        sweeper's re-queue): the worker then runs it again as another attempt instead of dropping
        it as a duplicate.
        """
        kwargs = {"job_id": job_id, "request": request_json}
        self.send(task_name, kwargs, task_id=job_id, job_id=job_id, retries=retries)

    def publish_callback(self, job_id: str, event: str) -> None:
        """Queue the delivery of one callback event (``CALLBACK_TASK``); confirmed or raises."""
        self.send(
            CALLBACK_TASK,
            callback_kwargs(job_id, event),
            task_id=callback_task_id(job_id, event),
            job_id=job_id,
        )

    def send(
        self, task_name: str, kwargs: dict[str, Any], *, task_id: str, job_id: str, retries: int = 0
    ) -> None:
        """Send ``task_name(**kwargs)`` to its queue as ``task_id``; confirmed or raises."""
        queue = self.topology.queue_for(task_name)
        refuse_oversized(task_name, kwargs, job_id=job_id, settings=self.settings)
        with self._lock:
            if not self._declared:
                try:
                    self.declare()
                except BrokerUnavailable as error:
                    raise BrokerUnavailable(
                        str(error), task_name=task_name, job_id=job_id, delivered_maybe=False
                    ) from error.__cause__
        for attempt in range(self.settings.publish_retries + 1):
            with self.app.producer_or_acquire() as producer:
                try:
                    self._connect(producer.connection)
                except (KombuError, AMQPError, OSError) as error:
                    raise BrokerUnavailable(
                        f"broker unreachable: {error!r}",
                        task_name=task_name,
                        job_id=job_id,
                        delivered_maybe=attempt > 0,
                    ) from error
                try:
                    self.app.send_task(
                        task_name,
                        kwargs=kwargs,
                        task_id=task_id,
                        queue=queue,
                        producer=producer,
                        retries=retries,
                        argsrepr=ARGS_REPR,
                        kwargsrepr=kwargs_repr(kwargs),
                        retry=False,
                        mandatory=self._confirms,
                        confirm_timeout=self.settings.publish_confirm_timeout_s,
                        timeout=self.settings.publish_confirm_timeout_s,
                    )
                except (KombuError, AMQPError, MessageNacked, OSError) as error:
                    # the connection is in an unknown state: drop it rather than reuse it
                    producer.connection.collect()
                    retry_or_give_up(
                        error,
                        retry=attempt < self.settings.publish_retries and _worth_retrying(error),
                        reason=_describe(error),
                        job_id=job_id,
                        task_name=task_name,
                        attempt=attempt,
                    )
                    continue
            log.info("published", extra={"job_id": job_id, "task": task_name, "queue": queue.name})
            return

    def _connect(self, connection: Any) -> None:
        connection.ensure_connection(
            max_retries=self.settings.publish_retries,
            interval_start=0,
            interval_step=_RECONNECT_STEP_S,
            interval_max=1,
            timeout=self._connect_budget_s,
        )

    def close(self) -> None:
        self.app.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _causes(error: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = error
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def retry_or_give_up(
    error: BaseException, *, retry: bool, reason: str, job_id: str, task_name: str, attempt: int
) -> None:
    """After a failed publish, on a connection now dropped: return (logged) when another attempt
    is worth it, else raise :class:`PublishNotConfirmed`. Both publishers, sync and asyncio, end a
    failed attempt here; each judges ``retry`` and ``reason`` from its own client's errors."""
    if retry:
        log.warning(
            "publish failed, retrying on a new connection: %r",
            error,
            extra={"job_id": job_id, "task": task_name, "attempt": attempt + 1},
        )
        return
    raise PublishNotConfirmed(
        f"{task_name} for job {job_id} not confirmed by the broker: {reason}",
        task_name=task_name,
        job_id=job_id,
        delivered_maybe=True,
    ) from error


def _worth_retrying(error: BaseException) -> bool:
    """A dead connection or an unroutable return: retry. A timeout or a nack: do not.

    Without a confirm the message may be queued already, and a nack repeats itself.
    """
    causes = list(_causes(error))
    if any(isinstance(cause, TimeoutError | MessageNacked) for cause in causes):
        return False
    if any(isinstance(cause, ChannelError) and cause.reply_code == NO_ROUTE for cause in causes):
        return True
    return any(isinstance(cause, OSError | RecoverableConnectionError | ConnectionForced) for cause in causes)


def _describe(error: BaseException) -> str:
    if isinstance(error, MessageNacked):
        return "nacked"
    if isinstance(error, socket.timeout | TimeoutError):
        return "no confirm within the timeout"
    return repr(error)
