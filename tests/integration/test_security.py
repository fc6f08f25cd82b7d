"""Secrets never leave the configuration: a real worker runs succeeding, retried and failing jobs
with known secrets (S3 secret key, callback signing secret, and, where ``rabbitmqctl`` can add a
user, a broker password), and none of them, plain or base64, appears in the worker's log, the
producer's log records, the job records or the callback bodies.

Jobs (one ``celery -A worker.app worker`` on the try-on and callback queues; the listing queue
has no consumer): a try-on from attributes (succeeds, on the session's Triton); a try-on of a
listing job still queued (``garment_not_ready``: retried, then failed when attempts run out);
a try-on of a listing that does not exist (``garment_not_found``: failed at once). The receiver
answers 503 to each event's first POST, so every callback is retried once too.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import shutil
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from core.contracts.jobs import JobEventType, JobRecord, JobState
from core.worker_settings import new_webhook_secret
from embedded.receiver import Received
from embedded.stack import Pool, Stack
from embedded.triton import TritonServer
from producer.client import Producer
from tests.integration.services import BASE, require_services

pytestmark = [pytest.mark.triton, pytest.mark.slow]

CALLBACK_SECRET = new_webhook_secret()
ALL = [e.value for e in JobEventType]
TIMEOUT_S = 180.0


def forms(secret: str) -> set[str]:
    """``secret`` as it could leak: plain, base64 (standard and URL-safe), and for a
    ``whsec_`` secret its key part and the key bytes in hex."""
    found = {
        secret,
        base64.b64encode(secret.encode()).decode(),
        base64.urlsafe_b64encode(secret.encode()).decode(),
    }
    if secret.startswith("whsec_"):
        key = secret.removeprefix("whsec_")
        found |= {key, base64.b64decode(key).hex()}
    return {form.rstrip("=") for form in found}


@contextlib.contextmanager
def broker_user() -> Iterator[tuple[str, str | None]]:
    """A broker URL with a fresh user and random password, and that password; the shared URL
    and ``None`` when ``rabbitmqctl`` cannot add users here."""
    rabbitmqctl = shutil.which("rabbitmqctl")
    user, password = f"atelier-sec-{secrets.token_hex(4)}", f"amqp-{secrets.token_hex(16)}"

    def ctl(*args: str) -> bool:
        return (
            rabbitmqctl is not None
            and subprocess.run([rabbitmqctl, "-q", *args], capture_output=True).returncode == 0
        )

    if not (ctl("add_user", user, password) and ctl("set_permissions", "-p", "/", user, ".*", ".*", ".*")):
        yield BASE.broker_url.get_secret_value(), None
        return
    try:
        shared = urllib.parse.urlsplit(BASE.broker_url.get_secret_value())
        netloc = f"{user}:{password}@{shared.hostname}:{shared.port or 5672}"
        yield urllib.parse.urlunsplit((shared.scheme, netloc, shared.path, "", "")), password
    finally:
        ctl("delete_user", user)


class FirstPostFails:
    """503 to each event's first POST (a callback retry), 204 after."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, received: Received) -> int:
        with self.lock:
            first = received.headers["webhook-id"] not in self.seen
            self.seen.add(received.headers["webhook-id"])
        return 503 if first else 204


def test_secrets_never_appear_in_logs_records_or_callback_bodies(
    triton: TritonServer, tmp_path_factory: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture
) -> None:
    require_services()
    caplog.set_level("DEBUG")
    state = tmp_path_factory.mktemp("security")
    with contextlib.ExitStack() as stack:
        broker_url, broker_password = stack.enter_context(broker_user())
        services = stack.enter_context(
            Stack(
                tag="sec",
                workdir=state,
                triton_grpc_url=triton.grpc_url,
                broker_url=broker_url,
                answer=FirstPostFails(),
                workers=[Pool("security", queues=("tryon", "callbacks"), concurrency=2, loglevel="DEBUG")],
                settings={
                    "callback_secret": CALLBACK_SECRET,
                    "callback_retry_schedule_s": [0.5, 1.0],
                    "job_retry_attempts": 2,
                    "job_retry_backoff_base_s": 0.2,
                },
            )
        )
        assert services.receiver is not None
        settings, producer, receiver = services.settings, services.producer, services.receiver
        worker = services.workers["security"]
        s3_secret = settings.s3_secret_key.get_secret_value()

        def tryon(garment: dict[str, Any]) -> str:
            return producer.submit(
                {
                    "kind": "tryon",
                    "requester": "shop-sec",
                    "shopper_ref": "anon-sec",
                    "measurements": {"height": 170, "weight": 65, "chest": 92, "waist": 76, "hips": 98},
                    "garment": garment,
                    "size": "M",
                    "seed": 5,
                    "output": {"format": "png", "size": 64},
                    "callback": {"url": receiver.url_for("shop-sec"), "events": ALL},
                }
            )

        never_run = producer.submit(
            {
                "kind": "listing",
                "requester": "shop-sec",
                "listing_id": "SKU-SEC",
                "attributes": {"category": "coat", "colour": "green"},
                "output": {"format": "png", "size": 64},
            }
        )
        jobs = {
            tryon({"source": "attributes", "category": "coat", "colour": "green"}): "succeeded",
            tryon({"source": "listing", "job_id": never_run}): "garment_not_ready",
            tryon({"source": "listing", "job_id": "f" * 32}): "garment_not_found",
        }
        records = wait_terminal(producer, jobs)
        outcomes = {j: r.state.value if r.error is None else r.error.code for j, r in records.items()}
        assert outcomes == jobs, worker.log_tail()
        assert records[next(j for j, o in jobs.items() if o == "garment_not_ready")].attempts == 2
        # queued, started, and the outcome per job, each answered 503 once, then 204
        assert receiver.wait_for(lambda got: len(got) >= 2 * 3 * len(jobs), TIMEOUT_S), worker.log_tail()
        worker.stop()

        leaked = [secret for secret in (s3_secret, CALLBACK_SECRET, broker_password) if secret]
        texts = {
            "worker log": worker.log_text(),
            "producer log": caplog.text,
            "job records": " ".join(producer.status(j).model_dump_json() for j in [*jobs, never_run]),
            "callback bodies": " ".join(r.body.decode() for r in receiver.received),
        }
        assert "will retry in" in texts["worker log"] and "garment_not_found" in texts["worker log"]
        assert texts["callback bodies"].count("X-Amz-Signature") == 2  # the succeeded job's link, twice
        for where, text in texts.items():
            for secret in leaked:
                for form in forms(secret):
                    assert form not in text, f"a secret ({len(secret)} chars) appears in the {where}"


def wait_terminal(producer: Producer, job_ids: Any) -> dict[str, JobRecord]:
    deadline = time.monotonic() + TIMEOUT_S
    records: dict[str, JobRecord] = {}
    while len(records) < len(job_ids):
        assert time.monotonic() < deadline, {j: producer.status(j).state for j in job_ids}
        for job_id in job_ids:
            record = producer.status(job_id)
            if record.state.terminal and record.state is not JobState.RUNNING:
                records[job_id] = record
        time.sleep(0.25)
    return records
