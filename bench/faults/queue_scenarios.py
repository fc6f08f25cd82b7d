"""The fault scenarios about what reaches the queues: poison messages, a job that crashes its
worker on every delivery, and cancels racing the worker's start (scenarios 6 to 8 of the suite).

Same shape as ``bench/faults/scenarios.py``: ``(workdir, triton_grpc_url, size) -> ScenarioResult``.
"""

from __future__ import annotations

import contextlib
import random
import statistics
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

from bench.faults.checks import ScenarioResult, count_outcomes
from bench.faults.crash_app import CRASH_APP, CRASH_LISTING_VARIABLE
from bench.faults.poison import poison_messages as publish_poison
from bench.faults.rig import Rig
from bench.faults.scenarios import (
    FAILED_EVENTS,
    JOB_DEADLINE_S,
    SUCCEEDED_EVENTS,
    _finished_at,
    _wait_callbacks,
)
from core.contracts.jobs import JobRecord, JobState
from core.dead_letters import DeadLetter, DeadLetterQueue
from core.errors import ErrorCode
from core.jobs import JobNotFound, cancel_refusal
from producer.client import Producer
from worker.sweeper import Outcome, Sweeper

#: how long a scenario waits for dead letters to arrive
LETTER_DEADLINE_S = 120.0


def _wait_letters(rig: Rig, count: int, timeout_s: float = LETTER_DEADLINE_S) -> list[DeadLetter]:
    """The dead letters once there are ``count`` (or all there are at ``timeout_s``)."""
    queue = DeadLetterQueue(rig.settings)
    deadline = time.monotonic() + timeout_s
    while True:
        letters = queue.list()
        if len(letters) >= count or time.monotonic() > deadline:
            return letters
        time.sleep(0.5)


# --- 6. poison messages ---
#: size -> rounds; each round publishes one message of each poison kind between good jobs
POISON_ROUNDS = {"short": 2, "long": 20}
GOOD_PER_ROUND = 5
#: the workers' message size limit in this scenario
POISON_MAX_BYTES = 4096


def poison_messages(workdir: Path, triton_grpc_url: str, size: str) -> ScenarioResult:
    """Publish raw poison messages (not JSON, wrong ``schema_version``, missing arguments,
    oversized, an unknown task, not a task at all) between good jobs: each is dead-lettered once
    with a reason an operator can read, the job behind the wrong-version message ends ``failed``
    saying so, and the same worker process keeps serving the good jobs."""
    rounds = POISON_ROUNDS[size]
    result = ScenarioResult("poison_messages", size, 0, 0)
    started = time.monotonic()
    overrides = {"max_message_bytes": POISON_MAX_BYTES}
    with Rig(
        tag="fault-poison", workdir=workdir, triton_grpc_url=triton_grpc_url, overrides=overrides
    ) as rig:
        rig.start_workers({"listing": 1, "callbacks": 1})
        pid = rig.workers["listing"].pid
        requests: dict[str, dict[str, Any]] = {}
        sent: dict[str, str] = {}  # message id -> the reason code it must be dead-lettered with
        refused_jobs: list[str] = []
        for r in range(rounds):
            for i in range(GOOD_PER_ROUND):
                request = rig.listing(r * GOOD_PER_ROUND + i, "shop-poison")
                requests[rig.producer.submit(request)] = request
            request = rig.listing(10_000 + r, "shop-poison")
            by_code, refused = publish_poison(rig.settings, request, max_bytes=POISON_MAX_BYTES)
            sent |= {message_id: code for code, message_id in by_code.items()}
            requests[refused] = request
            refused_jobs.append(refused)
        records = rig.wait_terminal(requests, JOB_DEADLINE_S)
        letters = {letter.message_id: letter for letter in _wait_letters(rig, len(sent))}
        events = {j: FAILED_EVENTS if j in refused_jobs else SUCCEEDED_EVENTS for j in requests}
        outcomes = _wait_callbacks(rig, records, lambda job_id: events[job_id] - {"job.started"})
        object_sets = {j: rig.object_sets(requests[j], r) for j, r in records.items() if r.state.terminal}
        count_outcomes(result, records, object_sets, rig.receiver.received)

        result.jobs = len(requests)
        result.faults = dict(Counter(f"poison: {code}" for code in sent.values()))
        result.faults_injected = len(sent)
        result.figures["dead letters"] = len(letters)
        result.figures["dead letters by reason"] = dict(
            Counter(letter.reason.split(":")[0] for letter in letters.values())
        )
        example = next(
            (letters[m].reason for m, c in sent.items() if c == "invalid_request" and m in letters), ""
        )
        result.figures["reason an operator reads (wrong schema_version)"] = example[:160]
        good = [j for j in requests if j not in refused_jobs]
        result.checks = {
            "every poison message dead-lettered once": all(
                m in letters and letters[m].death_count == 1 for m in sent
            ),
            "each with its reason code": all(
                m in letters and letters[m].reason.startswith(c) for m, c in sent.items()
            ),
            "the job behind a wrong schema_version failed with invalid_request": all(
                records[j].state is JobState.FAILED
                and (error := records[j].error) is not None
                and error.code is ErrorCode.INVALID_REQUEST
                and "schema_version" in error.message
                for j in refused_jobs
            ),
            "its job.failed callback was delivered": all(
                outcomes[j].get("job.failed") == "delivered" for j in refused_jobs
            ),
            "every good job succeeded": all(records[j].state is JobState.SUCCEEDED for j in good),
            "the same worker process kept serving": rig.workers["listing"].pid == pid
            and rig.workers["listing"].is_alive(),
        }
    result.wall_s = round(time.monotonic() - started, 1)
    return result


# --- 7. a job that crashes its worker on every delivery ---
#: size -> (crashing jobs, good jobs)
CRASH_SIZES = {"short": (2, 8), "long": (6, 60)}
CRASH_LISTING_ID = "SKU-FAULT-CRASH"
#: deliveries before RabbitMQ dead-letters a message (the quorum queue's delivery limit)
CRASH_DELIVERY_LIMIT = 2
#: the sweeper's wait before a job still queued counts as stale (compressed)
CRASH_QUEUED_TIMEOUT_S = 1.0


def crash_loop(workdir: Path, triton_grpc_url: str, size: str) -> ScenarioResult:
    """Jobs whose worker process dies on every delivery (workers of the test-only
    ``bench.faults.crash_app``), between good jobs: each crashing message is dead-lettered
    after ``delivery_limit`` + 1 deliveries instead of looping; the good jobs succeed; then the
    sweeper finds the crashing jobs stale in ``queued``, publishes each once more
    (dead-lettered again) and fails it with ``job_stuck``, so no job is left hanging, and its
    ``job.failed`` callback is delivered."""
    crashing, good_jobs = CRASH_SIZES[size]
    result = ScenarioResult("crash_loop", size, crashing + good_jobs, 0)
    started = time.monotonic()
    overrides = {
        "delivery_limit": CRASH_DELIVERY_LIMIT,
        "queued_timeout_s": CRASH_QUEUED_TIMEOUT_S,
        "queued_requeues": 1,
    }
    with Rig(tag="fault-crash", workdir=workdir, triton_grpc_url=triton_grpc_url, overrides=overrides) as rig:
        rig.start_workers(
            {"listing": 1, "callbacks": 1}, env={CRASH_LISTING_VARIABLE: CRASH_LISTING_ID}, app=CRASH_APP
        )
        requests: dict[str, dict[str, Any]] = {}
        crash_ids: list[str] = []
        per_crash = good_jobs // crashing
        for c in range(crashing):
            request = {**rig.listing(20_000 + c, "shop-crash"), "listing_id": CRASH_LISTING_ID}
            job_id = rig.producer.submit(request)
            requests[job_id] = request
            crash_ids.append(job_id)
            for i in range(per_crash):
                request = rig.listing(c * per_crash + i, "shop-crash")
                requests[rig.producer.submit(request)] = request
        good = [j for j in requests if j not in crash_ids]
        good_records = rig.wait_terminal(good, JOB_DEADLINE_S)
        first = _wait_letters(rig, crashing)
        time.sleep(2.0)  # a looping message would be delivered again now
        log = rig.workers["listing"].log_text()
        deliveries = {j: log.count(f"[{j}] received") for j in crash_ids}
        still_queued = [j for j in crash_ids if rig.producer.status(j).state is JobState.QUEUED]

        sweeper = Sweeper(rig.settings)
        sweeps: Counter[str] = Counter()
        deadline = time.monotonic() + JOB_DEADLINE_S
        try:
            while time.monotonic() < deadline:
                time.sleep(CRASH_QUEUED_TIMEOUT_S + 0.1)
                report = sweeper.sweep()
                sweeps.update(o.value for j, o in report.outcomes.items() if j in crash_ids)
                if all(rig.producer.status(j).state.terminal for j in crash_ids):
                    break
        finally:
            sweeper.close()
        records = good_records | rig.wait_terminal(crash_ids, 10.0)
        events = {
            j: FAILED_EVENTS - {"job.started"} if j in crash_ids else SUCCEEDED_EVENTS for j in requests
        }
        outcomes = _wait_callbacks(rig, records, lambda job_id: events[job_id])
        object_sets = {j: rig.object_sets(requests[j], r) for j, r in records.items() if r.state.terminal}
        count_outcomes(result, records, object_sets, rig.receiver.received)
        letters = _wait_letters(rig, 2 * crashing)

        result.faults = {"worker process killed by the job it runs": sum(deliveries.values())}
        result.faults_injected = sum(deliveries.values())
        result.figures["deliveries of each crashing message before dead-lettering"] = sorted(
            set(deliveries.values())
        )
        result.figures["dead letters: first round, then after the sweeper's re-publish"] = [
            len(first),
            len(letters),
        ]
        result.figures["sweeper outcomes for the crashing jobs"] = dict(sweeps)
        done = [t for j in good if (t := _finished_at(records[j])) is not None]
        result.figures["good jobs finished"] = len(done)
        result.checks = {
            f"each crashing message was delivered {CRASH_DELIVERY_LIMIT + 1} times, then dead-lettered": all(
                n == CRASH_DELIVERY_LIMIT + 1 for n in deliveries.values()
            )
            and len(first) >= crashing
            and len(letters) == 2 * crashing,
            "dead letters name delivery_limit as the reason": all(
                letter.reason.startswith("delivery_limit") for letter in letters
            ),
            "the crashing jobs were left queued (they never started)": sorted(still_queued)
            == sorted(crash_ids),
            "every good job succeeded": all(records[j].state is JobState.SUCCEEDED for j in good),
            "the sweeper re-published each once, then failed it with job_stuck": sweeps[
                Outcome.REQUEUED.value
            ]
            == crashing
            and sweeps[Outcome.FAILED.value] == crashing
            and all(
                records[j].state is JobState.FAILED
                and records[j].error is not None
                and records[j].error.code == ErrorCode.JOB_STUCK  # type: ignore[union-attr]
                for j in crash_ids
            ),
            "their job.failed callback was delivered": all(
                outcomes[j].get("job.failed") == "delivered" for j in crash_ids
            ),
        }
    result.wall_s = round(time.monotonic() - started, 1)
    return result


# --- 8. cancel racing the worker's start ---
#: size -> jobs, each canceled between 0 and twice the measured submit-to-start time
RACE_SIZES = {"short": 40, "long": 200}
#: jobs run uncanceled first, to measure how long a submit takes to reach ``running``
RACE_CALIBRATION_JOBS = 3


def cancel_race(workdir: Path, triton_grpc_url: str, size: str) -> ScenarioResult:
    """Cancel each job at a moment spread over twice the time a submit takes to end on this
    machine (measured first on uncanceled jobs), while the submit publishes, an idle worker
    picks the message up and runs it: each job ends either ``canceled`` (before it ran:
    no attempt, events queued + canceled; or while it ran: the worker stopped it at its next
    step, events queued + started + canceled) with no objects, or ``succeeded`` (the job ended
    before the cancel: refused, queued + started + succeeded), never both."""
    jobs = RACE_SIZES[size]
    result = ScenarioResult("cancel_race", size, jobs, 0)
    started = time.monotonic()
    with Rig(tag="fault-race", workdir=workdir, triton_grpc_url=triton_grpc_url) as rig:
        rig.start_workers({"listing": 1, "callbacks": 1})
        window_s = 2 * _submit_to_end_s(rig)
        delays_s = [i * window_s / jobs for i in range(jobs)]
        random.Random(8).shuffle(delays_s)
        next_ids: list[str] = []
        answers: dict[str, JobRecord] = {}
        requests: dict[str, dict[str, Any]] = {}
        # the job id is chosen before the submit, so the cancel need not wait for it to return;
        # one producer per thread (a kombu connection is not shared between threads)
        with (
            mock.patch("producer.client.new_job_id", next_ids.pop),
            Producer(rig.settings) as submitter,
        ):
            for i, delay_s in enumerate(delays_s):
                job_id = uuid.uuid4().hex
                next_ids.append(job_id)
                request = {**rig.listing(30_000 + i, "shop-race"), "variants": 1}
                requests[job_id] = request
                submit = threading.Thread(target=submitter.submit, args=(request,))
                submit.start()
                time.sleep(delay_s)
                while job_id not in answers:
                    with contextlib.suppress(JobNotFound):  # not created yet
                        answers[job_id] = rig.producer.cancel(job_id)
                submit.join()
                rig.wait_terminal([job_id], JOB_DEADLINE_S)  # idle again before the next submit
        records = rig.records(requests)

        def expected(job_id: str) -> set[str]:
            record = records[job_id]
            if record.state is JobState.CANCELED:
                ran = {"job.started"} if record.started_at is not None else set()
                return {"job.queued", "job.canceled", *ran}
            return SUCCEEDED_EVENTS

        outcomes = _wait_callbacks(rig, records, expected)
        time.sleep(1.0)  # a stray callback would arrive now
        object_sets = {
            j: rig.object_sets(requests[j], r) for j, r in records.items() if r.state is JobState.SUCCEEDED
        }
        grouped = count_outcomes(result, records, object_sets, rig.receiver.received)

        ended = Counter(r.state.value for r in records.values())
        canceled = {j: r for j, r in records.items() if r.state is JobState.CANCELED}
        while_running = sum(r.started_at is not None for r in canceled.values())
        result.faults = {f"cancel 0-{window_s * 1000:.0f} ms into the submit": jobs}
        result.faults_injected = jobs
        result.figures["ended"] = dict(ended)
        result.figures["canceled while running (stopped at the next step)"] = while_running
        result.checks = {
            "each job ended canceled or succeeded": set(ended) <= {"canceled", "succeeded"},
            "both outcomes happened (the race was real)": len(ended) == 2,
            "a canceled job kept no result and no object": all(
                (r.results, rig.images.list_keys(f"listing/{j}/")) == ([], []) for j, r in canceled.items()
            ),
            "a job canceled before it ran never started": all(
                r.attempts == 0 for r in canceled.values() if r.started_at is None
            ),
            "the cancel's answer matches the outcome (accepted: canceled, or marked while running)": all(
                (cancel_refusal(answers[j]) is None) == (r.state is JobState.CANCELED)
                for j, r in records.items()
            ),
            "each job's events match its one outcome, each under one webhook-id": all(
                {e for (k, e) in grouped if k == j} == expected(j)
                and all(len({i.headers["webhook-id"] for i in grouped[(j, e)]}) == 1 for e in expected(j))
                for j in records
            ),
            "every callback recorded delivered": all(
                o == dict.fromkeys(expected(j), "delivered") for j, o in outcomes.items()
            ),
        }
    result.wall_s = round(time.monotonic() - started, 1)
    return result


def _submit_to_end_s(rig: Rig) -> float:
    """Median seconds from a submit call to its job ending ``succeeded`` (uncanceled jobs)."""
    spans = []
    for i in range(RACE_CALIBRATION_JOBS):
        began = datetime.now(UTC)
        job_id = rig.producer.submit({**rig.listing(39_000 + i, "shop-race"), "variants": 1})
        record = rig.wait_terminal([job_id], JOB_DEADLINE_S)[job_id]
        if record.finished_at is not None:
            spans.append((record.finished_at - began).total_seconds())
    return statistics.median(spans) if spans else 0.1
