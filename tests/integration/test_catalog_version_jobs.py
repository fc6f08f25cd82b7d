"""Issue 16's done-when, end to end: tiny models trained by the catalog trainer on
tests/catalog_fixture.py's catalog are exported into a copy of ``triton_models/``, as product_cgan
version 2 (the plain catalog) and version 3 (its variant with patterns solid, stripes and dots); a
stack (real Triton serving versions 1 to 3, SeaweedFS S3, RabbitMQ, Redis, a real listing worker)
registers the copy's versions at start, as ``atelier ops register-versions`` does.

Then a listing pinned to version 2 with a category only version 2 knows succeeds, and the same
request pinned to version 1, or a version-1 category pinned to version 2, is refused at submit
naming the version and its categories, with nothing queued. A listing pinned to version 3 with
``pattern: "stripes"`` succeeds; ``"denim"`` is refused at submit naming version 3's patterns;
one naming no pattern gets version 3's first (``solid``): the same bytes as asking for it.

The worker runs without the quality gate: a model trained for two steps cannot pass the colour
check, and what the gate does with a catalog version is unit-tested (test_worker_conditions.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import ValidationError

from core.contracts.jobs import JobState
from embedded.stack import Pool, Stack
from serving_contract.manifest import read_manifest
from tests.catalog_versions import committed_repository, export_tiny, serve_every_version
from tests.integration.services import queue_depth, require_services
from worker.storage import ImageStore

pytestmark = [pytest.mark.triton, pytest.mark.slow]

JOB_TIMEOUT_S = 120.0


@dataclass
class Catalog:
    stack: Stack
    version_dir: Path  #: version 2, the plain catalog's
    patterned_dir: Path  #: version 3, the catalog with patterns


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    require_services()
    root = tmp_path_factory.mktemp("catalog-jobs")
    repository = committed_repository(root / "repository")
    version_dir = export_tiny(root, repository)
    patterned_dir = export_tiny(root, repository, patterns=True)
    assert (version_dir.name, patterned_dir.name) == ("2", "3")
    serve_every_version(repository)  # one Triton serves versions 1, 2 and 3
    with Stack(
        tag="catalog",
        workdir=root / "stack",
        triton_repository=repository,
        receiver=False,
        workers=[Pool("listing", env={"ATELIER_GATE_ENABLED": "false"})],
    ) as stack:
        yield Catalog(stack, version_dir, patterned_dir)


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
    # the path starts with the request's kind, as every other error of a parsed request does
    assert error["loc"] == ("listing", "attributes", "category") and error["type"] == "unknown_category"
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


def patterned(pattern: str | None, listing_id: str) -> dict[str, Any]:
    """A skirt listing pinned to version 3, naming ``pattern`` (none if ``None``), seed 11."""
    request = skirt(3) | {"listing_id": listing_id}
    if pattern is not None:
        request["attributes"] = request["attributes"] | {"pattern": pattern}
    return request


def images_of(catalog: Catalog, job_id: str) -> list[bytes]:
    """The stored PNG bytes of a succeeded job's variants, in order."""
    producer, store = catalog.stack.producer, ImageStore(catalog.stack.settings)
    record = producer.wait_all([job_id], JOB_TIMEOUT_S)[job_id]
    assert record.state is JobState.SUCCEEDED, (record.error, catalog.stack.logs)
    assert (record.model, record.model_version) == ("product_cgan", "3")
    keys = [image.key for image in record.results]
    assert keys == [f"listing/{job_id}/{variant}.png" for variant in range(2)]
    assert store.list_keys(f"listing/{job_id}/") == keys
    return [store.get_bytes(key) for key in keys]


def test_a_listing_pinned_to_the_patterned_version_with_stripes_succeeds(catalog: Catalog) -> None:
    assert read_manifest(catalog.patterned_dir).conditions.pattern_names() == ("solid", "stripes", "dots")
    job_id = catalog.stack.producer.submit(patterned("stripes", "SKU-stripes"))
    stored = images_of(catalog, job_id)
    assert all(png.startswith(b"\x89PNG") for png in stored)
    metadata = ImageStore(catalog.stack.settings).metadata(f"listing/{job_id}/0.png")
    assert (metadata["model-version"], metadata["category"], metadata["pattern"]) == ("3", "skirt", "stripes")


def test_a_pattern_the_version_does_not_know_is_refused_at_submit_naming_its_patterns(
    catalog: Catalog,
) -> None:
    producer, settings = catalog.stack.producer, catalog.stack.settings
    before = queue_depth(settings, settings.listing_queue)
    with pytest.raises(ValidationError) as caught:
        producer.submit(patterned("denim", "SKU-denim"))
    [error] = caught.value.errors()
    assert error["loc"] == ("listing", "attributes", "pattern") and error["type"] == "unknown_pattern"
    assert error["msg"] == "'denim' is not a pattern of product_cgan v3; allowed: solid, stripes, dots"
    with pytest.raises(ValidationError) as caught:  # and version 2 has no patterns at all
        producer.submit(patterned("stripes", "SKU-v2") | {"model_version": 2})
    assert [e["msg"] for e in caught.value.errors()] == ["product_cgan v2 has no patterns"]
    assert queue_depth(settings, settings.listing_queue) == before


def test_a_listing_naming_no_pattern_gets_the_version_s_first_pattern(catalog: Catalog) -> None:
    """Same seed and conditions: no pattern makes solid's bytes, and stripes makes others."""
    producer = catalog.stack.producer
    unnamed, solid, stripes = (
        producer.submit(patterned(pattern, f"SKU-first-{pattern}")) for pattern in (None, "solid", "stripes")
    )
    assert images_of(catalog, unnamed) == images_of(catalog, solid)
    assert images_of(catalog, unnamed) != images_of(catalog, stripes)
    metadata = ImageStore(catalog.stack.settings).metadata(f"listing/{unnamed}/0.png")
    assert metadata["pattern"] == "solid"  # the image says which pattern made it
