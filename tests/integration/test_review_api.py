"""Human review over real HTTP (uvicorn, httpx) against the real Redis, RabbitMQ and PostgreSQL:
a tenant's policy (set with ``atelier review policy``) holds its listing jobs for people, the
worker's end of a job (``worker.pipeline.succeed``, on the real job store) leaves them
``awaiting_review``, reviewers list the images waiting, decide (audited in PostgreSQL, applied
in Redis), and the job ends ``approved`` (links for the approved images only) or ``rejected``,
its callback queued once. A decision racing a cancel or another reviewer changes the job once,
and the audit trail says what applied. Tenants are kept apart, scopes enforced, a remake queued
and made (``worker.regeneration`` on the real store; stub model, bucket and gate), gated again.

No worker process runs: jobs are moved through their states with the store, as the worker
would, and the messages the API publishes are read back from the namespace's queues.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from api.app import create_app
from api.keys.model import Scope
from api.keys.store import KeyStore
from api.settings import ApiSettings
from core.contracts.jobs import GateCheck, GateReport, JobEventType, JobState, StoredImage
from core.contracts.v1 import parse_request
from core.jobs import utcnow
from core.jobs.review import regenerated_seed
from core.topology import REGENERATE_TASK, build_topology
from core.worker_settings import WorkerSettings
from producer.cli import app as atelier
from producer.client import Producer
from tests.examples import LISTING_EXAMPLE
from tests.integration.api_fixtures import api_settings, served_api
from tests.integration.services import drain, require_services, serving
from worker.inference import Generated
from worker.pipeline import job_seed, succeed
from worker.regeneration import regenerate
from worker.stubs import MemoryImageStore, stub_context

PEPPER = "review-test-pepper"
HOOK = {"url": "https://shop.example/hooks/atelier", "events": [e.value for e in JobEventType]}
#: a listing as the API takes it, subscribed to every event
LISTING = {
    **{k: v for k, v in LISTING_EXAMPLE.items() if k not in ("requester", "idempotency_key")},
    "callback": HOOK,
}


@dataclass
class Review:
    url: str
    settings: ApiSettings
    producer: Producer
    keys: KeyStore
    database_url: str
    #: shop-a (policy all): a submitter, two reviewers, a key without review; shop-b: a
    #: submitter and a reviewer; shop-ops: an admin reviewer
    submitter: str
    reviewer: str
    second_reviewer: str
    no_review: str
    b_submitter: str
    b_reviewer: str
    admin: str
    reviewer_id: str

    def client(self, token: str | None) -> httpx.Client:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=20)

    def submit(self, token: str | None = None, **fields: Any) -> str:
        with self.client(token or self.submitter) as client:
            response = client.post("/v1/listings", json={**LISTING, **fields})
        assert response.status_code == 202, response.text
        job_id: str = response.json()["id"]
        return job_id

    def finish_running(self, job_id: str, gates: list[bool | None]) -> JobState:
        """What the worker does once a job's images are stored: ``succeed`` on the real store,
        its callbacks published for real; the state the job reached."""
        store = self.producer.store
        assert store.transition(job_id, JobState.RUNNING)
        worker_settings = WorkerSettings.model_validate(self.settings.model_dump())
        ctx = dataclasses.replace(
            stub_context(worker_settings, store=store),
            notify=lambda job, event: self.producer.publisher.publish_callback(job, event.value),
        )
        request = parse_request({**LISTING, "requester": store.require(job_id).requester})
        generated = Generated(images=None, model="product_cgan", version="1")  # type: ignore[arg-type]
        succeed(
            job_id, request, ctx, generated, 7, [stored(job_id, v, passed) for v, passed in enumerate(gates)]
        )
        return store.require(job_id).state

    def held(self, gates: list[bool | None] | int = 2, **fields: Any) -> str:
        """A shop-a job awaiting review, one image per gate verdict (``None``: no gate ran)."""
        job_id = self.submit(**fields)
        verdicts = [None] * gates if isinstance(gates, int) else gates
        assert self.finish_running(job_id, verdicts) is JobState.AWAITING_REVIEW
        return job_id

    def decide(self, token: str, *decisions: dict[str, Any]) -> list[dict[str, Any]]:
        with self.client(token) as client:
            response = client.post("/v1/review/decisions", json={"decisions": list(decisions)})
        assert response.status_code == 200, response.text
        results: list[dict[str, Any]] = response.json()["results"]
        return results

    def audit(self, token: str, job_id: str, variant: int) -> httpx.Response:
        with self.client(token) as client:
            return client.get(f"/v1/review/images/{job_id}/{variant}/audit")

    def callbacks(self) -> list[tuple[str, str]]:
        """``(job_id, event)`` of every callback queued since the last call (taken off the queue)."""
        queue = build_topology(self.settings).callbacks
        return [(body[1]["job_id"], body[1]["event"]) for _, body in drain(queue)]

    def listing_messages(self) -> list[tuple[str, dict[str, Any]]]:
        """``(task, kwargs)`` of every message on the listing queue (taken off it)."""
        queue = build_topology(self.settings).listing
        return [(headers["task"], body[1]) for headers, body in drain(queue)]


def stored(job_id: str, variant: int, passed: bool | None) -> StoredImage:
    report = None
    if passed is not None:
        check = GateCheck(name="category", score=0.8 if passed else 0.2, threshold=0.5, passed=passed)
        report = GateReport(passed=passed, checks=[check], seed=7 + variant)
    return StoredImage(
        variant=variant,
        bucket="atelier-images",
        key=f"listing/{job_id}/{variant}.webp",
        content_type="image/webp",
        url="http://internal:9000/stale",
        url_expires_at=utcnow() + timedelta(minutes=5),
        gate=report,
    )


def run_cli(database_url: str, *args: str) -> Any:
    return CliRunner().invoke(atelier, list(args), env={"ATELIER_DATABASE_URL": database_url})


@pytest.fixture(scope="module")
def review(keys_database: str) -> Iterator[Review]:
    require_services()
    settings = api_settings(
        "review", s3_secret_key=SecretStr("review-test-secret"), s3_public_endpoint="http://images.test:9000"
    )
    assert run_cli(keys_database, "review", "policy", "shop-a", "all").exit_code == 0
    keys = KeyStore(keys_database, pepper=PEPPER)
    job_scopes = [Scope.SUBMIT_LISTINGS, Scope.READ, Scope.CANCEL]
    reviewer_key, reviewer = keys.create("shop-a", scopes=[Scope.REVIEW, Scope.READ], name="reviewer")
    try:
        with served_api(settings, keys, declare=True) as (url, producer):
            yield Review(
                url=url,
                settings=settings,
                producer=producer,
                keys=keys,
                database_url=keys_database,
                submitter=keys.create("shop-a", scopes=job_scopes)[1],
                reviewer=reviewer,
                second_reviewer=keys.create("shop-a", scopes=[Scope.REVIEW])[1],
                no_review=keys.create("shop-a", scopes=[*job_scopes])[1],
                b_submitter=keys.create("shop-b", scopes=job_scopes)[1],
                b_reviewer=keys.create("shop-b", scopes=[Scope.REVIEW])[1],
                admin=keys.create("shop-ops", scopes=[Scope.REVIEW, Scope.ADMIN])[1],
                reviewer_id=reviewer_key.key_id,
            )
    finally:
        keys.close()


# --- policy ---


def test_the_cli_sets_and_shows_a_policy_and_the_api_writes_it_on_new_listing_jobs(review: Review) -> None:
    shown = run_cli(review.database_url, "review", "policy", "shop-a")
    assert shown.exit_code == 0 and "shop-a: all" in shown.output
    default = run_cli(review.database_url, "review", "policy", "shop-z")
    assert "auto (the default" in default.output
    refused = run_cli(review.database_url, "review", "policy", "shop a", "all")
    assert refused.exit_code == 2
    assert run_cli(review.database_url, "review", "policy", "shop-c", "sometimes").exit_code == 2
    listed = run_cli(review.database_url, "review", "policies")
    assert "shop-a" in listed.output and "all" in listed.output
    store = review.producer.store
    assert store.require(review.submit()).review_policy == "all"
    assert store.require(review.submit(review.b_submitter)).review_policy == "auto"


def test_under_flagged_only_a_job_the_gate_flagged_waits_and_auto_jobs_end_as_before(review: Review) -> None:
    assert run_cli(review.database_url, "review", "policy", "shop-f", "flagged").exit_code == 0
    flagged_key = review.keys.create("shop-f", scopes=[Scope.SUBMIT_LISTINGS, Scope.READ])[1]
    clean, flagged = review.submit(flagged_key), review.submit(flagged_key)
    assert review.finish_running(clean, [True, None]) is JobState.SUCCEEDED
    assert review.finish_running(flagged, [True, False]) is JobState.AWAITING_REVIEW
    statuses = [
        image.review.status for image in review.producer.store.require(flagged).results if image.review
    ]
    assert statuses == ["approved", "pending"]
    auto = review.submit(review.b_submitter)
    assert review.finish_running(auto, [True, False]) is JobState.SUCCEEDED  # the gate alone
    linked = review.producer.store.require(auto).catalog_images()
    assert [image.variant for image in linked] == [0]  # the flagged image gets no link
    nothing_passed = review.submit(review.b_submitter)
    assert review.finish_running(nothing_passed, [False, False]) is JobState.FAILED
    error = review.producer.store.require(nothing_passed).error
    assert error is not None and error.code == "quality_gate_failed"
    queued = review.callbacks()
    assert (flagged, "job.review_required") in queued and (clean, "job.succeeded") in queued


# --- listing what waits ---


def test_waiting_images_come_with_attributes_gate_scores_other_variants_and_fresh_links(
    review: Review,
) -> None:
    job_id = review.held([True, False, None], attributes={"category": "bag", "colour": "red"})
    with review.client(review.reviewer) as client:
        page = client.get("/v1/review/images", params={"category": "bag", "limit": 200}).json()
        mine = [item for item in page["items"] if item["job_id"] == job_id]
        flagged = client.get("/v1/review/images", params={"category": "bag", "flagged": "true"}).json()
        job = client.get(f"/v1/jobs/{job_id}").json()
    assert [item["variant"] for item in mine] == [0, 1, 2]
    first = mine[0]
    assert first["kind"] == "listing" and first["requester"] == "shop-a" and first["subject"] == "SKU-1001"
    assert first["attributes"]["category"] == "bag" and "colour" in first["attributes"]
    assert first["gate"]["passed"] is True and first["gate"]["checks"][0]["name"] == "category"
    assert first["review"]["status"] == "pending" and first["url_expires_at"]
    assert (
        first["url"].startswith("http://images.test:9000/atelier-images/listing/")
        and "X-Amz-Signature" in first["url"]
    )
    assert [other["variant"] for other in first["others"]] == [1, 2]
    assert all("X-Amz-Signature" in other["url"] for other in first["others"])
    assert mine[2]["gate"] is None
    assert [(i["job_id"], i["variant"]) for i in flagged["items"] if i["job_id"] == job_id] == [(job_id, 1)]
    assert job["state"] == "awaiting_review" and job["outputs"] == []  # no link before approval


def test_waiting_images_page_with_a_cursor_and_a_bad_cursor_is_a_422_problem(review: Review) -> None:
    jobs = [review.held(2, attributes={"category": "sneaker", "colour": "navy"}) for _ in range(2)]
    seen: list[tuple[str, int]] = []
    params: dict[str, Any] = {"category": "sneaker", "limit": 3}
    with review.client(review.reviewer) as client:
        while True:
            page = client.get("/v1/review/images", params=params).json()
            seen.extend((item["job_id"], item["variant"]) for item in page["items"])
            if page["next_cursor"] is None:
                break
            params["cursor"] = page["next_cursor"]
        bad = client.get("/v1/review/images", params={"cursor": "garbage"})
    assert seen == [(job, v) for job in jobs for v in range(2)]
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    assert bad.json()["errors"][0]["loc"] == ["query", "cursor"]


# --- decisions ---


def test_approving_some_ends_approved_with_links_only_for_those_audited_and_called_back_once(
    review: Review,
) -> None:
    job_id = review.held(3)
    review.callbacks()
    results = review.decide(
        review.reviewer,
        {"job_id": job_id, "variant": 0, "decision": "approve"},
        {"job_id": job_id, "variant": 1, "decision": "reject", "reason": "collar is wrong"},
    )
    assert [r["outcome"] for r in results] == ["applied", "applied"]
    assert [r["job_state"] for r in results] == ["awaiting_review", "awaiting_review"]
    last = review.decide(review.second_reviewer, {"job_id": job_id, "variant": 2, "decision": "approve"})
    assert last[0]["outcome"] == "applied" and last[0]["job_state"] == "approved"
    with review.client(review.submitter) as client:
        job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["state"] == "approved" and [o["variant"] for o in job["outputs"]] == [0, 2]
    assert review.callbacks() == [(job_id, "job.approved")]
    approved = review.producer.store.events(job_id)[-1].event
    assert approved.type is JobEventType.APPROVED and [r["variant"] for r in approved.data["results"]] == [
        0,
        2,
    ]
    trail = review.audit(review.reviewer, job_id, 1).json()["entries"]
    assert len(trail) == 1 and trail[0]["decision"] == "reject" and trail[0]["reason"] == "collar is wrong"
    assert trail[0]["reviewer"] == review.reviewer_id and not trail[0]["regenerate"]
    record = review.producer.store.require(job_id)
    assert record.results[1].review is not None and record.results[1].review.reviewer == review.reviewer_id
    assert record.results[1].review.decided_at.isoformat().startswith(trail[0]["decided_at"][:19])
    with review.client(review.reviewer) as client:
        waiting = client.get("/v1/review/images", params={"limit": 200}).json()["items"]
    assert job_id not in {item["job_id"] for item in waiting}  # it left the review index


def test_rejecting_every_image_ends_rejected_without_links(review: Review) -> None:
    job_id = review.held(2)
    review.callbacks()
    reject = [{"job_id": job_id, "variant": v, "decision": "reject", "reason": "blank"} for v in range(2)]
    results = review.decide(review.reviewer, *reject)
    assert results[-1]["job_state"] == "rejected"
    with review.client(review.submitter) as client:
        job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["state"] == "rejected" and job["outputs"] == [] and job["finished_at"]
    assert review.callbacks() == [(job_id, "job.rejected")]


def test_a_broken_or_repeated_decision_is_refused_and_not_audited(review: Review) -> None:
    job_id = review.held(2)
    results = review.decide(
        review.reviewer,
        {"job_id": job_id, "variant": 0, "decision": "reject"},
        {"job_id": job_id, "variant": 0, "decision": "approve", "regenerate": True},
        {"job_id": job_id, "variant": 0, "decision": "approve"},
        {"job_id": job_id, "variant": 0, "decision": "reject", "reason": "changed my mind"},
        {"job_id": job_id, "variant": 5, "decision": "approve"},
        {"job_id": uuid.uuid4().hex, "variant": 0, "decision": "approve"},
    )
    assert [r["outcome"] for r in results] == [
        "invalid",
        "invalid",
        "applied",
        "conflict",
        "not_found",
        "not_found",
    ]
    assert "already approved" in results[3]["detail"]
    trail = review.audit(review.reviewer, job_id, 0).json()["entries"]
    assert [entry["decision"] for entry in trail] == ["approve"]
    with review.client(review.reviewer) as client:
        assert client.post("/v1/review/decisions", json={"decisions": []}).status_code == 422
        many = [{"job_id": job_id, "variant": 1, "decision": "approve"}] * 201
        assert client.post("/v1/review/decisions", json={"decisions": many}).status_code == 422
        extra = {"decisions": [{"job_id": job_id, "variant": 1, "decision": "approve", "why": "x"}]}
        assert client.post("/v1/review/decisions", json=extra).status_code == 422


def race(review: Review, job_id: str) -> tuple[list[str], list[int]]:
    """Three approvals of the job's only image (two reviewers) and its cancel, sent together;
    the approvals' outcomes and the cancel's status."""
    start = threading.Barrier(4)
    outcomes: list[str] = []
    cancels: list[int] = []

    def approve(token: str) -> None:
        start.wait()
        decided = review.decide(token, {"job_id": job_id, "variant": 0, "decision": "approve"})
        outcomes.append(decided[0]["outcome"])

    def cancel() -> None:
        start.wait()
        with review.client(review.submitter) as client:
            cancels.append(client.post(f"/v1/jobs/{job_id}/cancel").status_code)

    threads = [
        threading.Thread(target=approve, args=(review.reviewer,)),
        threading.Thread(target=approve, args=(review.second_reviewer,)),
        threading.Thread(target=approve, args=(review.reviewer,)),
        threading.Thread(target=cancel),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes, cancels


def test_a_decision_racing_a_cancel_and_other_reviewers_changes_the_job_once(review: Review) -> None:
    winners = set()
    for _ in range(8):
        job_id = review.held(1)
        review.callbacks()
        outcomes, cancels = race(review, job_id)
        state = review.producer.store.require(job_id).state
        trail = review.audit(review.reviewer, job_id, 0).json()["entries"]
        ends = [e.event.type.value for e in review.producer.store.events(job_id)]
        if state is JobState.APPROVED:
            assert sorted(outcomes) == ["applied", "conflict", "conflict"] and cancels == [409]
            assert len(trail) == 1 and review.callbacks() == [(job_id, "job.approved")]
        else:
            assert state is JobState.CANCELED and cancels == [200]
            assert outcomes == ["conflict"] * 3 and trail == []
            assert review.callbacks() == [(job_id, "job.canceled")]
        assert ends[-1] == f"job.{state.value}"
        assert sum(event in ("job.approved", "job.canceled") for event in ends) == 1
        winners.add(state)
    print(f"race winners over 8 rounds: {sorted(w.value for w in winners)}")


def test_a_reject_with_regenerate_queues_a_remake_and_the_image_comes_back_pending_and_gated(
    review: Review,
) -> None:
    job_id = review.held([True, True])
    review.listing_messages()
    results = review.decide(
        review.reviewer,
        {"job_id": job_id, "variant": 1, "decision": "reject", "reason": "wrong collar", "regenerate": True},
        {"job_id": job_id, "variant": 0, "decision": "reject", "reason": "blank"},
    )
    assert [r["outcome"] for r in results] == ["applied", "applied"]
    assert results[1]["job_state"] == "awaiting_review"  # the remake keeps the review open
    assert review.listing_messages() == [
        (REGENERATE_TASK, {"job_id": job_id, "variant": 1, "regeneration": 1})
    ]
    store = review.producer.store
    image = store.require(job_id).results[1]
    assert (
        image.review is not None and image.review.status == "regenerating" and image.review.regenerations == 1
    )
    with review.client(review.reviewer) as client:
        regenerating = client.get("/v1/review/images", params={"status": "regenerating"}).json()["items"]
    assert [(i["job_id"], i["variant"]) for i in regenerating if i["job_id"] == job_id] == [(job_id, 1)]
    # the worker's remake (worker.regeneration) on the real store, with the stub model, bucket
    # and gate: the new image, gated and pending again
    bucket = MemoryImageStore()
    worker = stub_context(
        WorkerSettings.model_validate(review.settings.model_dump()), store=store, images=bucket
    )
    regenerate(job_id, 1, 1, worker)
    remade = store.require(job_id).results[1]
    seed = regenerated_seed(job_seed(store.require(job_id).seed, job_id), 1, 1)
    assert (
        remade.gate is not None and remade.gate.passed and (remade.gate.tries, remade.gate.seed) == (1, seed)
    )
    assert bucket.objects[remade.key][2]["gate"] == "passed"
    with review.client(review.reviewer) as client:
        waiting = client.get("/v1/review/images", params={"limit": 200}).json()["items"]
    mine = [i for i in waiting if i["job_id"] == job_id]
    assert [i["variant"] for i in mine] == [1] and mine[0]["review"]["regenerations"] == 1
    assert mine[0]["gate"] == remade.gate.model_dump(mode="json")
    approved = review.decide(review.reviewer, {"job_id": job_id, "variant": 1, "decision": "approve"})
    assert approved[0]["job_state"] == "approved"
    trail = review.audit(review.reviewer, job_id, 1).json()["entries"]
    assert [(e["decision"], e["regenerate"]) for e in trail] == [("reject", True), ("approve", False)]


# --- tenants and scopes ---


def test_another_tenants_images_are_not_listed_decided_or_audited_but_an_admin_key_may(
    review: Review,
) -> None:
    job_id = review.held(1)
    with review.client(review.b_reviewer) as b:
        listed = b.get("/v1/review/images", params={"limit": 200}).json()["items"]
        assert job_id not in {item["job_id"] for item in listed}
        refused = b.get("/v1/review/images", params={"requester": "shop-a"})
        assert refused.status_code == 403 and refused.json()["type"].endswith("not-admin")
        assert b.get(f"/v1/review/images/{job_id}/0/audit").status_code == 404
    result = review.decide(review.b_reviewer, {"job_id": job_id, "variant": 0, "decision": "approve"})[0]
    assert result["outcome"] == "not_found" and result["job_state"] is None
    assert review.producer.store.require(job_id).state is JobState.AWAITING_REVIEW
    with review.client(review.admin) as admin:
        own = admin.get("/v1/review/images").json()["items"]
        theirs = admin.get("/v1/review/images", params={"requester": "shop-a", "limit": 200}).json()["items"]
    assert own == [] and job_id in {item["job_id"] for item in theirs}
    decided = review.decide(review.admin, {"job_id": job_id, "variant": 0, "decision": "approve"})[0]
    assert decided["outcome"] == "applied"
    assert review.audit(review.admin, job_id, 0).json()["entries"][0]["decision"] == "approve"


def test_review_routes_need_the_review_scope(review: Review) -> None:
    job_id = review.held(1)
    decision = {"decisions": [{"job_id": job_id, "variant": 0, "decision": "approve"}]}
    for token, status in ((review.no_review, 403), (None, 401)):
        with review.client(token) as client:
            assert client.get("/v1/review/images").status_code == status
            assert client.post("/v1/review/decisions", json=decision).status_code == status
            response = client.get(f"/v1/review/images/{job_id}/0/audit")
            assert response.status_code == status
            assert response.headers["content-type"] == "application/problem+json"
    assert review.producer.store.require(job_id).state is JobState.AWAITING_REVIEW


# --- durability ---


def test_the_audit_trail_outlives_the_job_record_and_the_api_process(review: Review) -> None:
    job_id = review.held(1)
    review.decide(review.reviewer, {"job_id": job_id, "variant": 0, "decision": "reject", "reason": "blurry"})
    assert review.producer.store.erase(job_id)
    keys = KeyStore(review.database_url, pepper=PEPPER)
    producer = Producer(review.settings)
    try:
        with serving(create_app(producer=producer, keys=keys, settings=review.settings)) as url:
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {review.reviewer}"}) as client:
                entries = client.get(f"/v1/review/images/{job_id}/0/audit").json()["entries"]
            with httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {review.b_reviewer}"}
            ) as other:
                assert other.get(f"/v1/review/images/{job_id}/0/audit").status_code == 404
    finally:
        producer.close()
        keys.close()
    assert [(e["decision"], e["reason"]) for e in entries] == [("reject", "blurry")]
    engine = create_engine(review.database_url)
    try:
        with engine.connect() as connection, pytest.raises(Exception, match="append-only"):
            connection.execute(text("DELETE FROM review_decisions WHERE job_id = :j"), {"j": job_id})
    finally:
        engine.dispose()
