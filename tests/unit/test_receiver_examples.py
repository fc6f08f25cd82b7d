"""The receiver examples (``examples/receivers``) verify a callback signed exactly as the worker
signs one (``worker.callbacks.sign`` over ``worker.callbacks.event_body``) with nothing but the
``standardwebhooks`` packages, in Python and in Node, and refuse a tampered body.

The Node example's dependency is installed by ``scripts/setup.sh`` (``npm ci --prefix
examples/receivers``): a missing ``node`` or ``node_modules`` fails here rather than skipping.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.contracts.jobs import JobEvent, JobEventType
from worker.callbacks import event_body, message_id, sign

RECEIVERS = Path(__file__).resolve().parents[2] / "examples" / "receivers"
SECRET = "whsec_" + base64.b64encode(b"receiver-example-secret-32-bytes").decode()
JOB_ID = "3f2a" * 8


def signed_callback() -> tuple[bytes, dict[str, str]]:
    event = JobEvent(
        type=JobEventType.SUCCEEDED,
        timestamp=datetime.now(UTC),
        data={
            "job_id": JOB_ID,
            "kind": "listing",
            "state": "succeeded",
            "requester": "shop-a",
            "subject": "SKU-1",
        },
    )
    body = event_body(event)
    return body, sign(body, [SECRET], message_id(JOB_ID, event.type))


def receiver_command(name: str) -> list[str]:
    if name == "python":
        return [sys.executable, str(RECEIVERS / "python_receiver.py")]
    node = shutil.which("node")
    assert node is not None, "node is missing: scripts/setup.sh installs it"
    assert (RECEIVERS / "node_modules" / "standardwebhooks").is_dir(), (
        "standardwebhooks is not installed: run `npm ci --prefix examples/receivers` (scripts/setup.sh)"
    )
    return [node, str(RECEIVERS / "node_receiver.mjs")]


def run_receiver(name: str, body: bytes, headers: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*receiver_command(name), *(f"{k}={v}" for k, v in headers.items())],
        input=body.decode(),
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "WEBHOOK_SECRET": SECRET},
        check=False,
    )


@pytest.mark.parametrize("receiver", ["python", "node"])
def test_receiver_example_accepts_a_worker_signed_callback_and_prints_its_type(receiver: str) -> None:
    body, headers = signed_callback()
    result = run_receiver(receiver, body, headers)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "job.succeeded"


@pytest.mark.parametrize("receiver", ["python", "node"])
def test_receiver_example_refuses_a_tampered_body(receiver: str) -> None:
    body, headers = signed_callback()
    tampered = body.replace(b'"shop-a"', b'"shop-b"')
    assert tampered != body
    result = run_receiver(receiver, tampered, headers)
    assert result.returncode == 1 and result.stdout == ""
    assert "refused" in result.stderr


@pytest.mark.parametrize("receiver", ["python", "node"])
def test_receiver_example_refuses_another_secret(receiver: str) -> None:
    body, _ = signed_callback()
    other = "whsec_" + base64.b64encode(b"someone-else-entirely-32-bytes!!").decode()
    headers = sign(body, [other], message_id(JOB_ID, JobEventType.SUCCEEDED))
    assert run_receiver(receiver, body, headers).returncode == 1
