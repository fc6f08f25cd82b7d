"""The worker maps a job's slugs with the manifest of the version it actually runs at, sends that
version to Triton (and ``PATTERN`` only to a version with patterns), fails a job whose condition
its version does not know, and leaves a category the judge does not know unjudged (issue 16)."""

from __future__ import annotations

from typing import Any

from core.contracts.jobs import JobState
from tests.recording_gate import RecordingGate
from tests.unit.test_conditions import PATTERNED, catalog_version
from tests.unit.test_worker_pipeline import Harness, listing, tryon
from worker.pipeline import run_listing, run_tryon


def catalog_listing(**fields: Any) -> dict[str, Any]:
    return listing(attributes={"category": "skirt", "colour": "coral"}, variants=1, **fields)


def test_a_job_pinned_to_the_catalog_version_sends_that_version_s_indexes_and_that_version() -> None:
    gate = RecordingGate()
    h = Harness(gate=gate)
    assert h.ctx.models is not None
    h.ctx.models.register(catalog_version())
    job_id, request = h.submit(catalog_listing(model_version=2))
    run_listing(job_id, request, h.ctx)
    record = h.store.records[job_id]
    assert record.state is JobState.SUCCEEDED and record.model_version == "2"
    assert h.triton.calls == [
        ("product_cgan", {"categories": [2], "colours": [1], "seeds": [5], "version": 2})
    ]  # no "patterns": version 2 has none, so no PATTERN input
    # the judge (version 1's ten categories) does not know skirt: not judged; the colour is v2's coral
    assert gate.asked == [(None, (255, 127, 80))]


def test_without_a_pin_default_or_setting_the_job_runs_at_the_highest_registered_version() -> None:
    h = Harness()
    assert h.ctx.models is not None
    h.ctx.models.register(catalog_version())
    job_id, request = h.submit(catalog_listing())
    run_listing(job_id, request, h.ctx)
    assert h.triton.calls[0][1]["version"] == 2 and h.store.records[job_id].state is JobState.SUCCEEDED


def test_the_worker_setting_comes_before_the_highest_registered_version() -> None:
    h = Harness(product_model_version="1")
    assert h.ctx.models is not None
    h.ctx.models.register(catalog_version())
    job_id, request = h.submit(listing(variants=1))
    run_listing(job_id, request, h.ctx)
    assert h.triton.calls[0][1] == {"categories": [3], "colours": [8], "seeds": [5], "version": 1}


def test_a_version_with_patterns_gets_the_pattern_index_and_its_first_pattern_by_default() -> None:
    gate = RecordingGate()
    h = Harness(gate=gate)
    assert h.ctx.models is not None
    h.ctx.models.register(PATTERNED)
    for pattern, index in ((None, 0), ("checks", 2)):
        attributes = {"category": "tee", "colour": "teal", **({"pattern": pattern} if pattern else {})}
        job_id, request = h.submit(listing(attributes=attributes, variants=2, model_version=3))
        run_listing(job_id, request, h.ctx)
        assert h.triton.calls[-1][1]["patterns"] == [index, index]
        assert h.store.records[job_id].state is JobState.SUCCEEDED
    # the gate's colour check is told the pattern (a striped garment's mean is not its base colour)
    assert gate.patterns == [PATTERNED.conditions.patterns[0].name, "checks"]


def test_a_condition_the_version_does_not_know_fails_the_job_naming_the_version() -> None:
    """The default changed between submit and run: the job fails, never a wrong image."""
    h = Harness()
    assert h.ctx.models is not None
    h.ctx.models.register(catalog_version())
    job_id, request = h.submit(listing(variants=1))  # dress, navy: checked against version 1 at submit
    run_listing(job_id, request, h.ctx)  # ...but version 2 is now the highest
    record = h.store.records[job_id]
    assert record.state is JobState.FAILED and record.error is not None
    assert record.error.code == "unknown_condition" and not record.error.retryable
    assert record.error.message == (
        "attributes.category: 'dress' is not a category of product_cgan v2; allowed: scarf, tee, skirt"
    )
    assert h.triton.calls == []


def test_a_pinned_version_without_a_manifest_fails_as_not_found() -> None:
    h = Harness()
    job_id, request = h.submit(listing(model_version=7))
    run_listing(job_id, request, h.ctx)
    record = h.store.records[job_id]
    assert record.state is JobState.FAILED and record.error is not None
    assert (record.error.code, record.error.message) == (
        "model_version_not_found",
        "product_cgan has no version 7; its versions: 1",
    )


def test_a_tryon_garment_the_tryon_version_cannot_dress_fails_the_job() -> None:
    h = Harness()
    job_id, request = h.submit(tryon({"source": "attributes", "category": "sandal", "colour": "red"}))
    run_tryon(job_id, request, h.ctx)
    record = h.store.records[job_id]
    assert record.state is JobState.FAILED and record.error is not None
    assert record.error.message.startswith(
        "garment.category: 'sandal' cannot be tried on by tryon_cvae v1; wearable categories: t_shirt"
    )
    assert h.triton.calls == []


def test_a_process_serving_two_settings_reads_each_one_s_registry() -> None:
    """An embedded stack or a test run serves several settings in one process: each reads the
    versions of its own Redis and prefix (a registry kept per process only read a store gone by then)."""
    from types import SimpleNamespace

    from core.settings import AtelierSettings
    from worker.model_versions import registry

    def context(url: str, prefix: str) -> Any:
        settings = AtelierSettings(redis_url=url, redis_key_prefix=prefix)  # type: ignore[call-arg]
        return SimpleNamespace(models=None, settings=settings)

    first = registry(context("redis://127.0.0.1:1/0", "one:"))
    assert registry(context("redis://127.0.0.1:1/0", "one:")) is first
    assert registry(context("redis://127.0.0.1:2/0", "one:")) is not first
    assert registry(context("redis://127.0.0.1:1/0", "two:")) is not first
