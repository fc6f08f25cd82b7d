"""worker.metrics, worker.health and worker.endpoints without services: what each helper records
in the registry, the multiprocess plumbing (in a child interpreter), the probes' verdicts and
the HTTP answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from core.contracts.jobs import JobError, JobKind, JobRecord, JobState
from core.worker_settings import WorkerSettings
from ops.checks import triton_http_base
from worker import metrics
from worker.callbacks import DeliveryOutcome, DeliveryStatus
from worker.endpoints import Endpoints
from worker.health import Liveness, Readiness, worker_probes

ROOT = Path(__file__).resolve().parents[2]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def record(state: JobState, *, error: str | None = None) -> JobRecord:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    return JobRecord(
        job_id="j1",
        kind=JobKind.LISTING,
        state=state,
        requester="shop",
        subject="SKU-1",
        created_at=created,
        started_at=created + timedelta(seconds=3),
        finished_at=created + timedelta(seconds=10),
        error=JobError(code=error, message="m", retryable=False) if error else None,
    )


class Records:
    def __init__(self, found: JobRecord | None = None, *, broken: bool = False) -> None:
        self.found, self.broken = found, broken

    def get(self, job_id: str) -> JobRecord | None:
        if self.broken:
            raise ConnectionError("redis is down")
        return self.found


def test_stage_observes_the_block_s_time_whether_it_returns_or_raises() -> None:
    name = "atelier_job_stage_seconds_count"
    before = sample(name, kind="tryon", stage="encode")
    with metrics.stage(JobKind.TRYON, "encode"):
        pass
    with pytest.raises(ValueError), metrics.stage(JobKind.TRYON, "encode"):
        raise ValueError("bad image")
    assert sample(name, kind="tryon", stage="encode") == before + 2


def test_a_finished_job_counts_its_state_and_code_and_observes_queue_wait_and_total() -> None:
    labels = {"kind": "listing"}
    failed_before = sample("atelier_jobs_finished_total", **labels, state="failed")
    code_before = sample("atelier_job_failures_total", **labels, code="model_version_not_found")
    wait_before = sample("atelier_job_stage_seconds_sum", **labels, stage="queue_wait")
    total_before = sample("atelier_job_stage_seconds_sum", **labels, stage="total")
    metrics.job_finished(Records(record(JobState.FAILED, error="model_version_not_found")), "j1")
    assert sample("atelier_jobs_finished_total", **labels, state="failed") == failed_before + 1
    assert sample("atelier_job_failures_total", **labels, code="model_version_not_found") == code_before + 1
    assert sample("atelier_job_stage_seconds_sum", **labels, stage="queue_wait") == wait_before + 3
    assert sample("atelier_job_stage_seconds_sum", **labels, stage="total") == total_before + 10


def test_job_metrics_never_fail_a_job_when_the_record_cannot_be_read() -> None:
    before = sample("atelier_jobs_finished_total", kind="listing", state="succeeded")
    metrics.job_finished(Records(broken=True), "j1")
    metrics.job_finished(Records(None), "j1")
    metrics.job_finished(Records(record(JobState.RUNNING)), "j1")  # not ended: nothing to count
    assert sample("atelier_jobs_finished_total", kind="listing", state="succeeded") == before


def test_started_and_retried_jobs_are_counted_by_kind_and_code() -> None:
    started = sample("atelier_jobs_started_total", kind="tryon")
    retried = sample("atelier_job_retries_total", kind="tryon", code="inference_unavailable")
    metrics.job_started("tryon")
    metrics.job_retried("tryon", "inference_unavailable")
    assert sample("atelier_jobs_started_total", kind="tryon") == started + 1
    assert sample("atelier_job_retries_total", kind="tryon", code="inference_unavailable") == retried + 1


def test_a_dead_letter_is_counted_under_its_queue_without_the_delayed_delivery_prefix() -> None:
    before = sample("atelier_dead_letters_total", reason="not_json", queue_name="atelier.listing")
    metrics.dead_lettered("not_json", "atelier.listing")
    metrics.dead_lettered(
        "not_json", "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.1.atelier.listing"
    )
    assert sample("atelier_dead_letters_total", reason="not_json", queue_name="atelier.listing") == before + 2


def test_callback_attempts_are_counted_and_timed_by_outcome_and_an_exception_is_an_error() -> None:
    @metrics.callback_delivery
    def deliver(status: DeliveryStatus | None) -> DeliveryOutcome:
        if status is None:
            raise RuntimeError("no secret")
        return DeliveryOutcome(status, "msg_1")

    counts = {
        o: sample("atelier_callback_deliveries_total", outcome=o) for o in ("delivered", "retry", "error")
    }
    timed = sample("atelier_callback_delivery_seconds_count", outcome="retry")
    deliver(DeliveryStatus.DELIVERED)
    deliver(DeliveryStatus.RETRY)
    with pytest.raises(RuntimeError):
        deliver(None)
    for outcome, before in counts.items():
        assert sample("atelier_callback_deliveries_total", outcome=outcome) == before + 1
    assert sample("atelier_callback_delivery_seconds_count", outcome="retry") == timed + 1


def task_total(sample_name: str, task: str) -> float:
    """``sample_name`` summed over every label set of ``task``."""
    return sum(
        s.value
        for m in REGISTRY.collect()
        for s in m.samples
        if s.name == sample_name and s.labels.get("name") == task
    )


def test_celery_task_lifecycle_counters_use_celery_exporter_names_and_labels() -> None:
    from worker.app import app  # connects worker.metrics.observe_celery_tasks

    @app.task(name="atelier.test.metrics_noop")
    def noop() -> None:
        return None

    @app.task(name="atelier.test.metrics_boom")
    def boom() -> None:
        raise KeyError("boom")

    names = ("celery_task_started_total", "celery_task_succeeded_total", "celery_task_runtime_count")
    before = {n: task_total(n, noop.name) for n in names}
    noop.apply()
    boom.apply()
    assert {n: task_total(n, noop.name) for n in names} == {n: v + 1 for n, v in before.items()}
    failed = [
        s
        for m in REGISTRY.collect()
        for s in m.samples
        if s.name == "celery_task_failed_total" and s.labels.get("name") == boom.name
    ]
    assert [s.labels["exception"] for s in failed] == ["KeyError"]
    assert set(failed[0].labels) == {"name", "hostname", "exception", "queue_name"}
    assert task_total("atelier_tasks_in_progress", noop.name) == 0
    assert metrics.host_of("listing-e2e@worker-7") == "worker-7"


def test_pool_processes_samples_add_up_in_the_main_process_and_a_dead_one_s_gauge_goes(
    tmp_path: Path,
) -> None:
    """A child interpreter: multiprocess mode cannot be undone in this one."""
    script = textwrap.dedent(
        f"""
        import os, signal, time
        from pathlib import Path
        from worker import metrics
        folder = metrics.use_multiprocess_dir(Path({str(tmp_path / "prom")!r}))
        metrics.job_started("listing")  # the main process counts too (the gate does)
        pid = os.fork()
        if pid == 0:
            metrics.job_started("listing")
            metrics.TASKS_IN_PROGRESS.labels(name="t", queue_name="q").inc()
            time.sleep(30)
        time.sleep(1.0)
        body = metrics.exposition()[0].decode()
        wanted = ("atelier_jobs_started", "atelier_tasks_in")
        print("BEFORE", [line for line in body.splitlines() if line.startswith(wanted)])
        os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0)
        body = metrics.exposition()[0].decode()
        print("AFTER", [line for line in body.splitlines() if line.startswith(wanted)])
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(metrics.MULTIPROC_ENV, None)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    before, after = (line for line in done.stdout.splitlines() if line.startswith(("BEFORE", "AFTER")))
    assert 'atelier_jobs_started_total{kind="listing"} 2.0' in before
    assert 'atelier_tasks_in_progress{name="t",queue_name="q"} 1.0' in before
    assert 'atelier_jobs_started_total{kind="listing"} 2.0' in after  # counters outlive the process
    assert "atelier_tasks_in_progress" not in after or 'queue_name="q"} 0.0' in after


def test_forget_dead_processes_drops_only_the_live_gauges_of_pids_that_are_gone(tmp_path: Path) -> None:
    dead_pid = 2**22 + 12345  # above the default pid_max: never a live process
    mine = os.getpid()
    for name in (f"gauge_livesum_{dead_pid}.db", f"gauge_livesum_{mine}.db", f"counter_{dead_pid}.db"):
        (tmp_path / name).write_bytes(b"")
    assert metrics.forget_dead_processes(tmp_path) == [dead_pid]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"counter_{dead_pid}.db",
        f"gauge_livesum_{mine}.db",
    ]


# --- health and endpoints ---


def settings(**values: Any) -> WorkerSettings:
    return WorkerSettings(_env_file=None, **values)  # type: ignore[call-arg]


def test_triton_http_endpoint_defaults_to_the_grpc_host_on_port_8000() -> None:
    assert triton_http_base(settings(triton_grpc_url="triton.svc:8001")) == "http://triton.svc:8000"
    assert (
        triton_http_base(settings(triton_http_url="10.0.0.5:9000", triton_ssl=True))
        == "https://10.0.0.5:9000"
    )
    assert triton_http_base(settings(triton_http_url="http://t:1")) == "http://t:1"


def test_a_callback_only_worker_is_not_held_back_by_triton_or_s3() -> None:
    s = settings()
    assert set(worker_probes(s, Liveness(), [s.callback_queue])) == {"broker", "redis"}
    assert set(worker_probes(s, Liveness(), [s.listing_queue])) == {"broker", "redis", "triton", "s3"}


class Connected:
    def __init__(self, connected: bool) -> None:
        self.connection = type("C", (), {"connected": connected})()


def test_liveness_needs_a_started_and_connected_consumer() -> None:
    liveness = Liveness()
    with pytest.raises(RuntimeError, match="not started"):
        liveness.check()
    liveness.consumer = Connected(False)
    with pytest.raises(RuntimeError, match="not connected"):
        liveness.check()
    liveness.consumer = Connected(True)
    assert liveness.check() == "consumer connected"


def test_readiness_is_checked_once_per_cache_period_and_reports_each_service() -> None:
    calls: list[str] = []
    now = [0.0]

    def triton() -> str:
        calls.append("triton")
        raise RuntimeError("server not ready")

    readiness = Readiness({"triton": triton, "redis": lambda: "PONG"}, cache_s=5, clock=lambda: now[0])
    report = readiness.report()
    assert (
        not report.ok and report.as_json()["checks"]["triton"]["detail"] == "RuntimeError: server not ready"
    )
    assert report.as_json()["checks"]["redis"] == {"ok": True, "detail": "PONG", "seconds": 0.0}
    now[0] = 4.9
    readiness.report()
    assert calls == ["triton"]
    now[0] = 5.0
    readiness.report()
    assert calls == ["triton", "triton"]
    # each round is on /metrics too, for the alert that a worker is not ready
    assert sample("atelier_worker_dependency_up", check="triton") == 0.0
    assert sample("atelier_worker_dependency_up", check="redis") == 1.0


@pytest.fixture()
def endpoints() -> Iterator[tuple[Endpoints, Liveness, dict[str, bool]]]:
    liveness, healthy = Liveness(), {"triton": True}

    def triton() -> str:
        if not healthy["triton"]:
            raise RuntimeError("down")
        return "ready"

    server = Endpoints(
        host="127.0.0.1",
        port=0,
        liveness=liveness,
        readiness=Readiness({"triton": triton}, cache_s=0),
        exposition=lambda: (b"atelier_up 1\n", "text/plain; version=0.0.4"),
    ).start()
    yield server, liveness, healthy
    server.stop()


def get(server: Endpoints, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_endpoints_answer_metrics_healthz_and_readyz_over_http(
    endpoints: tuple[Endpoints, Liveness, dict[str, bool]],
) -> None:
    server, liveness, healthy = endpoints
    assert get(server, "/metrics") == (200, "atelier_up 1\n")
    status, body = get(server, "/healthz")
    assert status == 503 and not json.loads(body)["ok"]
    liveness.consumer = Connected(True)
    assert get(server, "/healthz")[0] == 200
    assert get(server, "/readyz")[0] == 200
    healthy["triton"] = False
    status, body = get(server, "/readyz")
    assert status == 503 and json.loads(body)["checks"]["triton"]["detail"] == "RuntimeError: down"
    assert get(server, "/nothing")[0] == 404


def test_a_taken_port_is_logged_and_the_worker_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    from worker.endpoints import serve

    first = serve(host="127.0.0.1", port=0, liveness=Liveness(), readiness=Readiness({}))
    assert first is not None
    try:
        second = serve(host="127.0.0.1", port=first.port, liveness=Liveness(), readiness=Readiness({}))
        assert second is None and "not served" in caplog.text
    finally:
        first.stop()
