"""worker.callbacks and producer.webhook_verify: signing, retry schedule, URL rules, outcomes."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from standardwebhooks.webhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError as LibraryVerificationError

from core.contracts.jobs import JobEvent, JobEventType
from core.errors import PermanentError, RetryableError
from core.worker_settings import STANDARD_WEBHOOKS_SCHEDULE_S, WorkerSettings, new_webhook_secret
from producer.webhook_verify import WebhookVerificationError, verify
from worker.callbacks import (
    CallbackSender,
    DeliveryStatus,
    UnsafeCallbackUrl,
    check_callback_url,
    classify_status,
    event_body,
    message_id,
    next_delay,
    sign,
)

SECRET = new_webhook_secret()
OLD_SECRET = new_webhook_secret()
JOB = "3f2a9c0d4b5e6f708192a3b4c5d6e7f8"
PUBLIC = "93.184.216.34"


def settings(**overrides: Any) -> WorkerSettings:
    values: dict[str, Any] = {"_env_file": None, "callback_secret": SECRET, **overrides}
    return WorkerSettings(**values)


def event(kind: JobEventType = JobEventType.SUCCEEDED) -> JobEvent:
    return JobEvent(
        type=kind,
        timestamp=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        data={"job_id": JOB, "state": "succeeded", "results": [{"variant": 0, "url": "https://s3/x?sig"}]},
    )


def resolver(*addresses: str) -> Callable[[str, int], Sequence[str]]:
    def resolve(host: str, port: int) -> Sequence[str]:
        return addresses

    return resolve


# --- signing and verification ---


def test_signed_callback_verifies_with_the_standardwebhooks_library() -> None:
    body = event_body(event())
    headers = sign(body, SECRET, message_id(JOB, JobEventType.SUCCEEDED))
    assert Webhook(SECRET).verify(body, headers) == json.loads(body)
    assert headers["webhook-id"] == f"msg_{JOB}_job_succeeded"
    assert headers["webhook-signature"].startswith("v1,")


def test_receiver_helper_returns_the_event() -> None:
    body = event_body(event())
    assert verify(body, sign(body, SECRET, "msg_1"), SECRET) == event()


def test_wrong_secret_fails_verification() -> None:
    body = event_body(event())
    headers = sign(body, new_webhook_secret(), "msg_1")
    with pytest.raises(WebhookVerificationError, match="no signature matches"):
        verify(body, headers, SECRET)
    with pytest.raises(LibraryVerificationError):
        Webhook(SECRET).verify(body, headers)


def test_stale_timestamp_fails_verification_as_a_replay() -> None:
    body = event_body(event())
    headers = sign(body, SECRET, "msg_1", timestamp=datetime.now(UTC) - timedelta(minutes=10))
    with pytest.raises(WebhookVerificationError, match="old"):
        verify(body, headers, SECRET)
    with pytest.raises(LibraryVerificationError, match="too old"):
        Webhook(SECRET).verify(body, headers)
    assert verify(body, headers, SECRET, tolerance_s=900) == event()


def test_tampered_body_fails_verification() -> None:
    body = event_body(event())
    headers = sign(body, SECRET, "msg_1")
    with pytest.raises(WebhookVerificationError, match="no signature matches"):
        verify(body.replace(b"succeeded", b"failed"), headers, SECRET)


def test_missing_headers_are_named() -> None:
    with pytest.raises(WebhookVerificationError, match="webhook-signature"):
        verify(b"{}", {"Webhook-Id": "msg_1", "Webhook-Timestamp": "1"}, SECRET)


def test_rotation_signs_with_every_secret_and_either_verifies() -> None:
    body = event_body(event())
    headers = sign(body, [SECRET, OLD_SECRET], "msg_1")
    assert len(headers["webhook-signature"].split()) == 2
    assert verify(body, headers, OLD_SECRET) == event()
    assert verify(body, headers, [new_webhook_secret(), SECRET]) == event()


def test_message_id_is_stable_per_job_and_event_and_has_no_dots() -> None:
    assert message_id(JOB, "job.failed") == message_id(JOB, JobEventType.FAILED)
    assert message_id(JOB, "job.failed") != message_id(JOB, "job.succeeded")
    assert "." not in message_id(JOB, "job.started")


def test_callback_bodies_carry_links_not_images() -> None:
    huge = JobEvent(type=JobEventType.SUCCEEDED, timestamp=datetime.now(UTC), data={"png": "x" * 100_000})
    with pytest.raises(ValueError, match="links only"):
        event_body(huge)


# --- settings ---


def test_secrets_come_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "ATELIER_CALLBACK_SECRETS", json.dumps({"shop": SECRET, "tryon": [SECRET, OLD_SECRET]})
    )
    monkeypatch.setenv("ATELIER_CALLBACK_RETRY_SCHEDULE_S", "[0.1, 0.2]")
    loaded = WorkerSettings(_env_file=None)  # type: ignore[call-arg]
    assert loaded.signing_secrets("shop") == [SECRET]
    assert loaded.signing_secrets("tryon") == [SECRET, OLD_SECRET]
    assert loaded.callback_retry_schedule_s == [0.1, 0.2]
    with pytest.raises(LookupError, match="no callback secret for requester 'other'"):
        loaded.signing_secrets("other")
    assert settings().signing_secrets("other") == [SECRET]


def test_malformed_secrets_are_refused_without_echoing_them() -> None:
    with pytest.raises(ValidationError, match="must start with 'whsec_'") as caught:
        settings(callback_secret="hunter2-hunter2")
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ValidationError, match="24 to 64 bytes"):
        settings(callback_secrets={"shop": "whsec_c2hvcnQ="})


# --- retry schedule ---


def test_retry_schedule_follows_standard_webhooks_then_gives_up() -> None:
    schedule = settings().callback_retry_schedule_s
    assert schedule == list(STANDARD_WEBHOOKS_SCHEDULE_S)
    assert [next_delay(a, schedule) for a in (1, 2, 3)] == [5.0, 300.0, 1800.0]
    assert next_delay(len(schedule), schedule) == 86400.0
    assert next_delay(len(schedule) + 1, schedule) is None


def test_retry_after_can_lengthen_a_delay_but_not_forever() -> None:
    assert next_delay(1, [5.0], retry_after_s=60) == 60
    assert next_delay(1, [5.0], retry_after_s=1) == 5.0
    assert next_delay(1, [5.0], retry_after_s=10**9) == 24 * 3600


def test_compressed_schedule_for_tests() -> None:
    sender = CallbackSender(settings(callback_retry_schedule_s=[0.01, 0.02]))
    assert [sender.next_delay(a) for a in (1, 2, 3)] == [0.01, 0.02, None]


# --- URL rules ---


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.9", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "cloud metadata"),
        ("100.100.100.200", "CGNAT (a cloud metadata address)"),
        ("0.0.0.0", "unspecified"),
        ("::1", "IPv6 loopback"),
        ("fd00:ec2::254", "IPv6 unique local (AWS metadata)"),
        ("fe80::1", "IPv6 link-local"),
        ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
        ("224.0.0.1", "multicast"),
    ],
)
def test_internal_addresses_are_refused(address: str, why: str) -> None:
    with pytest.raises(UnsafeCallbackUrl, match="add the host to ATELIER_CALLBACK_ALLOWED_HOSTS"):
        check_callback_url("https://hooks.example.com/x", settings(), resolve=resolver(address))


def test_public_https_url_passes() -> None:
    assert check_callback_url("https://hooks.example.com/x", settings(), resolve=resolver(PUBLIC)) == [PUBLIC]


def test_one_internal_address_among_public_ones_is_enough_to_refuse() -> None:
    with pytest.raises(UnsafeCallbackUrl):
        check_callback_url("https://hooks.example.com/x", settings(), resolve=resolver(PUBLIC, "10.0.0.1"))


def test_http_needs_configuration() -> None:
    with pytest.raises(UnsafeCallbackUrl, match="scheme 'http' refused"):
        check_callback_url("http://hooks.example.com/x", settings(), resolve=resolver(PUBLIC))
    allowed = settings(callback_allow_http=True)
    assert check_callback_url("http://hooks.example.com/x", allowed, resolve=resolver(PUBLIC)) == [PUBLIC]
    with pytest.raises(UnsafeCallbackUrl, match="scheme 'ftp' refused"):
        check_callback_url("ftp://hooks.example.com/x", allowed, resolve=resolver(PUBLIC))


def test_allow_listed_hosts_may_be_internal() -> None:
    lab = settings(callback_allow_http=True, callback_allowed_hosts=["LocalHost", "127.0.0.1"])
    assert check_callback_url("http://localhost:8080/cb", lab, resolve=resolver("127.0.0.1")) == ["127.0.0.1"]
    assert check_callback_url("http://127.0.0.1:8080/cb", lab, resolve=resolver("127.0.0.1"))


def test_credentials_in_the_url_are_refused() -> None:
    with pytest.raises(UnsafeCallbackUrl, match="credentials"):
        check_callback_url("https://user:pw@hooks.example.com/x", settings(), resolve=resolver(PUBLIC))


def test_unresolvable_host_is_retryable() -> None:
    def fail(host: str, port: int) -> Sequence[str]:
        raise OSError("Name or service not known")

    with pytest.raises(RetryableError) as caught:
        check_callback_url("https://nowhere.example/x", settings(), resolve=fail)
    assert caught.value.code == "callback_unresolved"


# --- delivery outcomes (mock transport; the real HTTP receiver is in the integration tests) ---


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (200, DeliveryStatus.DELIVERED),
        (204, DeliveryStatus.DELIVERED),
        (410, DeliveryStatus.GONE),
        (500, DeliveryStatus.RETRY),
        (503, DeliveryStatus.RETRY),
        (429, DeliveryStatus.RETRY),
        (408, DeliveryStatus.RETRY),
        (302, DeliveryStatus.REJECTED),
        (400, DeliveryStatus.REJECTED),
        (404, DeliveryStatus.REJECTED),
    ],
)
def test_status_codes_map_to_outcomes(code: int, status: DeliveryStatus) -> None:
    assert classify_status(code) is status


def sender_answering(
    handler: Callable[[httpx.Request], httpx.Response], **overrides: Any
) -> tuple[CallbackSender, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    sender = CallbackSender(
        settings(**overrides), resolve=resolver(PUBLIC), transport=httpx.MockTransport(record)
    )
    return sender, seen


def test_delivery_goes_to_the_vetted_address_with_the_original_host() -> None:
    sender, seen = sender_answering(lambda r: httpx.Response(204))
    outcome = sender.deliver("https://hooks.example.com:8443/atelier", event(), requester="shop")
    assert outcome.status is DeliveryStatus.DELIVERED and outcome.final
    (request,) = seen
    assert request.url.host == PUBLIC and request.url.port == 8443
    assert request.headers["host"] == "hooks.example.com:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.com"
    assert verify(request.content, request.headers, SECRET) == event()
    assert request.headers["webhook-id"] == outcome.message_id == message_id(JOB, JobEventType.SUCCEEDED)


def test_retry_after_is_reported() -> None:
    sender, _ = sender_answering(lambda r: httpx.Response(503, headers={"retry-after": "120"}))
    outcome = sender.deliver("https://hooks.example.com/x", event(), requester="shop")
    assert (outcome.status, outcome.http_status, outcome.retry_after_s) == (DeliveryStatus.RETRY, 503, 120.0)
    assert not outcome.final


def test_redirects_are_not_followed() -> None:
    sender, seen = sender_answering(
        lambda r: httpx.Response(307, headers={"location": "http://169.254.169.254/"})
    )
    outcome = sender.deliver("https://hooks.example.com/x", event(), requester="shop")
    assert outcome.status is DeliveryStatus.REJECTED and "redirects are not followed" in outcome.reason
    assert len(seen) == 1


def test_connection_errors_and_timeouts_are_retried() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    for handler in (refuse, slow):
        sender, _ = sender_answering(handler)
        assert (
            sender.deliver("https://hooks.example.com/x", event(), requester="s").status
            is DeliveryStatus.RETRY
        )


def test_refused_url_is_rejected_without_a_request() -> None:
    sender, seen = sender_answering(lambda r: httpx.Response(200))
    outcome = sender.deliver("http://hooks.example.com/x", event(), requester="shop")
    assert outcome.status is DeliveryStatus.REJECTED and "scheme 'http' refused" in outcome.reason
    assert seen == []


def test_delivery_without_any_secret_is_a_permanent_error() -> None:
    sender = CallbackSender(settings(callback_secret=None), resolve=resolver(PUBLIC))
    with pytest.raises(PermanentError) as caught:
        sender.deliver("https://hooks.example.com/x", event(), requester="shop")
    assert caught.value.code == "callback_secret_missing"


def test_every_callback_names_its_sender_and_type_and_has_the_configured_deadline() -> None:
    sender, seen = sender_answering(lambda r: httpx.Response(204), callback_timeout_s=7.0)
    sender.deliver("https://hooks.example.com/x", event(), requester="shop")
    sender.deliver("https://hooks.example.com/x", event(), requester="shop", timeout_s=2.0)
    first, second = seen
    assert (first.headers["user-agent"], first.headers["content-type"]) == (
        "atelier-callbacks/1",
        "application/json",
    )
    assert first.extensions["timeout"] == {"connect": 7.0, "read": 7.0, "write": 7.0, "pool": 7.0}
    assert second.extensions["timeout"]["read"] == 2.0


def test_only_a_delivery_that_did_not_succeed_is_logged_by_the_sender(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The job's outcome line (``worker.notifications``) says ``delivered``: one line per callback."""
    answers = iter([httpx.Response(204), httpx.Response(503)])
    sender, _ = sender_answering(lambda r: next(answers))
    with caplog.at_level("DEBUG", logger="worker.callbacks"):
        sender.deliver("https://hooks.example.com/x", event(), requester="shop")
        assert caplog.records == []
        sender.deliver("https://hooks.example.com/x", event(), requester="shop")
    (line,) = caplog.records
    assert line.levelname == "WARNING" and "HTTP 503" in line.getMessage()
