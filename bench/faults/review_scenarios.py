"""The fault scenarios of human review (issue 14; scenarios 9 and 10 of the suite): a worker
SIGKILLed between the quality gate and the upload, and reviewers' decisions racing a cancel.

Same shape as ``bench/faults/scenarios.py``: ``(workdir, triton_grpc_url, size) -> ScenarioResult``.
Both keep their review policies (and the second its keys and audit trail) in a scratch database
on the configured PostgreSQL server (``ATELIER_DATABASE_URL``), migrated to the key store's head
and dropped afterwards. A job held for people rests in ``awaiting_review``, which is not
terminal: here **lost** means a job that reached neither a terminal state nor that one.
"""

from __future__ import annotations

import hashlib
import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, select
from sqlalchemy.pool import NullPool

from api.database import Database
from api.keys.migrate import upgrade
from api.keys.model import Scope
from api.keys.settings import DatabaseSettings
from api.keys.store import KeyStore
from api.review.policies import CachedPolicies, PolicyStore
from api.review.tables import ReviewDecisionRow
from bench.faults.checks import ScenarioResult, by_job_and_event, count_outcomes
from bench.faults.gate_kill_app import GATE_KILL_APP, GATE_KILL_DIR_VARIABLE, GATE_KILL_PREFIX_VARIABLE
from bench.faults.rig import Rig
from bench.faults.scenarios import JOB_DEADLINE_S, _wait_callbacks
from core.contracts.jobs import (
    EVENT_FOR_STATE,
    ImageDecision,
    JobEventType,
    JobKind,
    JobRecord,
    JobState,
    ReviewPolicy,
)
from core.errors import ErrorCode
from core.jobs import utcnow
from core.jobs.review import held_for_review, status_of
from embedded.postgres import scratch_database
from embedded.receiver import Received

#: every event a job can send: the scenarios subscribe to all of them
REVIEW_EVENTS = [event.value for event in JobEventType]
#: the events that end a job
TERMINAL_EVENTS = {EVENT_FOR_STATE[state].value for state in JobState if state.terminal}


@contextmanager
def review_database() -> Iterator[str]:
    """The URL of a scratch database on the configured server, migrated to the key store's head
    (tenants, keys, review policies and decisions), dropped on leaving."""
    server = DatabaseSettings().database_url.get_secret_value()
    with scratch_database(server, prefix="atelier_faults") as url:
        upgrade(url)
        yield url


def settled(record: JobRecord) -> bool:
    """Whether the job rests: ended, or left to people."""
    return record.state.terminal or record.state is JobState.AWAITING_REVIEW


def wait_settled(rig: Rig, job_ids: Iterable[str], timeout_s: float) -> dict[str, JobRecord]:
    """Every job's record once each has :func:`settled`, or at ``timeout_s`` (some may not have)."""
    pending, records = set(job_ids), {}
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for job_id in list(pending):
            records[job_id] = record = rig.producer.status(job_id)
            if settled(record):
                pending.discard(job_id)
        if pending:
            time.sleep(0.1)
    return records | {job_id: rig.producer.status(job_id) for job_id in pending}


def events_of(record: JobRecord) -> set[str]:
    """The events a job that ran sends up to its state now."""
    return {"job.queued", "job.started", EVENT_FOR_STATE[record.state].value}


def events_match(grouped: dict[tuple[str, str], list[Received]], expected: dict[str, set[str]]) -> bool:
    """Whether each job received exactly its ``expected`` events, each under one ``webhook-id``."""
    seen = {key: len({i.headers["webhook-id"] for i in items}) for key, items in grouped.items()}
    return seen == {(j, e): 1 for j, events in expected.items() for e in events}


def delivered(outcomes: dict[str, dict[str, str]], expected: dict[str, set[str]]) -> bool:
    return all(o == dict.fromkeys(expected[j], "delivered") for j, o in outcomes.items())


# --- 9. a worker SIGKILLed between the gate and the upload ---
#: size -> jobs (2 to 4 variants each; three in four are killed once, after their gate)
GATE_KILL_SIZES = {"short": 12, "long": 60}
#: a stricter gate than the calibrated one (``quality/settings.py``), so that it flags some of these
#: images, even after its retry: the ``flagged`` policy then holds some jobs and passes others,
#: and ``auto`` fails a job whose every variant it flagged
STRICT_GATE_ENV = {"ATELIER_GATE_MIN_CATEGORY_PROBABILITY": "0.95", "ATELIER_GATE_MAX_TRIES": "2"}
#: requester -> the review policy set for it in PostgreSQL
GATE_KILL_POLICIES = {
    "shop-gk-auto": ReviewPolicy.AUTO,
    "shop-gk-flagged": ReviewPolicy.FLAGGED,
    "shop-gk-all": ReviewPolicy.ALL,
}
#: listing ids of the jobs whose first run is killed after the gate
DOOMED_PREFIX = "SKU-GATEKILL-"
#: what celery's parent logs when a pool process dies of SIGKILL
SIGKILL_LOG = "exited with 'signal 9 (SIGKILL)'"


def sigkill_between_gate_and_upload(workdir: Path, triton_grpc_url: str, size: str) -> ScenarioResult:
    """Listing jobs of requesters under the ``auto``, ``flagged`` and ``all`` policies (a strict
    gate, so it flags some images); for three in four, the pool process is SIGKILLed right after
    the quality gate judged the job, before its upload (workers of the test-only
    ``bench.faults.gate_kill_app``). Each job must end once, as its policy says for its gate
    reports (``succeeded``, ``awaiting_review`` or, under ``auto`` with every variant flagged,
    ``failed``), with one set of objects, each subscribed event once, and the same images, seeds
    and gate reports as an undisturbed run of the same requests (submitted again afterwards)."""
    jobs = GATE_KILL_SIZES[size]
    result = ScenarioResult("sigkill_between_gate_and_upload", size, jobs, 0)
    started = time.monotonic()
    kill_dir = workdir / "gate-kills"
    kill_dir.mkdir(parents=True, exist_ok=True)
    kill_env = {
        GATE_KILL_DIR_VARIABLE: str(kill_dir),
        GATE_KILL_PREFIX_VARIABLE: DOOMED_PREFIX,
        **STRICT_GATE_ENV,
    }
    with ExitStack() as stack:
        url = stack.enter_context(review_database())
        rig = stack.enter_context(Rig(tag="fault-gatekill", workdir=workdir, triton_grpc_url=triton_grpc_url))
        engine = create_engine(url, poolclass=NullPool)
        stack.callback(engine.dispose)
        policies = PolicyStore(Database(engine))
        for requester, policy in GATE_KILL_POLICIES.items():
            policies.set(requester, policy)
        rig.producer.review_policy_for = CachedPolicies(policies).policy_for  # as the API does
        rig.start_workers({"listing": 1, "callbacks": 2}, env=kill_env, app=GATE_KILL_APP)

        requests = [_gate_kill_request(rig, i) for i in range(jobs)]
        disturbed = [rig.producer.submit(request) for request in requests]
        records = wait_settled(rig, disturbed, JOB_DEADLINE_S)
        kills = {path.name: path.stat().st_mtime for path in kill_dir.iterdir()}
        # the same requests again: each doomed listing was killed once already, so nothing is now
        undisturbed = [rig.producer.submit(request) for request in requests]
        reruns = wait_settled(rig, undisturbed, JOB_DEADLINE_S)
        both = records | reruns
        expected = {j: events_of(r) for j, r in both.items()}
        outcomes = _wait_callbacks(rig, both, lambda job_id: expected[job_id])
        by_id = dict(zip(disturbed + undisturbed, requests + requests, strict=True))
        object_sets = {j: rig.object_sets(by_id[j], r) for j, r in both.items() if settled(r)}
        count_outcomes(result, records, object_sets, rig.receiver.received)
        grouped = by_job_and_event(rig.receiver.received, set(both))
        result.lost = sum(not settled(r) for r in records.values())
        made = {j: _made(rig, r) for j, r in both.items() if settled(r)}
        log = rig.workers["listing"].log_text()

        doomed = {j for j, request in zip(disturbed, requests, strict=True) if _doomed(request)}
        states = Counter(r.state.value for r in records.values())
        result.faults = {"pool process SIGKILLed after the gate, before the upload": len(kills)}
        result.faults_injected = len(kills)
        settle_s = [
            at - kills[records[j].subject]
            for j in doomed
            if records[j].subject in kills and (at := _settled_at(rig, records[j])) is not None
        ]
        result.time_to_recover_s = round(max(settle_s), 2) if settle_s else None
        result.figures["ended"] = dict(states)
        result.figures["ended, by policy"] = dict(
            Counter(f"{r.review_policy.value}: {r.state.value}" for r in records.values())
        )
        result.figures["images the gate flagged (kept)"] = sum(
            bool(i.gate and not i.gate.passed) for r in records.values() for i in r.results
        )
        result.figures["images regenerated by the gate"] = sum(
            bool(i.gate and i.gate.tries > 1) for r in records.values() for i in r.results
        )
        result.figures["SIGKILLs in the worker's log"] = log.count(SIGKILL_LOG)
        result.figures["undisturbed reruns"] = len(undisturbed)
        result.checks = {
            "every doomed job was killed once after its gate, no other": set(kills)
            == {records[j].subject for j in doomed}
            and log.count(SIGKILL_LOG) == len(doomed),
            "each job was recorded under its requester's policy from PostgreSQL": all(
                r.review_policy is GATE_KILL_POLICIES[r.requester] for r in both.values()
            ),
            "a killed job ran again (2 attempts), every other job once": all(
                r.attempts == (2 if j in doomed else 1) for j, r in both.items()
            ),
            "every job ended as its policy says for its gate reports": all(
                _as_policy_says(r) for r in both.values()
            ),
            "the gate's verdicts covered the policies: held under flagged and all, passed under "
            "flagged and auto": _outcomes_covered(records),
            "the same images, seeds and gate reports as an undisturbed run": all(
                j in made and u in made and made[j] == made[u]
                for j, u in zip(disturbed, undisturbed, strict=True)
            ),
            "exactly one set of result objects per job that kept its images": all(
                n == (0 if both[j].state is JobState.FAILED else 1) for j, n in object_sets.items()
            ),
            "every held job is in its requester's review queue once": _review_queues_hold(rig, both),
            "every subscribed event received once, each under one webhook-id (job.review_required "
            "for held jobs)": events_match(grouped, expected),
            "every callback recorded delivered": delivered(outcomes, expected),
        }
    result.wall_s = round(time.monotonic() - started, 1)
    return result


def _gate_kill_request(rig: Rig, i: int) -> dict[str, Any]:
    """Job ``i``: its requester (so its policy) turns with each job; three in four are doomed."""
    requester = list(GATE_KILL_POLICIES)[i % len(GATE_KILL_POLICIES)]
    request = rig.listing(i, requester, REVIEW_EVENTS, variants=2 + i % 3)
    if i % 4 != 1:
        request["listing_id"] = f"{DOOMED_PREFIX}{i}"
    return request


def _doomed(request: dict[str, Any]) -> bool:
    return str(request["listing_id"]).startswith(DOOMED_PREFIX)


def _made(rig: Rig, record: JobRecord) -> dict[str, Any]:
    """What a job made, as a rerun of its request must make it again: its end, seed and model,
    and per image its gate report, review status, content digest and metadata."""
    images = []
    for image in record.results:
        metadata = rig.images.metadata(image.key)
        images.append(
            {
                "variant": image.variant,
                "gate": image.gate.model_dump() if image.gate else None,
                "review": status_of(image),
                "sha256": hashlib.sha256(rig.images.get_bytes(image.key)).hexdigest(),
                "metadata": {k: metadata.get(k) for k in ("seed", "gate", "gate-scores", "gate-tries")},
            }
        )
    error = record.error.code.value if record.error else None
    return {
        "state": record.state.value,
        "error": error,
        "seed": record.seed,
        "model": (record.model, record.model_version),
        "images": images,
    }


def _as_policy_says(record: JobRecord) -> bool:
    """Whether the job's end is the one its policy gives its gate reports (``core.jobs.review``)."""
    if record.state is JobState.FAILED:  # only auto fails a job, when the gate flagged every variant
        error = record.error
        return (
            record.review_policy is ReviewPolicy.AUTO
            and error is not None
            and (error.code is ErrorCode.QUALITY_GATE_FAILED)
        )
    if not record.results or any(image.gate is None for image in record.results):
        return False
    images, held = held_for_review(JobKind.LISTING, record.review_policy, record.results, now=utcnow())
    state = JobState.AWAITING_REVIEW if held else JobState.SUCCEEDED
    return record.state is state and [status_of(i) for i in record.results] == [status_of(i) for i in images]


def _outcomes_covered(records: dict[str, JobRecord]) -> bool:
    seen = {(r.review_policy, r.state) for r in records.values()}
    return {
        (ReviewPolicy.FLAGGED, JobState.AWAITING_REVIEW),
        (ReviewPolicy.ALL, JobState.AWAITING_REVIEW),
        (ReviewPolicy.FLAGGED, JobState.SUCCEEDED),
        (ReviewPolicy.AUTO, JobState.SUCCEEDED),
    } <= seen


def _settled_at(rig: Rig, record: JobRecord) -> float | None:
    """When the job's resting state was written (its event's time)."""
    wanted = EVENT_FOR_STATE[record.state]
    stored = rig.producer.store.events(record.job_id)
    return next((s.event.timestamp.timestamp() for s in stored if s.event.type is wanted), None)


def _review_queues_hold(rig: Rig, records: dict[str, JobRecord]) -> bool:
    """Whether each requester's review queue lists exactly its held jobs, each once."""
    store = rig.producer.store
    for requester in GATE_KILL_POLICIES:
        listed = [entry.job_id for entry in store.awaiting_review_index(requester, count=10_000)]
        held = {
            j for j, r in records.items() if r.requester == requester and r.state is JobState.AWAITING_REVIEW
        }
        if len(listed) != len(set(listed)) or set(listed) != held:
            return False
    return True


# --- 10. reviewers' decisions racing a cancel ---
#: size -> jobs held for review (policy all), each raced once
REVIEW_RACE_SIZES = {"short": 24, "long": 120}
REVIEW_RACE_REQUESTER = "shop-review-race"
#: the key store's pepper in this scenario (its keys live only in the scratch database)
REVIEW_RACE_PEPPER = "fault-suite-review-race"
#: each key's own rate limit: the submitter queues every job at once (the default is 50/second)
REVIEW_RACE_RATE_LIMIT = "1000/second"
#: a reviewer's reason to reject
REJECT_REASON = "fault suite: rejected"
#: seconds one HTTP call may take
HTTP_TIMEOUT_S = 30.0


@dataclass
class Round:
    """One job's race: what each reviewer's decisions and the cancel were answered."""

    job_id: str
    variants: int
    decisions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  #: key id -> results
    statuses: list[int] = field(default_factory=list)  #: every HTTP status answered
    cancel_status: int = 0
    decision_s: list[float] = field(default_factory=list)  #: how long each decision call took
    cancel_s: float = 0.0  #: how long the cancel call took

    def applied(self) -> set[tuple[str, int, str, str]]:
        """``(job_id, variant, reviewer key id, decision)`` of each decision that applied."""
        return {
            (self.job_id, int(r["variant"]), key_id, str(r["decision"]))
            for key_id, results in self.decisions.items()
            for r in results
            if r["outcome"] == "applied"
        }


@dataclass(frozen=True)
class Racers:
    """The reviewers' key ids and one API client per racing party (one thread each per round)."""

    approver_id: str
    rejecter_id: str
    approver: httpx.Client
    rejecter: httpx.Client
    submitter: httpx.Client


def review_decision_cancel_race(workdir: Path, triton_grpc_url: str, size: str) -> ScenarioResult:
    """Jobs held for review (their requester's policy ``all``, in PostgreSQL); for each, at the
    same moment over the real HTTP API, one reviewer approves every image, another rejects every
    image, and the submitter cancels. Each job must end once, ``approved`` / ``rejected`` (the
    decisions won: the cancel answered 409) or ``canceled`` (200: no decision after it applied),
    every losing decision refused with ``conflict``, the audit trail in PostgreSQL holding exactly
    the decisions that applied, one terminal callback per job, and links only for approved images."""
    jobs = REVIEW_RACE_SIZES[size]
    result = ScenarioResult("review_decision_cancel_race", size, jobs, 0)
    started = time.monotonic()
    with ExitStack() as stack:
        url = stack.enter_context(review_database())
        keys = KeyStore(url, pepper=REVIEW_RACE_PEPPER)
        stack.callback(keys.close)
        PolicyStore(Database(keys.engine)).set(REVIEW_RACE_REQUESTER, ReviewPolicy.ALL)
        approver, approver_token = keys.create(
            REVIEW_RACE_REQUESTER, scopes=[Scope.REVIEW], name="approver", rate_limit=REVIEW_RACE_RATE_LIMIT
        )
        rejecter, rejecter_token = keys.create(
            REVIEW_RACE_REQUESTER, scopes=[Scope.REVIEW], name="rejecter", rate_limit=REVIEW_RACE_RATE_LIMIT
        )
        _, submitter_token = keys.create(
            REVIEW_RACE_REQUESTER,
            scopes=[Scope.SUBMIT_LISTINGS, Scope.READ, Scope.CANCEL],
            name="submitter",
            rate_limit=REVIEW_RACE_RATE_LIMIT,
        )
        rig = stack.enter_context(Rig(tag="fault-review", workdir=workdir, triton_grpc_url=triton_grpc_url))
        rig.start_workers({"listing": 1, "callbacks": 2})
        api = rig.stack.start_api(database_url=url, key_pepper=REVIEW_RACE_PEPPER)

        def client(token: str) -> httpx.Client:
            headers = {"Authorization": f"Bearer {token}"}
            return stack.enter_context(
                httpx.Client(base_url=api.url, headers=headers, timeout=HTTP_TIMEOUT_S)
            )

        racers = Racers(
            approver.key_id,
            rejecter.key_id,
            client(approver_token),
            client(rejecter_token),
            client(submitter_token),
        )
        requests: dict[str, dict[str, Any]] = {}
        for i in range(jobs):
            request = rig.listing(40_000 + i, REVIEW_RACE_REQUESTER, REVIEW_EVENTS, variants=1 + i % 2)
            answer = racers.submitter.post("/v1/listings", json=request)
            answer.raise_for_status()
            requests[answer.json()["id"]] = request
        held = wait_settled(rig, requests, JOB_DEADLINE_S)
        waiting = [j for j, r in held.items() if r.state is JobState.AWAITING_REVIEW]
        pacer = Pacer(len(waiting))
        rounds = []
        for n, job_id in enumerate(waiting):
            rounds.append(_race(racers, job_id, requests[job_id]["variants"], pacer.delays(n)))
            pacer.decision_s += rounds[-1].decision_s
        records = rig.wait_terminal(requests, JOB_DEADLINE_S)
        expected = {j: {"job.review_required"} | events_of(r) for j, r in records.items()}
        outcomes = _wait_callbacks(rig, records, lambda job_id: expected[job_id])
        time.sleep(1.0)  # a stray callback (a second terminal event) would arrive now
        object_sets = {j: rig.object_sets(requests[j], r) for j, r in records.items()}
        grouped = count_outcomes(result, records, object_sets, rig.receiver.received)
        trail = _audit_rows(keys, requests)
        result.duplicated = len(_duplicated(grouped, object_sets, trail))
        outputs = {j: _output_variants(racers.submitter, j) for j in requests}

        states = Counter(r.state.value for r in records.values())
        answered = Counter(
            r["outcome"] for rnd in rounds for results in rnd.decisions.values() for r in results
        )
        applied = sorted(a for rnd in rounds for a in rnd.applied())
        canceled = [j for j, r in records.items() if r.state is JobState.CANCELED]
        typical_ms = round(statistics.median(pacer.decision_s or [0.0]) * 1000)
        result.faults = {
            f"two reviewers' decisions and a cancel sent together (cancel 0-{typical_ms} ms later)": len(
                rounds
            )
        }
        result.faults_injected = len(rounds)
        result.figures["ended"] = dict(states)
        result.figures["decision outcomes"] = dict(answered)
        result.figures["audit rows"] = len(trail)
        result.figures["median decision call (ms)"] = typical_ms
        result.figures["median cancel call (ms)"] = round(
            statistics.median(r.cancel_s for r in rounds) * 1000
        )
        result.figures["canceled jobs with a decision applied before the cancel"] = sum(
            any(a[0] == j for a in applied) for j in canceled
        )
        result.figures["objects left in S3 by canceled jobs"] = sum(
            len(rig.images.list_keys(f"listing/{j}/")) for j in canceled
        )
        result.figures["objects left in S3 by rejected jobs"] = sum(
            len(rig.images.list_keys(f"listing/{j}/"))
            for j, r in records.items()
            if r.state is JobState.REJECTED
        )
        by_job = {rnd.job_id: rnd for rnd in rounds}
        raced = {j: r for j, r in records.items() if j in by_job}
        result.checks = {
            "every job was held for review before the race": len(rounds) == jobs,
            "each job ended once: approved, rejected or canceled": set(states)
            <= {"approved", "rejected", "canceled"}
            and sum(states.values()) == jobs,
            "both sides won some jobs (the race was real)": bool(canceled) and len(canceled) < jobs,
            "every call answered as documented (decisions 200, cancel 200 or 409)": all(
                s == 200 for rnd in rounds for s in rnd.statuses
            )
            and all(rnd.cancel_status in (200, 409) for rnd in rounds),
            "exactly one side won: the cancel answered 200 only for jobs it canceled": all(
                (by_job[j].cancel_status == 200) == (r.state is JobState.CANCELED) for j, r in raced.items()
            ),
            "every losing decision was refused with conflict": set(answered) <= {"applied", "conflict"},
            "at most one decision applied per image; all of them when the decisions won": all(
                _one_per_image(by_job[j], r) for j, r in raced.items()
            ),
            "each job's end and images match the decisions that applied": all(
                _matches_decisions(by_job[j], r) for j, r in raced.items()
            ),
            "the audit trail in PostgreSQL holds exactly the decisions that applied": trail == applied,
            "one terminal callback per job, never a decision's and the cancel's both": events_match(
                grouped, expected
            ),
            "every callback recorded delivered": delivered(outcomes, expected),
            "links only for approved images (none for rejected or canceled jobs)": all(
                outputs[j] == _approved_variants(r) for j, r in records.items()
            ),
            "one set of objects per approved job": all(
                object_sets[j] == 1 for j, r in records.items() if r.state is JobState.APPROVED
            ),
            "no job left in the review queue": not rig.producer.store.awaiting_review_index(
                REVIEW_RACE_REQUESTER
            ),
        }
    result.wall_s = round(time.monotonic() - started, 1)
    return result


class Pacer:
    """When each party of a race leaves after the start line, so that both sides win some rounds
    whatever this machine's speed: the cancel after ``u * L``, one reviewer (the approver
    and the rejecter by turns) after ``v * L``, the other at once. ``L`` is the median time a
    decision call has taken so far (``FIRST_GUESS_S`` before any); ``u`` and ``v`` go evenly over
    [0, 1), each in its own shuffled order."""

    #: ``L`` before any decision call was timed
    FIRST_GUESS_S = 0.02

    def __init__(self, rounds: int, *, seed: int = 10) -> None:
        rng = random.Random(seed)
        self.cancel = [i / rounds for i in range(rounds)]
        self.second = [i / rounds for i in range(rounds)]
        rng.shuffle(self.cancel)
        rng.shuffle(self.second)
        self.decision_s: list[float] = []

    def delays(self, n: int) -> dict[str, float]:
        """Round ``n``'s delay per party: ``approve``, ``reject``, ``cancel``."""
        typical = statistics.median(self.decision_s) if self.decision_s else self.FIRST_GUESS_S
        late = "reject" if n % 2 == 0 else "approve"
        return {
            "approve": 0.0,
            "reject": 0.0,
            late: self.second[n] * typical,
            "cancel": self.cancel[n] * typical,
        }


def _race(racers: Racers, job_id: str, variants: int, delays: dict[str, float]) -> Round:
    """Send both reviewers' decisions on every image of the job and its cancel, each party
    leaving ``delays[party]`` after the three are at the start line."""
    round_ = Round(job_id, variants)
    barrier = threading.Barrier(3)
    lock = threading.Lock()

    def decide(key_id: str, client: httpx.Client, decision: str) -> None:
        body = {
            "decisions": [
                {"job_id": job_id, "variant": v, "decision": decision}
                | ({"reason": REJECT_REASON} if decision == "reject" else {})
                for v in range(variants)
            ]
        }
        barrier.wait()
        time.sleep(delays[decision])
        began = time.monotonic()
        answer = client.post("/v1/review/decisions", json=body)
        took = time.monotonic() - began
        results = answer.json().get("results", []) if answer.status_code == 200 else []
        with lock:
            round_.statuses.append(answer.status_code)
            round_.decisions[key_id] = [r | {"decision": decision} for r in results]
            round_.decision_s.append(took)

    def cancel() -> None:
        barrier.wait()
        time.sleep(delays["cancel"])
        began = time.monotonic()
        answer = racers.submitter.post(f"/v1/jobs/{job_id}/cancel")
        with lock:
            round_.cancel_status = answer.status_code
            round_.cancel_s = time.monotonic() - began

    threads = [
        threading.Thread(target=decide, args=(racers.approver_id, racers.approver, "approve")),
        threading.Thread(target=decide, args=(racers.rejecter_id, racers.rejecter, "reject")),
        threading.Thread(target=cancel),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return round_


def _audit_rows(keys: KeyStore, job_ids: Iterable[str]) -> list[tuple[str, int, str, str]]:
    """``(job_id, variant, reviewer, decision)`` of every audit row of ``job_ids`` in PostgreSQL."""
    query = select(
        ReviewDecisionRow.job_id,
        ReviewDecisionRow.variant,
        ReviewDecisionRow.reviewer,
        ReviewDecisionRow.decision,
    ).where(ReviewDecisionRow.job_id.in_(list(job_ids)))
    with keys.engine.connect() as connection:
        rows = connection.execute(query).all()
    return sorted((str(job), int(variant), str(key), str(what)) for job, variant, key, what in rows)


def _duplicated(
    grouped: dict[tuple[str, str], list[Received]],
    object_sets: dict[str, int],
    trail: list[tuple[str, int, str, str]],
) -> set[str]:
    """Jobs duplicated as ``count_outcomes`` counts them (objects, webhook-ids), or with more than
    one terminal event (a decision's and the cancel's), or an image audited more than once."""
    duplicated = {j for j, n in object_sets.items() if n > 1}
    duplicated |= {
        j for (j, _), items in grouped.items() if len({i.headers["webhook-id"] for i in items}) > 1
    }
    ends = Counter(j for (j, event) in grouped if event in TERMINAL_EVENTS)
    duplicated |= {j for j, n in ends.items() if n > 1}
    audited = Counter((job, variant) for job, variant, _, _ in trail)
    return duplicated | {job for (job, _), n in audited.items() if n > 1}


def _output_variants(client: httpx.Client, job_id: str) -> list[int] | None:
    """The variants ``GET /v1/jobs/{id}`` links (``None`` if the read failed)."""
    answer = client.get(f"/v1/jobs/{job_id}")
    if answer.status_code != 200:
        return None
    return sorted(int(output["variant"]) for output in answer.json()["outputs"])


def _approved_variants(record: JobRecord) -> list[int]:
    if record.state is not JobState.APPROVED:
        return []
    return sorted(i.variant for i in record.results if status_of(i) is ImageDecision.APPROVED)


def _one_per_image(round_: Round, record: JobRecord) -> bool:
    per_image = Counter(variant for _, variant, _, _ in round_.applied())
    if any(n > 1 for n in per_image.values()):
        return False
    if record.state is JobState.CANCELED:
        return len(per_image) < round_.variants  # the review had not ended when the cancel won
    return len(per_image) == round_.variants


def _matches_decisions(round_: Round, record: JobRecord) -> bool:
    """The record's images carry the applied decisions (by whom), the rest still pending; a
    finished review ended approved if an approval applied, else rejected."""
    applied = {variant: (key_id, decision) for _, variant, key_id, decision in round_.applied()}
    for image in record.results:
        review = image.review
        if review is None:
            return False
        if image.variant in applied:
            key_id, decision = applied[image.variant]
            status = ImageDecision.APPROVED if decision == "approve" else ImageDecision.REJECTED
            if (review.status, review.reviewer) != (status, key_id):
                return False
        elif review.status is not ImageDecision.PENDING:
            return False
    if record.state is JobState.CANCELED:
        return True
    approved = any(decision == "approve" for _, decision in applied.values())
    return record.state is (JobState.APPROVED if approved else JobState.REJECTED)
