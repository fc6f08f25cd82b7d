"""Observability and operator commands on the real services: ``celery -A worker.app worker``
processes with their metrics port, the session's Triton, SeaweedFS S3, RabbitMQ and Redis.

Three workers on a private namespace: a listing worker (prefork, 2 processes) and a callback
worker, both healthy, and a try-on worker pointed at a Triton that does not exist (its
``/readyz`` must say so). Jobs run through them; then ``/metrics`` is scraped over HTTP, the
probes are asked, and ``atelier ops`` runs against the same services.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from core.contracts.jobs import JobRecord, JobState
from core.model_registry import ModelRegistry
from core.model_versions import DefaultVersions
from core.topology import CALLBACK_TASK, LISTING_TASK
from core.worker_settings import WorkerSettings
from embedded.process import free_port
from embedded.receiver import CallbackReceiver
from embedded.stack import Pool, Stack
from embedded.triton import TritonServer
from producer.cli import app as cli
from producer.client import Producer
from serving_contract.manifest import default_manifest
from tests.integration.services import require_services

pytestmark = [pytest.mark.triton, pytest.mark.slow]

JOB_TIMEOUT_S = 180.0
runner = CliRunner()


@dataclass
class Rig:
    settings: WorkerSettings
    producer: Producer
    receiver: CallbackReceiver
    ports: dict[str, int]  #: metrics port of each worker: listing, callbacks, tryon (no Triton)
    logs: Path

    def listing(self, i: int, **fields: Any) -> dict[str, Any]:
        return {
            "kind": "listing",
            "requester": "shop-ops",
            "listing_id": f"SKU-OPS-{i}",
            "attributes": {"category": "dress", "colour": "navy"},
            "variants": 2,
            "seed": 500 + i,
            "output": {"format": "png", "size": 32},
            **fields,
        }

    def wait(self, job_id: str) -> JobRecord:
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while True:
            record = self.producer.status(job_id)
            if record.state.terminal:
                return record
            if time.monotonic() > deadline:
                pytest.fail(f"job {job_id} still {record.state.value}; logs in {self.logs}")
            time.sleep(0.2)

    def ops(self, *args: str) -> Any:
        """``atelier ops ARGS`` with this rig's settings in the environment."""
        return runner.invoke(cli, ["ops", *args], env=self.settings.environment())


def scrape(port: int, path: str = "/metrics") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def samples(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a worker's ``/metrics``, by name and label set."""
    status, text = scrape(port)
    assert status == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(found: dict[tuple[str, frozenset[tuple[str, str]]], float], metric: str, /, **labels: str) -> float:
    """``metric`` summed over the label sets that include ``labels``."""
    want = set(labels.items())
    return sum(value for (n, got), value in found.items() if n == metric and want <= got)


@pytest.fixture(scope="module")
def rig(triton: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    require_services()
    state = tmp_path_factory.mktemp("operations")
    ports = {role: free_port() for role in ("listing", "callbacks", "tryon")}
    nowhere = f"127.0.0.1:{free_port()}"
    workers = [
        Pool("listing", concurrency=2, settings={"metrics_port": ports["listing"]}),
        Pool("callbacks", settings={"metrics_port": ports["callbacks"]}),
        Pool(
            "tryon",
            settings={"metrics_port": ports["tryon"], "triton_grpc_url": nowhere, "triton_http_url": nowhere},
        ),
    ]
    settings = {
        "triton_http_url": triton.http_url,
        "metrics_host": "127.0.0.1",
        "readiness_cache_s": 0.5,
        "default_version_cache_s": 0.5,
    }
    with Stack(
        tag="ops", workdir=state, triton_grpc_url=triton.grpc_url, workers=workers, settings=settings
    ) as stack:
        assert stack.receiver is not None
        yield Rig(stack.settings, stack.producer, stack.receiver, ports, stack.logs)


def test_jobs_move_the_counters_and_stage_histograms_of_every_pool_process(rig: Rig) -> None:
    queue = rig.settings.listing_queue
    done = [
        rig.wait(rig.producer.submit(rig.listing(i, callback={"url": rig.receiver.url_for("shop-ops")})))
        for i in range(2)
    ] + [rig.wait(rig.producer.submit(rig.listing(2)))]
    register(rig.settings, 99)  # a version with a manifest that Triton does not serve: the worker's failure
    time.sleep(1.0)  # past default_version_cache_s: the producer reads the registered versions again
    unknown = rig.wait(rig.producer.submit(rig.listing(3, model_version=99)))
    assert [r.state for r in done] == [JobState.SUCCEEDED] * 3 and unknown.state is JobState.FAILED

    found = samples(rig.ports["listing"])
    assert total(found, "atelier_jobs_started_total", kind="listing") == 4
    assert total(found, "atelier_jobs_finished_total", kind="listing", state="succeeded") == 3
    assert total(found, "atelier_jobs_finished_total", kind="listing", state="failed") == 1
    assert total(found, "atelier_job_failures_total", kind="listing", code="model_version_not_found") == 1
    stage_counts = {
        stage: total(found, "atelier_job_stage_seconds_count", kind="listing", stage=stage)
        for stage in ("queue_wait", "inference", "encode", "upload", "total")
    }
    assert stage_counts == {"queue_wait": 4, "inference": 4, "encode": 6, "upload": 6, "total": 4}
    assert total(found, "atelier_job_stage_seconds_sum", kind="listing", stage="inference") > 0
    # celery-exporter's names: received in the main process, the rest in the pool processes
    task = {"name": LISTING_TASK, "queue_name": queue}
    assert total(found, "celery_task_received_total", **task) == 4
    assert total(found, "celery_task_started_total", **task) == 4
    assert total(found, "celery_task_succeeded_total", **task) == 4  # a failed job's task returns
    assert total(found, "celery_task_runtime_count", **task) == 4
    assert total(found, "celery_worker_tasks_active") == 0
    assert total(found, "atelier_tasks_in_progress", name=LISTING_TASK) == 0

    # the callbacks of the first two jobs (queued, started, succeeded): the callback worker sends
    # them, but for job.succeeded's first attempt, which the listing worker may make itself
    # (worker.notifications: once job.started has an outcome)
    def delivered(metric: str) -> float:
        roles = ("listing", "callbacks")
        return sum(total(samples(rig.ports[role]), metric, outcome="delivered") for role in roles)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and delivered("atelier_callback_deliveries_total") < 6:
        time.sleep(0.5)
    assert delivered("atelier_callback_deliveries_total") == 6
    assert delivered("atelier_callback_delivery_seconds_count") == 6
    callbacks = samples(rig.ports["callbacks"])
    assert total(callbacks, "celery_task_succeeded_total", name=CALLBACK_TASK) >= 4


def register(settings: WorkerSettings, version: int) -> None:
    """Register the built-in manifest as ``version`` of product_cgan (a version Triton does not
    have), so requests pinned to it, or defaulting to it, pass the submit's check."""
    registry = ModelRegistry.from_settings(settings)
    try:
        registry.register(default_manifest("product_cgan", version))
    finally:
        registry.close()


def test_readyz_is_200_with_its_services_up_and_503_when_triton_is_unreachable(rig: Rig) -> None:
    status, body = scrape(rig.ports["listing"], "/readyz")
    assert status == 200, body
    assert set(json.loads(body)["checks"]) == {"broker", "redis", "triton", "s3"}
    assert scrape(rig.ports["listing"], "/healthz")[0] == 200
    callbacks = json.loads(scrape(rig.ports["callbacks"], "/readyz")[1])
    assert callbacks["ok"] and set(callbacks["checks"]) == {"broker", "redis"}  # no Triton needed

    status, body = scrape(rig.ports["tryon"], "/readyz")
    checks = json.loads(body)["checks"]
    assert status == 503 and not checks["triton"]["ok"], body
    assert checks["s3"]["ok"] and checks["redis"]["ok"] and checks["broker"]["ok"]
    assert scrape(rig.ports["tryon"], "/healthz")[0] == 200  # alive: restarting would not help


def test_ops_queues_workers_models_and_health_against_the_real_services(rig: Rig) -> None:
    s = rig.settings
    queues = rig.ops("queues", "--json")
    assert queues.exit_code == 0, queues.output
    by_role = {q["role"]: q for q in json.loads(queues.stdout)}
    assert by_role["listing"]["name"] == s.listing_queue and by_role["listing"]["consumers"] == 1
    assert by_role["dead_letter"]["exists"] and by_role["dead_letter"]["consumers"] == 0

    workers = rig.ops("workers", "--json", "--timeout", "2")
    assert workers.exit_code == 0, workers.output
    by_name = {w["name"].split("@")[0]: w for w in json.loads(workers.stdout)}
    assert set(by_name) == {f"{role}-{s.exchange}" for role in ("listing", "callbacks", "tryon")}
    listing = by_name[f"listing-{s.exchange}"]
    assert listing["queues"] == [s.listing_queue] and listing["concurrency"] == 2

    models = rig.ops("models", "--json")
    assert models.exit_code == 0, models.output
    states = {(m["name"], m["version"]): m["state"] for m in json.loads(models.stdout)["models"]}
    assert states[("product_cgan", "1")] == "READY" and states[("tryon_cvae", "1")] == "READY"

    health = rig.ops("health", "--json")
    assert health.exit_code == 0, health.output
    assert set(json.loads(health.stdout)["checks"]) == {"broker", "redis", "triton", "s3"}
    down = runner.invoke(
        cli, ["ops", "health"], env={**s.environment(), "ATELIER_TRITON_HTTP_URL": f"127.0.0.1:{free_port()}"}
    )
    assert down.exit_code == 1 and "down" in down.stdout


def test_the_default_version_reaches_jobs_that_pin_none_and_an_unloaded_one_is_refused(rig: Rig) -> None:
    refused = rig.ops("set-default-version", "product_cgan", "2")
    assert refused.exit_code == 2 and "not loaded and ready" in refused.output
    # a default that Triton dropped after it was set: jobs that pin no version now ask for it
    unregistered = rig.ops("set-default-version", "product_cgan", "7")
    assert unregistered.exit_code == 2 and "not loaded and ready" in unregistered.output
    register(rig.settings, 7)
    defaults = DefaultVersions(rig.settings)
    defaults.set("product_cgan", 7)
    time.sleep(1.0)  # past default_version_cache_s
    record = rig.wait(rig.producer.submit(rig.listing(10)))
    assert record.state is JobState.FAILED and record.error is not None
    assert record.error.code == "model_version_not_found" and "version 7" in record.error.message

    done = rig.ops("set-default-version", "product_cgan", "1")
    assert done.exit_code == 0, done.output
    assert defaults.get("product_cgan") == 1
    assert "product_cgan: 1" in rig.ops("default-version").stdout
    time.sleep(1.0)
    record = rig.wait(rig.producer.submit(rig.listing(11)))
    assert record.state is JobState.SUCCEEDED and record.model_version == "1"
    assert rig.ops("clear-default-version", "product_cgan").exit_code == 0
    assert defaults.get("product_cgan") is None
    defaults.close()
