"""The short fault suite (``python -m bench.faults --short``) as CI runs it: jobs on real
services with workers SIGKILLed mid-job, Triton SIGKILLed and restarted, the S3 server stopped
and restarted, a private RabbitMQ node killed and restarted while a producer keeps submitting,
a callback receiver that is down, failing, slow or gone, poison messages, a job that crashes
its worker on every delivery, cancels racing the start, workers SIGKILLed between the quality
gate and the upload under each review policy, and reviewers' decisions racing a cancel (these two
also need PostgreSQL, ``ATELIER_DATABASE_URL``). No job may be lost or duplicated; the scenario's
own checks must all hold."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bench.faults.checks import ScenarioResult
from bench.faults.queue_scenarios import cancel_race, crash_loop, poison_messages
from bench.faults.review_scenarios import review_decision_cancel_race, sigkill_between_gate_and_upload
from bench.faults.scenarios import (
    callback_receiver_faults,
    rabbitmq_restart,
    s3_restart,
    triton_restart,
    worker_sigkill,
)
from embedded.triton import TritonServer
from tests.integration.services import require_services

pytestmark = [pytest.mark.triton, pytest.mark.slow]


#: a fault scenario: ``(workdir, triton_grpc_url, size)`` to its result
Scenario = Callable[[Path, str, str], ScenarioResult]


def run_short(scenario: Scenario, triton: TritonServer, tmp_path: Path) -> ScenarioResult:
    """The scenario's short size on the real services: no job lost or duplicated, and every one
    of the scenario's own checks held (the tests then name the checks that define it)."""
    require_services()
    result = scenario(tmp_path, triton.grpc_url, "short")
    assert (result.lost, result.duplicated) == (0, 0), result.as_dict()
    assert all(result.checks.values()), (result.checks, result.figures)
    return result


def test_workers_sigkilled_mid_job_lose_and_duplicate_no_job(triton: TritonServer, tmp_path: Path) -> None:
    result = run_short(worker_sigkill, triton, tmp_path)
    assert result.faults_injected >= 2 and result.succeeded == result.jobs, result.as_dict()


def test_callbacks_to_a_down_failing_slow_or_gone_receiver_retry_stop_on_410_and_are_recorded(
    triton: TritonServer, tmp_path: Path
) -> None:
    result = run_short(callback_receiver_faults, triton, tmp_path)
    assert result.succeeded == result.jobs, result.as_dict()
    assert result.faults["HTTP 410 answers"] > 0 and result.faults["HTTP 500 answers"] > 0
    assert result.checks["410 stopped the job's callbacks: no event re-sent after a 410"]
    assert result.checks["410 recorded on the job, later events not sent"]


def test_triton_killed_and_restarted_jobs_retry_and_succeed_or_fail_with_reason_when_budget_runs_out(
    triton: TritonServer, tmp_path: Path
) -> None:
    result = run_short(triton_restart, triton, tmp_path)
    assert result.figures["jobs retried (more than one attempt)"] > 0, result.as_dict()
    assert result.failed == 4 and result.succeeded == result.jobs - 4, result.as_dict()
    assert result.checks["budget-exhausted jobs failed after their 2 attempts, with the reason"]
    assert result.checks["their job.failed callback carries the reason"]


def test_s3_server_restarted_jobs_retry_and_succeed_with_one_set_of_objects(
    triton: TritonServer, tmp_path: Path
) -> None:
    result = run_short(s3_restart, triton, tmp_path)
    assert result.succeeded == result.jobs, result.as_dict()


def test_rabbitmq_restarted_every_publish_is_confirmed_or_raises_and_workers_reconnect(
    triton: TritonServer, tmp_path: Path
) -> None:
    result = run_short(rabbitmq_restart, triton, tmp_path)
    assert result.figures["submits confirmed"] > 0 and result.figures["submits that raised PublishError"] > 0
    assert result.checks["the same worker processes reconnected by themselves"]
    assert result.checks["every submit that raised is recorded failed: publish_failed"]


def test_poison_messages_are_dead_lettered_with_a_reason_and_the_worker_keeps_serving(
    triton: TritonServer, tmp_path: Path
) -> None:
    result = run_short(poison_messages, triton, tmp_path)
    assert result.faults_injected == 12 and result.figures["dead letters"] == 12, result.as_dict()


def test_a_job_crashing_its_worker_every_time_is_dead_lettered_then_failed_by_the_sweeper(
    triton: TritonServer, tmp_path: Path
) -> None:
    result = run_short(crash_loop, triton, tmp_path)
    assert (result.succeeded, result.failed) == (8, 2), result.as_dict()


def test_cancels_racing_the_start_end_each_job_canceled_or_succeeded_never_both(
    triton: TritonServer, tmp_path: Path
) -> None:
    result = run_short(cancel_race, triton, tmp_path)
    assert result.checks["both outcomes happened (the race was real)"], result.figures


def test_workers_sigkilled_between_the_gate_and_the_upload_end_each_job_once_as_its_policy_says(
    triton: TritonServer, tmp_path: Path
) -> None:
    result = run_short(sigkill_between_gate_and_upload, triton, tmp_path)
    assert result.faults_injected == 9, result.as_dict()
    assert result.checks["the same images, seeds and gate reports as an undisturbed run"], result.figures
    assert result.figures["ended"].get("awaiting_review", 0) > 0, result.figures


def test_review_decisions_racing_a_cancel_end_each_job_once_and_audit_only_what_applied(
    triton: TritonServer, tmp_path: Path
) -> None:
    result = run_short(review_decision_cancel_race, triton, tmp_path)
    assert result.checks["both sides won some jobs (the race was real)"], result.figures
    assert result.checks["the audit trail in PostgreSQL holds exactly the decisions that applied"]
    assert result.checks["one terminal callback per job, never a decision's and the cancel's both"]
