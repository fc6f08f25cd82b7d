"""Issue 16's done-when, end to end: a tiny model trained from tests/catalog_fixture.py's catalog
is exported as product_cgan version 2 into a copy of ``triton_models/``; a stack (real Triton
serving versions 1 and 2, SeaweedFS S3, RabbitMQ, Redis, a real listing worker) registers the
copy's versions at start, as ``atelier ops register-versions`` does. Then a listing pinned to
version 2 with a category only version 2 knows succeeds, and the same request pinned to version 1,
or a version-1 category pinned to version 2, is refused at submit naming the version and its
categories, with nothing queued.

The worker runs without the quality gate: a model trained for two steps cannot pass the colour
check, and what the gate does with a catalog version is unit-tested (test_worker_conditions.py).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import torch
from pydantic import ValidationError

from core.contracts.jobs import JobState
from embedded.stack import Pool, Stack
from serving_contract.manifest import read_manifest
from tests.catalog_fixture import write_catalog
from tests.integration.services import queue_depth, require_services
from tests.integration.test_catalog_version_triton import TINY
from training.catalog.command import CatalogRun, run_catalog_cgan
from worker.storage import ImageStore

pytestmark = [pytest.mark.triton, pytest.mark.slow]

JOB_TIMEOUT_S = 120.0


@dataclass
class Catalog:
    stack: Stack
    version_dir: Path


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    require_services()
    root = tmp_path_factory.mktemp("catalog-jobs")
    repository = root / "repository"
    shutil.copytree("triton_models/product_cgan", repository / "product_cgan")
    write_catalog(root / "catalog")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = CatalogRun(
            root / "catalog",
            Path("attributes.csv"),
            root / "run",
            TINY,
            skip_invalid=True,
            export_to=repository,
        )
        version_dir = run_catalog_cgan(run)
    finally:
        torch.set_num_threads(threads)
    assert version_dir == repository / "product_cgan" / "2"
    config = repository / "product_cgan" / "config.pbtxt"  # serve both versions, as OPERATIONS.md says
    config.write_text(
        re.sub(r'(name: "product_cgan"\n)', r"\1version_policy: { all {} }\n", config.read_text())
    )
    with Stack(
        tag="catalog",
        workdir=root / "stack",
        triton_repository=repository,
        receiver=False,
        workers=[Pool("listing", env={"ATELIER_GATE_ENABLED": "false"})],
    ) as stack:
        yield Catalog(stack, version_dir)


def skirt(version: int, category: str = "skirt") -> dict[str, Any]:
    return {
        "requester": "shop-catalog",
        "listing_id": f"SKU-{category}-{version}",
        "attributes": {"category": category, "colour": "coral"},
        "variants": 2,
        "seed": 11,
        "model_version": version,
    }


def test_the_stack_registered_the_catalog_version_s_manifest_in_its_namespace(catalog: Catalog) -> None:
    settings = catalog.stack.settings
    client = redis.Redis.from_url(settings.redis_url.get_secret_value(), decode_responses=True)
    try:
        stored = client.get(f"{settings.redis_key_prefix}manifest:product_cgan:2")
    finally:
        client.close()
    assert stored is not None
    assert json.loads(stored) == json.loads(read_manifest(catalog.version_dir).model_dump_json())


def test_a_listing_pinned_to_the_catalog_version_with_its_own_category_succeeds(catalog: Catalog) -> None:
    producer = catalog.stack.producer
    job_id = producer.submit(skirt(2))
    record = producer.wait_all([job_id], JOB_TIMEOUT_S)[job_id]
    assert record.state is JobState.SUCCEEDED, (record.error, catalog.stack.logs)
    assert (record.model, record.model_version) == ("product_cgan", "2")
    keys = [f"listing/{job_id}/{variant}.png" for variant in range(2)]
    assert [image.key for image in record.results] == keys
    assert ImageStore(catalog.stack.settings).list_keys(f"listing/{job_id}/") == keys


def test_a_category_only_version_2_knows_is_refused_at_submit_when_pinned_to_version_1(
    catalog: Catalog,
) -> None:
    producer, settings = catalog.stack.producer, catalog.stack.settings
    before = queue_depth(settings, settings.listing_queue)
    with pytest.raises(ValidationError) as caught:
        producer.submit(skirt(1))
    [error] = caught.value.errors()
    assert error["loc"] == ("attributes", "category") and error["type"] == "unknown_category"
    assert error["msg"] == (
        "'skirt' is not a category of product_cgan v1; allowed: t_shirt, trouser, pullover, dress, coat, "
        "sandal, shirt, sneaker, bag, ankle_boot"
    )
    with pytest.raises(ValidationError) as caught:
        producer.submit(skirt(2, category="t_shirt"))
    assert [e["msg"] for e in caught.value.errors()] == [
        "'t_shirt' is not a category of product_cgan v2; allowed: scarf, tee, skirt"
    ]
    assert queue_depth(settings, settings.listing_queue) == before
