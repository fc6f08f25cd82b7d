"""Signed status callbacks, per Standard Webhooks (https://www.standardwebhooks.com).

One POST per event: the body is the ``JobEvent`` as compact JSON (state and presigned links,
never image bytes), with three headers:

- ``webhook-id``: ``message_id(job_id, event type)``, the same on every redelivery of that
  event, so receivers de-duplicate by it;
- ``webhook-timestamp``: this attempt's Unix time (receivers refuse stale ones: replay guard);
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256>`` of ``{id}.{timestamp}.{body}`` for each of
  the requester's secrets (several while rotating), space-separated; see ``sign``.

``CallbackSender.deliver`` makes one attempt and says what to do next (``DeliveryOutcome``):
delivered (2xx), gone (410: stop for good), retry (timeouts, connection errors, 408, 425, 429,
5xx) or rejected (3xx: redirects are never followed; other 4xx). The caller schedules retries
with ``next_delay``. Before connecting, ``check_callback_url`` enforces https and refuses hosts
that resolve to loopback, private, link-local, metadata or other non-global addresses unless
allow-listed; the request then goes to the vetted address itself, so a second DNS answer
cannot redirect it (DNS rebinding).

Connections are reused: one ``httpx.HTTPTransport`` per process keeps up to
:data:`KEEPALIVE_CONNECTIONS` open, and speaks HTTP/2 to a TLS receiver that offers it (ALPN),
so a worker's threads share one multiplexed connection per receiver; plain-HTTP and HTTP/1.1
receivers get keep-alive HTTP/1.1. A connection goes back to the pool only once the answer's
body is read, which :func:`_drain` does for small, prompt answers only (else every callback
would open a new connection, with a full TLS handshake for https). The POST goes to the
transport itself, not through an ``httpx.Client``: a client's cookie jar, redirect and auth
steps and its log line per request cost more CPU than the signing (redirects are never
followed anyway), and a callback URL is parsed once per process (:func:`_parsed`).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from core.contracts.jobs import JobEvent, JobEventType
from core.errors import ErrorCode, PermanentError, RetryableError
from core.worker_settings import WorkerSettings
from worker import metrics
from worker.per_process import PerProcessClient

log = logging.getLogger(__name__)

#: a callback body larger than this is a bug (someone put image bytes in it)
MAX_BODY_BYTES = 64 * 1024
#: statuses worth retrying besides 5xx: request timeout, too early, too many requests
RETRY_STATUSES = frozenset({408, 425, 429})
#: ceiling on a receiver's ``Retry-After`` (a day): it may slow us down, not stall us forever
MAX_RETRY_AFTER_S = 24 * 3600.0

#: a receiver's answer body is read up to this many bytes (the connection is then reused)
MAX_ANSWER_BYTES = 16 * 1024
#: ... and for at most this long after the headers came (then the connection is dropped)
MAX_ANSWER_S = 1.0
#: idle connections a process keeps open for reuse (enough for a threads pool's concurrency)
KEEPALIVE_CONNECTIONS = 32
#: seconds an idle connection stays open for the next callback to the same receiver
KEEPALIVE_EXPIRY_S = 30.0
#: headers of every callback besides the three signature headers and ``host``
FIXED_HEADERS = {"user-agent": "atelier-callbacks/1", "content-type": "application/json"}

Resolver = Callable[[str, int], Sequence[str]]


class DeliveryStatus(StrEnum):
    DELIVERED = "delivered"  #: 2xx: done
    GONE = "gone"  #: 410: the receiver unsubscribed; never send to it again
    RETRY = "retry"  #: try again after ``next_delay``
    REJECTED = "rejected"  #: refused for good (URL refused, 3xx, 4xx)


@dataclass(frozen=True)
class DeliveryOutcome:
    """What one delivery attempt came to. ``final``: no retry is due."""

    status: DeliveryStatus
    message_id: str
    http_status: int | None = None
    reason: str = ""
    retry_after_s: float | None = None  #: the receiver's ``Retry-After``, if it sent one

    @property
    def final(self) -> bool:
        return self.status is not DeliveryStatus.RETRY


class UnsafeCallbackUrl(PermanentError):
    """The callback URL breaks the scheme or address rules (``callback_url_refused``)."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.CALLBACK_URL_REFUSED, message)


def message_id(job_id: str, event_type: JobEventType | str) -> str:
    """``msg_<job id>_<event>``, e.g. ``msg_3f2a..._job_succeeded``: stable per (job, event).

    Standard Webhooks signs ``{id}.{timestamp}.{body}``, so the id carries no ``.``.
    """
    event = JobEventType(event_type).value
    return f"msg_{job_id}_{event}".replace(".", "_")


def event_body(event: JobEvent) -> bytes:
    """The exact bytes POSTed and signed: the event as compact JSON."""
    body = event.model_dump_json().encode()
    if len(body) > MAX_BODY_BYTES:
        raise ValueError(f"callback body is {len(body)} bytes (max {MAX_BODY_BYTES}): links only, no images")
    return body


def sign(
    payload: JobEvent | bytes,
    secrets: str | Sequence[str],
    msg_id: str,
    *,
    timestamp: datetime | None = None,
) -> dict[str, str]:
    """The three Standard Webhooks headers for ``payload``, signed with every secret given.

    ``timestamp`` defaults to now (UTC); pass it only to test. Secrets are ``whsec_...``.
    """
    body = event_body(payload) if isinstance(payload, JobEvent) else payload
    when = (timestamp or datetime.now(UTC)).astimezone(UTC)
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    if not keys:
        raise ValueError("at least one secret is needed to sign")
    text = body.decode()
    signatures = [_webhook(key).sign(msg_id, when, text) for key in keys]
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": " ".join(signatures),
    }


@functools.lru_cache(maxsize=64)
def _webhook(secret: str) -> Webhook:
    """The signer of ``secret`` (its key base64-decoded once, not on every callback)."""
    return Webhook(secret)


def next_delay(attempt: int, schedule: Sequence[float], retry_after_s: float | None = None) -> float | None:
    """Seconds to wait before the next try, after ``attempt`` tries (1 = the first) failed.

    ``schedule[attempt - 1]``, raised to the receiver's ``Retry-After`` (capped at a day) when it
    asked for more; ``None`` once the schedule is exhausted: delivery has failed.
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    if attempt > len(schedule):
        return None
    delay = float(schedule[attempt - 1])
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, MAX_RETRY_AFTER_S))
    return delay


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Globally routable unicast: not loopback, private, link-local (metadata), CGNAT, reserved."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def check_callback_url(url: str, settings: WorkerSettings, *, resolve: Resolver = _resolve) -> list[str]:
    """Vet a callback URL; return the addresses its host resolves to (all of them allowed).

    Rules: ``https`` (``http`` too when ``callback_allow_http``); no credentials in the URL;
    every resolved address globally routable, unless the host is in ``callback_allowed_hosts``.
    Raises ``UnsafeCallbackUrl`` (permanent) or ``RetryableError`` when the name does not resolve.
    """
    try:
        parsed = _parsed(url)
    except httpx.InvalidURL as error:
        raise UnsafeCallbackUrl(f"not a valid URL: {error}") from None
    schemes = {"https", "http"} if settings.callback_allow_http else {"https"}
    if parsed.scheme not in schemes:
        raise UnsafeCallbackUrl(f"scheme {parsed.scheme!r} refused; allowed: {', '.join(sorted(schemes))}")
    if parsed.userinfo:
        raise UnsafeCallbackUrl("credentials in the callback URL are refused; callbacks are signed instead")
    host = parsed.host.lower()
    if not host:
        raise UnsafeCallbackUrl("the URL names no host")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        addresses = list(resolve(host, port))
    except (OSError, UnicodeError) as error:
        raise RetryableError(ErrorCode.CALLBACK_UNRESOLVED, f"{host} does not resolve: {error}") from None
    if not addresses:
        raise RetryableError(ErrorCode.CALLBACK_UNRESOLVED, f"{host} resolved to no address")
    if host in settings.callback_allowed_hosts:
        return addresses
    for address in addresses:
        if not _is_public(ipaddress.ip_address(address.split("%")[0])):
            raise UnsafeCallbackUrl(
                f"{host} resolves to {address}, a loopback, private, link-local or reserved address; "
                "add the host to ATELIER_CALLBACK_ALLOWED_HOSTS if it is meant"
            )
    return addresses


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header (seconds or an HTTP date) as seconds from now, if readable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def classify_status(code: int) -> DeliveryStatus:
    """What a receiver's status code means for the delivery."""
    if 200 <= code < 300:
        return DeliveryStatus.DELIVERED
    if code == 410:
        return DeliveryStatus.GONE
    if code >= 500 or code in RETRY_STATUSES:
        return DeliveryStatus.RETRY
    return DeliveryStatus.REJECTED


class CallbackSender(PerProcessClient[httpx.BaseTransport]):
    """Delivers signed events; one per worker process (its HTTP transport is made per process).

    Parameters: ``settings`` (secrets, timeout, retry schedule, URL rules, CA bundle);
    keyword-only ``resolve`` (default: the system resolver; tests pass a fake) and
    ``transport`` (default: httpx's; tests may pass ``httpx.MockTransport``).
    """

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        resolve: Resolver = _resolve,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(self._connect)
        self.settings = settings
        self._resolve = resolve
        self._transport = transport
        self._timeout = httpx.Timeout(settings.callback_timeout_s).as_dict()

    def _connect(self) -> httpx.BaseTransport:
        if self._transport is not None:
            return self._transport
        s = self.settings
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(s.callback_ca_cert)) if s.callback_ca_cert else True
        )
        return httpx.HTTPTransport(
            verify=verify,
            trust_env=False,  # no proxy or CA from the environment: the settings decide
            http2=True,  # only where the receiver offers it in the TLS handshake (ALPN)
            limits=httpx.Limits(
                max_keepalive_connections=KEEPALIVE_CONNECTIONS, keepalive_expiry=KEEPALIVE_EXPIRY_S
            ),
        )

    def next_delay(self, attempt: int, retry_after_s: float | None = None) -> float | None:
        """``next_delay`` with the configured ``callback_retry_schedule_s``."""
        return next_delay(attempt, self.settings.callback_retry_schedule_s, retry_after_s)

    @metrics.callback_delivery
    def deliver(
        self,
        url: str,
        event: JobEvent,
        *,
        requester: str,
        msg_id: str | None = None,
        timeout_s: float | None = None,
    ) -> DeliveryOutcome:
        """One signed POST of ``event`` to ``url``; never raises for the receiver's behaviour.

        ``msg_id`` defaults to ``message_id(event.data["job_id"], event.type)``; ``timeout_s``
        (each of connect, write and read) to ``callback_timeout_s``. Raises
        ``PermanentError("callback_secret_missing")`` when ``requester`` has no secret. Only a
        delivery that did not succeed is logged here (the caller logs the job's outcome).
        """
        if msg_id is None:
            if "job_id" not in event.data:
                raise ValueError("event.data has no job_id: pass msg_id")
            msg_id = message_id(str(event.data["job_id"]), event.type)
        try:
            secrets = self.settings.signing_secrets(requester)
        except LookupError as error:
            raise PermanentError(ErrorCode.CALLBACK_SECRET_MISSING, str(error)) from None
        body = event_body(event)
        try:
            addresses = check_callback_url(url, self.settings, resolve=self._resolve)
        except UnsafeCallbackUrl as error:
            return self._outcome(DeliveryStatus.REJECTED, msg_id, url, reason=error.message)
        except RetryableError as error:
            return self._outcome(DeliveryStatus.RETRY, msg_id, url, reason=error.message)
        headers = sign(body, secrets, msg_id)
        timeout = self._timeout if timeout_s is None else httpx.Timeout(timeout_s).as_dict()
        try:
            code, retry_after = self._post(url, addresses, body, headers, timeout)
        except httpx.TimeoutException as error:
            return self._outcome(DeliveryStatus.RETRY, msg_id, url, reason=f"timeout: {type(error).__name__}")
        except httpx.TransportError as error:
            return self._outcome(DeliveryStatus.RETRY, msg_id, url, reason=f"{type(error).__name__}: {error}")
        status = classify_status(code)
        reason = f"HTTP {code}"
        if 300 <= code < 400:
            reason += ": redirects are not followed; register the final URL"
        return self._outcome(
            status,
            msg_id,
            url,
            http_status=code,
            reason=reason,
            retry_after_s=retry_after if status is DeliveryStatus.RETRY else None,
        )

    def _post(
        self,
        url: str,
        addresses: Sequence[str],
        body: bytes,
        headers: dict[str, str],
        timeout: dict[str, float | None],
    ) -> tuple[int, float | None]:
        """POST to the first vetted address that accepts a connection; (status, Retry-After)."""
        transport = self.client
        for i, address in enumerate(addresses):
            target, extensions, host_header = _pinned(url, address)
            request = httpx.Request(
                "POST",
                target,
                content=body,
                headers={**FIXED_HEADERS, **headers, "host": host_header},
                extensions={**extensions, "timeout": timeout},
            )
            try:
                response = transport.handle_request(request)
            except httpx.ConnectError:
                if i == len(addresses) - 1:
                    raise
                continue
            try:
                _drain(response)
                return response.status_code, retry_after_seconds(response.headers.get("retry-after"))
            finally:
                response.close()
        raise AssertionError("unreachable: check_callback_url returns at least one address")

    def _outcome(self, status: DeliveryStatus, msg_id: str, url: str, **fields: Any) -> DeliveryOutcome:
        outcome = DeliveryOutcome(status, msg_id, **fields)
        if status is not DeliveryStatus.DELIVERED:
            host = url_host(url)
            log.warning(
                "callback %s to %s: %s",
                status.value,
                host,
                outcome.reason or outcome.http_status,
                extra={"message_id": msg_id, "callback_host": host, "http_status": outcome.http_status},
            )
        return outcome


def _drain(response: httpx.Response) -> None:
    """Read the receiver's answer body, so its connection goes back to the pool for the next
    callback; a body over :data:`MAX_ANSWER_BYTES`, or one still coming after
    :data:`MAX_ANSWER_S`, is left unread and its connection dropped: a receiver can never make
    us download much or hold a callback thread."""
    if response.is_stream_consumed:  # a transport that read it already (tests' MockTransport)
        return
    deadline = time.monotonic() + MAX_ANSWER_S
    read = 0
    for chunk in response.iter_raw():
        read += len(chunk)
        if read > MAX_ANSWER_BYTES or time.monotonic() > deadline:
            return


@functools.lru_cache(maxsize=1024)
def _parsed(url: str) -> httpx.URL:
    """``url`` parsed (once per process: parsing costs more than signing; raises ``InvalidURL``)."""
    return httpx.URL(url)


def url_host(url: str) -> str:
    """The host ``url`` names (``""`` when it does not parse): what logs and
    ``worker.notifications.SlowHosts`` know a receiver by."""
    try:
        return _parsed(url).host if url else ""
    except httpx.InvalidURL:
        return ""


@functools.lru_cache(maxsize=1024)
def _pinned(url: str, address: str) -> tuple[httpx.URL, dict[str, Any], str]:
    """``url`` aimed at the vetted ``address``, with the original name for Host and TLS (SNI and
    certificate checks still use the host name). Cached: the same receiver gets every callback."""
    parsed = _parsed(url)
    default_port = 443 if parsed.scheme == "https" else 80
    host_header = parsed.host if parsed.port in (None, default_port) else f"{parsed.host}:{parsed.port}"
    if ":" in parsed.host:  # an IPv6 literal keeps its brackets in Host
        host_header = (
            f"[{parsed.host}]" if parsed.port in (None, default_port) else f"[{parsed.host}]:{parsed.port}"
        )
    extensions = {"sni_hostname": parsed.host} if parsed.scheme == "https" else {}
    return parsed.copy_with(host=address.split("%")[0]), extensions, host_header
