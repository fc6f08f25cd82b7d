"""The fault scenarios: each runs jobs on real services while injecting one kind of fault.

A scenario is a function ``(workdir, triton_grpc_url, size) -> ScenarioResult``;
``bench/faults/catalog.py`` names them for the runner. This module holds the scenarios about
processes and servers failing (1 to 5); ``queue_scenarios.py`` those about messages (6 to 8).
``size`` is ``short`` (CI: about a minute each) or ``long``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.faults.checks import ScenarioResult, count_outcomes
from bench.faults.rig import Rig
from core.contracts.jobs import JobRecord, JobState
from core.errors import ErrorCode
from core.publish import PublishError
from embedded.rabbitmq import RabbitMQServer
from embedded.receiver import Received
from embedded.triton import DEFAULT_REPOSITORY, TritonServer

#: how long a scenario waits for its jobs to end before counting the rest as lost
JOB_DEADLINE_S = 600.0
#: how long it waits for every callback to reach a final outcome once the jobs have ended
#: (the long receiver scenario's backlog of slow and failing answers takes minutes to drain)
CALLBACK_DEADLINE_S = 300.0
#: the events a succeeded job sends
SUCCEEDED_EVENTS = {"job.queued", "job.started", "job.succeeded"}

Scenario = Callable[[Path, str, str], ScenarioResult]


def _finished_at(record: JobRecord) -> float | None:
    return record.finished_at.timestamp() if record.finished_at else None


def _recovery(fault_ends: list[float], done: list[float]) -> float | None:
    """Worst time from a fault's end to the next piece of work done after it."""
    gaps = [min((t for t in done if t >= end), default=None) for end in fault_ends]
    known = [gap - end for gap, end in zip(gaps, fault_ends, strict=True) if gap is not None]
    return round(max(known), 2) if known else None


def _wait_running(rig: Rig, job_ids: list[str], timeout_s: float) -> str | None:
    """A job that is ``running`` now (mid-job), or ``None`` if all have ended or time ran out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        records = rig.records(job_ids)
        if all(r.state.terminal for r in records.values()):
            return None
        running = [j for j, r in records.items() if r.state is JobState.RUNNING]
        if running:
            return running[0]
        time.sleep(0.05)
    return None


# --- 1. workers killed with SIGKILL mid-job ---
#: size -> (jobs, kills); kills alternate pool process / whole worker process group
KILL_SIZES = {"short": (40, 4), "long": (300, 16)}


def worker_sigkill(workdir: Path, triton_grpc_url: str, size: str) -> ScenarioResult:
    """SIGKILL the listing worker mid-job, repeatedly: its pool process (the parent forks a new
    one) or its whole process group (then a new worker is started). Every job must end
    ``succeeded`` with one set of objects and each event under one ``webhook-id``."""
    jobs, kills = KILL_SIZES[size]
    result = ScenarioResult("worker_sigkill", size, jobs, 0)
    started = time.monotonic()
    overrides = {"job_retry_attempts": kills + 2, "delivery_limit": kills + 4}
    with Rig(tag="fault-kill", workdir=workdir, triton_grpc_url=triton_grpc_url, overrides=overrides) as rig:
        rig.start_workers({"listing": 1, "callbacks": 2})
        requests = {}
        for i in range(jobs):
            # big jobs (8 variants of 512 px, a few hundred ms each): a kill lands mid-job
            request = rig.listing(i, "shop-kill", variants=8, size=512)
            requests[rig.producer.submit(request)] = request
        job_ids = list(requests)
        fault_ends: list[float] = []
        running_at_kill: dict[str, float] = {}  # a job seen running just before a kill -> when
        faults: Counter[str] = Counter()
        for n in range(kills):
            victim = _wait_running(rig, job_ids, timeout_s=60)
            if victim is None:
                break
            running_at_kill[victim] = time.time()
            if n % 2 == 0:
                if not rig.kill_pool_child("listing"):
                    continue
                faults["SIGKILL pool process"] += 1
            else:
                rig.kill_worker_group("listing")
                faults["SIGKILL worker process group + restart"] += 1
            fault_ends.append(time.time())
            _wait_done_after(rig, job_ids, fault_ends[-1], count=max(2, jobs // (kills + 1) // 2))
        records = rig.wait_terminal(job_ids, JOB_DEADLINE_S)
        # caught mid-run: running just before the kill and not finished until after it
        victims = {j for j, at in running_at_kill.items() if (_finished_at(records[j]) or float("inf")) > at}
        outcomes = _wait_callbacks(rig, records, lambda job_id: SUCCEEDED_EVENTS)
        object_sets = {j: rig.object_sets(requests[j], r) for j, r in records.items() if r.state.terminal}
        grouped = count_outcomes(result, records, object_sets, rig.receiver.received)

        result.faults = dict(faults)
        result.faults_injected = sum(faults.values())
        done = [t for r in records.values() if (t := _finished_at(r)) is not None]
        result.time_to_recover_s = _recovery(fault_ends, done)
        redelivered = {j for j, r in records.items() if r.attempts > 1}
        result.figures["jobs run more than once (redelivered)"] = len(redelivered)
        result.figures["faults that caught a job mid-run"] = len(victims)
        result.figures["killed mid-job and later succeeded"] = sum(
            records[v].state is JobState.SUCCEEDED for v in victims
        )
        result.checks = {
            "every job succeeded": result.succeeded == jobs,
            "every job killed mid-run was run again": bool(victims) and victims <= redelivered,
            "exactly one set of result objects per job": all(n == 1 for n in object_sets.values()),
            "every event received, each under one webhook-id": {
                key: len({i.headers["webhook-id"] for i in items}) for key, items in grouped.items()
            }
            == {(j, e): 1 for j in job_ids for e in SUCCEEDED_EVENTS},
            "every callback recorded delivered": all(
                o == dict.fromkeys(SUCCEEDED_EVENTS, "delivered") for o in outcomes.values()
            ),
        }
    result.wall_s = round(time.monotonic() - started, 1)
    return result


def _wait_done_after(
    rig: Rig, job_ids: list[str], since: float, *, count: int, timeout_s: float = 90
) -> None:
    """Wait until ``count`` jobs finished after ``since`` (or all ended): the pipeline flows again."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        records = rig.records(job_ids).values()
        after = sum((_finished_at(r) or 0) > since for r in records)
        if after >= count or all(r.state.terminal for r in records):
            return
        time.sleep(0.1)


def _wait_callbacks(
    rig: Rig, records: dict[str, JobRecord], events: Callable[[str], set[str]]
) -> dict[str, dict[str, str]]:
    """Each job's recorded callback outcomes, once every event in ``events(job_id)`` has a final one."""

    def settled(outcomes: dict[str, dict[str, str]]) -> bool:
        return all(
            set(outcomes[j]) >= events(j) and not any(o.startswith("retrying") for o in outcomes[j].values())
            for j in outcomes
        )

    deadline = time.monotonic() + CALLBACK_DEADLINE_S
    while True:
        outcomes = {j: rig.producer.status(j).callbacks for j in records}
        if settled(outcomes) or time.monotonic() > deadline:
            return outcomes
        time.sleep(0.25)


# --- 5. the callback receiver down, answering 500, slowly, or 410 ---
#: size -> (jobs, receiver outages, seconds per outage)
RECEIVER_SIZES = {"short": (40, 1, 8.0), "long": (300, 3, 15.0)}
#: compressed Standard Webhooks schedule (ATELIER_CALLBACK_RETRY_SCHEDULE_S): covers an outage
RETRY_SCHEDULE_S = [1.0, 1.0, 2.0, *([2.0] * 12)]
#: the receiver's deadline per attempt, and how long a "slow" answer takes
CALLBACK_TIMEOUT_S, SLOW_ANSWER_S = 1.0, 2.0
#: callback worker processes: delivery is I/O-bound and a slow receiver holds one per attempt
CALLBACK_CONCURRENCY = 4
#: requester -> how its endpoint misbehaves
BEHAVIOURS = ("shop-ok", "shop-500", "shop-slow", "shop-gone")


class FaultyEndpoint:
    """The receiver's answers: ``shop-500`` answers 500 twice per event, ``shop-slow`` answers
    its first POST of each event after ``SLOW_ANSWER_S`` (past the sender's deadline),
    ``shop-gone`` answers 410, ``shop-ok`` 204. Keeps (time, webhook-id, status) of each answer."""

    def __init__(self) -> None:
        self.posts: Counter[str] = Counter()
        self.answers: list[tuple[float, str, str, int]] = []
        self.slow = 0
        self.lock = threading.Lock()

    def __call__(self, received: Received) -> int:
        webhook_id = received.headers["webhook-id"]
        with self.lock:
            self.posts[webhook_id] += 1
            n = self.posts[webhook_id]
        status = 204
        if received.requester == "shop-500" and n <= 2:
            status = 500
        elif received.requester == "shop-slow" and n == 1:
            with self.lock:
                self.slow += 1
            time.sleep(SLOW_ANSWER_S)
        elif received.requester == "shop-gone":
            status = 410
        with self.lock:
            self.answers.append((time.time(), received.requester, webhook_id, status))
        return status


def callback_receiver_faults(workdir: Path, triton_grpc_url: str, size: str) -> ScenarioResult:
    """Callbacks to a receiver that is down, answers 500, answers slowly or answers 410, on a
    compressed retry schedule. Jobs must still succeed while the receiver is down (the callback
    worker, not the inference worker, waits); 410 stops the job's callbacks; every event's final
    outcome is recorded on its job."""
    jobs, outages, outage_s = RECEIVER_SIZES[size]
    result = ScenarioResult("callback_receiver_faults", size, jobs, 0)
    started = time.monotonic()
    endpoint = FaultyEndpoint()
    overrides: dict[str, Any] = {
        "callback_retry_schedule_s": RETRY_SCHEDULE_S,
        "callback_timeout_s": CALLBACK_TIMEOUT_S,
    }
    with Rig(
        tag="fault-hook",
        workdir=workdir,
        triton_grpc_url=triton_grpc_url,
        answer=endpoint,
        overrides=overrides,
    ) as rig:
        rig.start_workers({"listing": 1, "callbacks": CALLBACK_CONCURRENCY})
        requests = {}
        for i in range(jobs):
            request = rig.listing(i, BEHAVIOURS[i % len(BEHAVIOURS)])
            requests[rig.producer.submit(request)] = request
        job_ids = list(requests)
        windows: list[tuple[float, float]] = []
        gap_s = 0.0
        for _ in range(outages):
            time.sleep(gap_s)
            down_at = time.time()
            rig.receiver.stop()
            time.sleep(outage_s)
            rig.receiver.start()
            windows.append((down_at, time.time()))
            gap_s = outage_s
        records = rig.wait_terminal(job_ids, JOB_DEADLINE_S)

        def expected(job_id: str) -> set[str]:
            return SUCCEEDED_EVENTS if records[job_id].state is JobState.SUCCEEDED else set()

        outcomes = _wait_callbacks(rig, records, expected)
        object_sets = {j: rig.object_sets(requests[j], r) for j, r in records.items() if r.state.terminal}
        grouped = count_outcomes(result, records, object_sets, rig.receiver.received)

        answers = Counter(status for *_, status in endpoint.answers)
        result.faults = {
            "receiver down": len(windows),
            "HTTP 500 answers": answers[500],
            "slow answers (past the deadline)": endpoint.slow,
            "HTTP 410 answers": answers[410],
        }
        result.faults_injected = sum(result.faults.values())
        finished = [t for r in records.values() if (t := _finished_at(r)) is not None]
        during_outage = sum(any(a <= t <= b for a, b in windows) for t in finished)
        # recovery: from the receiver's return until every event due while it was down was delivered
        delivered_at = {wid: t for t, _, wid, status in endpoint.answers if status < 300}
        due = {
            items[0].headers["webhook-id"]: items[0].event.timestamp.timestamp()
            for items in grouped.values()
            if items[0].event is not None
        }
        recover = [
            delivered_at[wid] - up
            for _, up in windows
            for wid, at in due.items()
            if wid in delivered_at and at < up and delivered_at[wid] >= up
        ]
        result.time_to_recover_s = round(max(recover), 2) if recover else None
        running_s = [
            (r.finished_at - r.started_at).total_seconds()
            for r in records.values()
            if r.finished_at and r.started_at
        ]
        result.figures["jobs finished while the receiver was down"] = during_outage
        result.figures["longest job run (s)"] = round(max(running_s, default=0.0), 2)
        result.figures["receiver answers"] = dict(sorted(answers.items()))

        gone = [j for j in job_ids if requests[j]["requester"] == "shop-gone"]
        delivering = [j for j in job_ids if j not in gone]
        result.checks = {
            "every job succeeded": result.succeeded == jobs,
            "jobs kept finishing while the receiver was down": during_outage > 0,
            "no job ran longer than the slow answer (callbacks never block inference)": max(
                running_s, default=0.0
            )
            < SLOW_ANSWER_S,
            "500 and slow answers were retried and then delivered": all(
                outcomes[j] == dict.fromkeys(SUCCEEDED_EVENTS, "delivered") for j in delivering
            ),
            "410 stopped the job's callbacks: no event re-sent after a 410": all(
                len(items) == 1 for (j, _), items in grouped.items() if j in gone
            ),
            "410 recorded on the job, later events not sent": all(
                set(outcomes[j]) == SUCCEEDED_EVENTS
                and any(o.startswith("gone") for o in outcomes[j].values())
                and all(o.startswith("gone") or "410" in o for o in outcomes[j].values())
                for j in gone
            ),
        }
    result.wall_s = round(time.monotonic() - started, 1)
    return result


# --- 2. and 3. Triton killed and restarted; the S3 server stopped and restarted ---
#: size -> (jobs, outages, seconds each server stays down before it is started again)
RESTART_SIZES = {"short": (24, 1, 3.0), "long": (200, 3, 10.0)}
#: size -> jobs run by a small-budget worker while Triton stays down past its budget
BUDGET_JOBS = {"short": 4, "long": 12}
#: a retry budget that outlasts each outage: capped exponential backoff with jitter, compressed
PATIENT = {
    "job_retry_attempts": 30,
    "delivery_limit": 40,
    "job_retry_backoff_base_s": 0.5,
    "job_retry_backoff_max_s": 2.0,
    "inference_retry_attempts": 2,
    "inference_backoff_base_s": 0.2,
    "inference_backoff_max_s": 1.0,
}
#: the small budget (environment of the second worker): two attempts, then the job fails
SMALL_BUDGET_ENV = {"ATELIER_JOB_RETRY_ATTEMPTS": "2"}
#: the events a failed job sends
FAILED_EVENTS = {"job.queued", "job.started", "job.failed"}


def _kill_triton(triton: TritonServer) -> None:
    """SIGKILL Triton and its backend stubs (its process group), then reap it."""
    if triton.pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(triton.pid, signal.SIGKILL)
    triton.stop()


def _restart_run(
    rig: Rig,
    requests: dict[str, dict[str, Any]],
    outages: int,
    down_s: float,
    down: Callable[[], object],
    up: Callable[[], object],
) -> tuple[dict[str, JobRecord], list[float]]:
    """Take the server down ``outages`` times while jobs flow (after some finished), for ``down_s``
    plus its start; returns the records once all ended and each outage's end."""
    job_ids = list(requests)
    fault_ends: list[float] = []
    since = 0.0
    for _ in range(outages):
        _wait_done_after(rig, job_ids, since, count=max(2, len(job_ids) // (outages + 1) // 2))
        down()
        time.sleep(down_s)
        up()
        since = time.time()
        fault_ends.append(since)
    return rig.wait_terminal(job_ids, JOB_DEADLINE_S), fault_ends


def _restart_result(
    result: ScenarioResult,
    rig: Rig,
    requests: dict[str, dict[str, Any]],
    records: dict[str, JobRecord],
    fault_ends: list[float],
) -> dict[tuple[str, str], list[Received]]:
    """Count outcomes, figures and the checks every restart scenario shares."""
    events = {
        j: FAILED_EVENTS if r.state is JobState.FAILED else SUCCEEDED_EVENTS for j, r in records.items()
    }
    outcomes = _wait_callbacks(rig, records, lambda job_id: events[job_id])
    object_sets = {
        j: rig.object_sets(requests[j], r) for j, r in records.items() if r.state is JobState.SUCCEEDED
    }
    grouped = count_outcomes(result, records, object_sets, rig.receiver.received)
    done = [t for r in records.values() if (t := _finished_at(r)) is not None]
    result.time_to_recover_s = _recovery(fault_ends, done)
    retried = {j for j, r in records.items() if r.attempts > 1}
    result.figures["jobs retried (more than one attempt)"] = len(retried)
    result.figures["most attempts of one job"] = max((r.attempts for r in records.values()), default=0)
    result.checks.update(
        {
            "jobs waited and retried across the outage": bool(retried),
            "exactly one set of result objects per succeeded job": all(n == 1 for n in object_sets.values()),
            "every event received, each under one webhook-id": {
                key: len({i.headers["webhook-id"] for i in items}) for key, items in grouped.items()
            }
            == {(j, e): 1 for j in records for e in events[j]},
            "every callback recorded delivered": all(
                o == dict.fromkeys(events[j], "delivered") for j, o in outcomes.items()
            ),
        }
    )
    return grouped


def triton_restart(workdir: Path, triton_grpc_url: str, size: str) -> ScenarioResult:
    """SIGKILL Triton while jobs run and start it again on the same ports: the jobs wait and retry
    (capped exponential backoff with jitter) and succeed. Then a worker with a small budget
    (``ATELIER_JOB_RETRY_ATTEMPTS=2``) runs jobs while Triton stays down past that budget: they end
    ``failed`` with the reason, and their ``job.failed`` callback carries it. Starts its own Triton
    (``triton_grpc_url`` is not used: the shared one must stay up)."""
    jobs, outages, down_s = RESTART_SIZES[size]
    budget_jobs = BUDGET_JOBS[size]
    result = ScenarioResult("triton_restart", size, jobs + budget_jobs, 0)
    started = time.monotonic()
    triton = TritonServer(DEFAULT_REPOSITORY, log_path=workdir / "tritonserver.log")
    with (
        triton,
        Rig(tag="fault-triton", workdir=workdir, triton_grpc_url=triton.grpc_url, overrides=PATIENT) as rig,
    ):
        rig.start_workers({"listing": 1, "callbacks": 2})
        requests = {}
        for i in range(jobs):
            request = rig.listing(i, "shop-triton")
            requests[rig.producer.submit(request)] = request
        records, fault_ends = _restart_run(
            rig, requests, outages, down_s, down=lambda: _kill_triton(triton), up=triton.start
        )
        # second phase: Triton down for longer than a small-budget worker's retries
        rig.restart_worker("listing", env=SMALL_BUDGET_ENV)
        _kill_triton(triton)
        budget = {}
        for i in range(jobs, jobs + budget_jobs):
            request = rig.listing(i, "shop-budget")
            budget[rig.producer.submit(request)] = request
        budget_records = rig.wait_terminal(budget, JOB_DEADLINE_S)
        triton.start()
        requests |= budget
        records |= budget_records
        grouped = _restart_result(result, rig, requests, records, fault_ends)

        result.faults = {"Triton SIGKILL + restart": outages, "Triton down past a small retry budget": 1}
        result.faults_injected = sum(result.faults.values())
        reasons = {r.error.code if r.error else None for r in budget_records.values()}
        result.figures["reason the budget-exhausted jobs failed"] = sorted(str(r) for r in reasons)
        failed_events = [grouped.get((j, "job.failed"), []) for j in budget]
        result.checks.update(
            {
                "every job run while Triton came back succeeded": all(
                    records[j].state is JobState.SUCCEEDED for j in requests if j not in budget
                ),
                "budget-exhausted jobs failed after their 2 attempts, with the reason": all(
                    r.state is JobState.FAILED
                    and r.error is not None
                    and r.error.code.startswith("inference_")
                    and r.attempts == 2
                    for r in budget_records.values()
                ),
                "their job.failed callback carries the reason": all(
                    items
                    and items[0].event is not None
                    and items[0].event.data.get("error", {}).get("code") == records[j].error.code  # type: ignore[union-attr]
                    for j, items in zip(budget, failed_events, strict=True)
                ),
            }
        )
    result.wall_s = round(time.monotonic() - started, 1)
    return result


def s3_restart(workdir: Path, triton_grpc_url: str, size: str) -> ScenarioResult:
    """Stop the S3 server (SeaweedFS) while jobs run and start it again with the same data folder
    and ports: jobs retry on ``storage_unavailable`` (capped exponential backoff with jitter) and
    succeed, each with exactly one set of result objects."""
    jobs, outages, down_s = RESTART_SIZES[size]
    result = ScenarioResult("s3_restart", size, jobs, 0)
    started = time.monotonic()
    with Rig(tag="fault-s3", workdir=workdir, triton_grpc_url=triton_grpc_url, overrides=PATIENT) as rig:
        rig.start_workers({"listing": 1, "callbacks": 2})
        requests = {}
        for i in range(jobs):
            request = rig.listing(i, "shop-s3")
            requests[rig.producer.submit(request)] = request
        records, fault_ends = _restart_run(rig, requests, outages, down_s, down=rig.s3.stop, up=rig.s3.start)
        _restart_result(result, rig, requests, records, fault_ends)
        result.faults = {"S3 server stopped + restarted": outages}
        result.faults_injected = outages
        result.checks["every job succeeded"] = result.succeeded == jobs
    result.wall_s = round(time.monotonic() - started, 1)
    return result


# --- 4. RabbitMQ restarted ---
#: size -> (jobs at least, restarts, seconds the broker stays down before it is started again)
BROKER_SIZES = {"short": (40, 2, 3.0), "long": (300, 4, 10.0)}
#: seconds between two submits of the producer thread (it keeps submitting through the outages)
SUBMIT_INTERVAL_S = 0.2


class Submitter(threading.Thread):
    """Submits listing jobs every ``SUBMIT_INTERVAL_S`` until stopped (and at least ``jobs``),
    keeping each call's outcome: a job id that was confirmed, or the ``PublishError`` it raised,
    and how long the call took."""

    def __init__(self, rig: Rig, jobs: int) -> None:
        super().__init__(name="submitter", daemon=True)
        self.rig, self.jobs = rig, jobs
        self.confirmed: dict[str, dict[str, Any]] = {}
        self.raised: dict[str, dict[str, Any]] = {}
        self.other_errors: list[str] = []
        self.reasons: Counter[str] = Counter()
        self.call_s: list[float] = []
        self.confirmed_at: list[float] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        i = 0
        while i < self.jobs or not self.stopping.is_set():
            request = self.rig.listing(i, "shop-broker")
            began = time.monotonic()
            try:
                self.confirmed[self.rig.producer.submit(request)] = request
                self.confirmed_at.append(time.time())
            except PublishError as error:
                self.raised[error.job_id] = request
                self.reasons[f"{type(error).__name__}: {str(error)[:80]}"] += 1
            except Exception as error:  # anything else breaks "confirmed or raises PublishError"
                self.other_errors.append(repr(error))
            self.call_s.append(time.monotonic() - began)
            i += 1
            time.sleep(SUBMIT_INTERVAL_S)


def _wait_flowing(rig: Rig, submitter: Submitter, since: float, *, count: int, timeout_s: float = 90) -> None:
    """Wait until ``count`` confirmed jobs finished after ``since``: jobs flow again."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        records = rig.records(list(submitter.confirmed)).values()
        if sum((_finished_at(r) or 0) > since for r in records) >= count:
            return
        time.sleep(0.1)


def _kill_broker(broker: RabbitMQServer) -> None:
    """SIGKILL the node (its process group), then reap it."""
    if broker.pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(broker.pid, signal.SIGKILL)
    broker.stop()


def rabbitmq_restart(workdir: Path, triton_grpc_url: str, size: str) -> ScenarioResult:
    """Restart the broker while a producer keeps submitting and workers run jobs: SIGKILL the
    node, then (next time) stop it cleanly, each time starting it again on the same ports and
    data. Every submit must return a confirmed job id or raise ``PublishError`` (and that job is
    recorded ``failed: publish_failed``); the same worker processes reconnect by themselves;
    every confirmed job succeeds once, with each event under one ``webhook-id``. Runs on a
    private RabbitMQ node (``embedded/rabbitmq.py``): the shared one must stay up."""
    jobs, restarts, down_s = BROKER_SIZES[size]
    result = ScenarioResult("rabbitmq_restart", size, jobs, 0)
    started = time.monotonic()
    broker = RabbitMQServer(state_dir=workdir, log_path=workdir / "rabbitmq.log")
    with (
        broker,
        Rig(
            tag="fault-broker",
            workdir=workdir,
            triton_grpc_url=triton_grpc_url,
            overrides={**PATIENT, "broker_url": broker.url},  # evaluated once the broker is up
        ) as rig,
    ):
        rig.start_workers({"listing": 1, "callbacks": 2})
        pids = {role: worker.pid for role, worker in rig.workers.items()}
        submitter = Submitter(rig, jobs)
        submitter.start()
        faults: Counter[str] = Counter()
        fault_ends: list[float] = []
        since = 0.0
        for n in range(restarts):
            _wait_flowing(rig, submitter, since, count=3)
            if n % 2 == 0:
                _kill_broker(broker)
                faults["RabbitMQ SIGKILL + restart"] += 1
            else:
                broker.stop()
                faults["RabbitMQ clean stop + restart"] += 1
            time.sleep(down_s)
            broker.start()
            since = time.time()
            fault_ends.append(since)
        _wait_flowing(rig, submitter, since, count=3)
        submitter.stopping.set()
        submitter.join(timeout=JOB_DEADLINE_S)
        requests = submitter.confirmed | submitter.raised
        result.jobs = len(requests)
        records = rig.wait_terminal(requests, JOB_DEADLINE_S)
        confirmed = {j: records[j] for j in submitter.confirmed}
        events = {j: SUCCEEDED_EVENTS for j in confirmed}
        outcomes = _wait_callbacks(rig, confirmed, lambda job_id: events[job_id])
        object_sets = {j: rig.object_sets(requests[j], r) for j, r in records.items() if r.state.terminal}
        grouped = count_outcomes(result, records, object_sets, rig.receiver.received)

        result.faults = dict(faults)
        result.faults_injected = sum(faults.values())
        done = [t for r in confirmed.values() if (t := _finished_at(r)) is not None]
        result.time_to_recover_s = _recovery(fault_ends, done)
        limit_s = rig.producer.publisher.max_publish_time_s
        result.figures["submits confirmed"] = len(submitter.confirmed)
        result.figures["submits that raised PublishError"] = len(submitter.raised)
        result.figures["why submits raised"] = dict(submitter.reasons.most_common(3))
        result.figures["longest submit call (s)"] = round(max(submitter.call_s, default=0.0), 2)
        result.figures["jobs retried (more than one attempt)"] = sum(
            r.attempts > 1 for r in confirmed.values()
        )
        raised_failed = [
            records[j].state is JobState.FAILED
            and records[j].error is not None
            and records[j].error.code == ErrorCode.PUBLISH_FAILED  # type: ignore[union-attr]
            for j in submitter.raised
        ]
        result.checks = {
            "every submit was confirmed or raised PublishError": not submitter.other_errors,
            f"every submit returned within the publish limit ({limit_s:g} s)": max(submitter.call_s)
            <= limit_s,
            "the outages reached the producer (some submits raised)": bool(submitter.raised),
            "the producer published again after each restart, by itself": all(
                any(t > end for t in submitter.confirmed_at) for end in fault_ends
            ),
            "every submit that raised is recorded failed: publish_failed": all(raised_failed),
            "nothing ran for a submit that raised": all(object_sets.get(j, 0) == 0 for j in submitter.raised),
            "every confirmed job succeeded": all(r.state is JobState.SUCCEEDED for r in confirmed.values()),
            "the same worker processes reconnected by themselves": all(
                rig.workers[role].pid == pid and rig.workers[role].is_alive() for role, pid in pids.items()
            ),
            "exactly one set of result objects per confirmed job": all(
                object_sets[j] == 1 for j in confirmed if j in object_sets
            ),
            "every event received, each under one webhook-id": {
                key: len({i.headers["webhook-id"] for i in items})
                for key, items in grouped.items()
                if key[0] in confirmed
            }
            == {(j, e): 1 for j in confirmed for e in SUCCEEDED_EVENTS},
            "every callback recorded delivered": all(
                o == dict.fromkeys(SUCCEEDED_EVENTS, "delivered") for o in outcomes.values()
            ),
        }
        if submitter.other_errors:
            result.figures["other errors from submit"] = sorted(set(submitter.other_errors))[:5]
        unsettled = {j: o for j, o in outcomes.items() if o != dict.fromkeys(SUCCEEDED_EVENTS, "delivered")}
        if unsettled:  # which events, and what the store says of them: for the failure's message
            result.figures["callbacks not delivered (job: outcomes)"] = dict(list(unsettled.items())[:5])
            result.figures["their events received"] = {
                j: sorted(e for (job, e) in grouped if job == j) for j in list(unsettled)[:5]
            }
    result.wall_s = round(time.monotonic() - started, 1)
    return result
