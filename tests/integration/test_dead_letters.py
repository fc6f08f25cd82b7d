"""Poison messages, a job that kills its worker every time, and the dead-letter tools, on real
RabbitMQ, Redis, Triton and S3 with one real worker process.

One worker per module consumes the listing, try-on and callback queues of a private namespace,
with ``delivery_limit`` 2, a 4 KiB ``max_message_bytes``; it runs the test-only
``bench.faults.crash_app``, armed to crash its pool process on listing id ``crash-me``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bench.faults.crash_app import CRASH_APP, CRASH_LISTING_VARIABLE
from bench.faults.poison import parked_job, poison_messages, publish_raw, task_body
from core.contracts.codes import ErrorCode
from core.contracts.jobs import JobRecord, JobState
from core.dead_letters import DeadLetter, DeadLetterQueue, dead_letter_headers
from core.topology import LISTING_TASK
from core.worker_settings import WorkerSettings
from embedded.stack import Pool, Stack
from embedded.triton import TritonServer
from embedded.workers import CeleryWorker
from producer.cli import app as cli_app
from producer.client import Producer
from tests.integration.services import require_services

pytestmark = [pytest.mark.triton, pytest.mark.slow]

CRASH_LISTING_ID = "crash-me"
MAX_BYTES = 4096
TIMEOUT_S = 90.0


@dataclass
class Rig:
    settings: WorkerSettings
    producer: Producer
    dlq: DeadLetterQueue
    worker: CeleryWorker
    logs: Path

    def listing(self, listing_id: str = "SKU-DLQ-1") -> dict[str, Any]:
        return {
            "kind": "listing",
            "requester": "shop-dlq",
            "listing_id": listing_id,
            "attributes": {"category": "t_shirt", "colour": "red"},
            "variants": 1,
            "seed": 5,
            "output": {"format": "png", "size": 64},
        }

    def publish_raw(self, body: bytes, **options: Any) -> str:
        return publish_raw(self.settings, body, **options)

    def wait_until(self, what: str, check: Callable[[], bool], timeout_s: float = TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not check():
            if time.monotonic() > deadline:
                pytest.fail(f"{what} not within {timeout_s:.0f} s; worker log:\n{self.worker.log_tail()}")
            time.sleep(0.3)

    def wait_letters(self, count: int) -> dict[str, DeadLetter]:
        letters: list[DeadLetter] = []

        def enough() -> bool:
            letters[:] = self.dlq.list()
            return len(letters) >= count

        self.wait_until(f"{count} dead letters", enough)
        return {letter.message_id: letter for letter in letters}

    def wait_job(self, job_id: str) -> JobRecord:
        self.wait_until(f"job {job_id} ended", lambda: self.producer.status(job_id).state.terminal)
        return self.producer.status(job_id)

    def parked_job(self, request: dict[str, Any]) -> tuple[str, bytes, dict[str, Any]]:
        """A queued job whose message sits in no queue: (job id, body, headers)."""
        return parked_job(self.settings, request)


@pytest.fixture(scope="module")
def rig(triton: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    require_services()
    state = tmp_path_factory.mktemp("dead-letters")
    worker = Pool(
        "dlq",
        queues=("listing", "tryon", "callbacks"),
        app=CRASH_APP,
        env={CRASH_LISTING_VARIABLE: CRASH_LISTING_ID},
    )
    settings = {"delivery_limit": 2, "job_retry_attempts": 10, "max_message_bytes": MAX_BYTES}
    with Stack(
        tag="dlq",
        workdir=state,
        triton_grpc_url=triton.grpc_url,
        receiver=False,
        workers=[worker],
        settings=settings,
    ) as stack:
        dlq = DeadLetterQueue(stack.settings)
        yield Rig(stack.settings, stack.producer, dlq, stack.workers["dlq"], stack.logs)


def test_poison_messages_are_dead_lettered_with_a_reason_and_a_good_job_after_them_succeeds(rig: Rig) -> None:
    rig.dlq.purge()
    sent, job_id = poison_messages(rig.settings, rig.listing("SKU-DLQ-SCHEMA"), max_bytes=MAX_BYTES)
    good = rig.producer.submit(rig.listing("SKU-DLQ-GOOD"))

    assert rig.wait_job(good).state is JobState.SUCCEEDED
    letters = rig.wait_letters(len(sent))
    assert {code: letters[mid].reason.split(":")[0] for code, mid in sent.items()} == {c: c for c in sent}
    for letter in letters.values():
        assert letter.queue == rig.settings.listing_queue and letter.death_count == 1
        assert letter.first_death_at is not None
    assert "schema_version" in letters[sent["invalid_request"]].reason
    assert letters[sent["invalid_request"]].job_id == job_id
    refused = rig.producer.status(job_id)
    assert refused.state is JobState.FAILED and refused.error is not None
    assert (refused.error.code, refused.error.retryable) == ("invalid_request", False)
    assert "schema_version" in refused.error.message
    assert rig.worker.is_alive()


def test_a_job_that_kills_its_worker_every_time_is_dead_lettered_after_the_delivery_limit(rig: Rig) -> None:
    rig.dlq.purge()
    job_id = rig.producer.submit(rig.listing(CRASH_LISTING_ID))

    (letter,) = rig.wait_letters(1).values()
    assert (letter.job_id, letter.task, letter.queue) == (job_id, LISTING_TASK, rig.settings.listing_queue)
    assert letter.reason.startswith("delivery_limit")
    assert letter.first_death_at is not None
    received = f"{LISTING_TASK}[{job_id}] received"
    assert rig.worker.log_text().count(received) == rig.settings.delivery_limit + 1
    time.sleep(2.0)
    assert rig.worker.log_text().count(received) == rig.settings.delivery_limit + 1  # not looping
    assert rig.dlq.list() == [letter]
    # the process died before the job started: the record stays queued until a replay, or until
    # the sweeper finds it stale (tests/integration/test_sweeper.py)
    assert rig.producer.status(job_id).state is JobState.QUEUED
    good = rig.producer.submit(rig.listing("SKU-DLQ-AFTER-CRASH"))
    assert rig.wait_job(good).state is JobState.SUCCEEDED


def test_dlq_list_replay_and_purge_from_the_cli(rig: Rig) -> None:
    rig.dlq.purge()
    env = rig.settings.environment()
    runner = CliRunner()
    job_id, body, headers = rig.parked_job(rig.listing("SKU-DLQ-REPLAY"))
    parked = dead_letter_headers(
        headers,
        code=ErrorCode.INVALID_REQUEST,
        detail="operator_test: parked",
        queue=rig.settings.listing_queue,
        job_id=job_id,
    )
    replay_id = rig.publish_raw(
        body,
        headers=parked,
        exchange=rig.settings.dead_letter_exchange,
        routing_key=rig.settings.listing_queue,
    )
    refused = rig.publish_raw(task_body({}), headers={"task": "atelier.no.such.task", "id": "n2"})
    rig.wait_letters(2)

    time.sleep(0.5)  # the broker returns the messages the last listing held a moment after it closed
    listed = runner.invoke(cli_app, ["dlq", "list", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    assert replay_id in listed.output and "operator_test: parked" in listed.output
    assert refused in listed.output and "unknown_task" in listed.output

    time.sleep(0.5)
    replayed = runner.invoke(cli_app, ["dlq", "replay", replay_id], env=env)
    assert replayed.exit_code == 0, replayed.output
    assert rig.wait_job(job_id).state is JobState.SUCCEEDED
    assert set(rig.wait_letters(1)) == {refused}

    assert runner.invoke(cli_app, ["dlq", "replay"], env=env).exit_code == 2
    time.sleep(0.5)
    purged = runner.invoke(cli_app, ["dlq", "purge", "--yes"], env=env)
    assert purged.exit_code == 0 and "1 dead letters purged" in purged.output
    assert rig.dlq.list() == []
