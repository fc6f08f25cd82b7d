"""The quality gate on a remade listing image (``worker.regeneration`` through
``worker.gating.gate_remake``), on the shipped stand-ins (``worker.stubs``): the remake is judged
last beside the job's other kept images, made again from derived seeds while it fails, and keeps
its report on the record and in the object's metadata. With real Redis and HTTP:
tests/integration/test_review_api.py; with the real Triton, gate and S3:
tests/integration/test_regeneration_gate_triton.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from prometheus_client import REGISTRY

from core.contracts.jobs import ImageDecision, ImageReview, JobState
from core.contracts.v1 import ListingImageRequest
from core.jobs.review import regenerated_seed
from quality.duplicates import duplicate_checks
from quality.settings import GateSettings
from quality.verdict import Verdict
from serving_contract.palette import colour_by_name
from serving_contract.taxonomy import category_by_slug
from serving_contract.tensors import PRODUCT_IMAGE_SIZE
from tests.recording_gate import RecordingGate
from tests.unit.test_review import Harness, listing, rejected_for_remake
from worker.gating import retry_seed
from worker.inference import Generated
from worker.regeneration import regenerate
from worker.stubs import ScriptedGate, StubInference

#: ``listing()``'s job seed: its variants are made from 5, 6 and 7
SEED = 5
#: the first seed of remake 1 of variant 1
REMADE = regenerated_seed(SEED, 1, 1)


def grey(seed: int) -> int:
    """The grey level ``StubInference`` gives ``listing()``'s product from ``seed``."""
    attributes = ListingImageRequest.model_validate(listing()).attributes
    category, colour = category_by_slug(attributes.category).index, colour_by_name(attributes.colour).index
    made = StubInference().generate_products([category], [colour], [seed])
    return int(made.images[0, 0, 0, 0])


class DuplicatesOnly(ScriptedGate):
    """Only the real near-duplicate check (``quality.duplicates``), at its default threshold."""

    def judge(
        self,
        images: np.ndarray,
        probabilities: np.ndarray,
        *,
        category: int | None,
        colour: int | tuple[int, int, int],
        pattern: str | None = None,
    ) -> list[Verdict]:
        minimum = GateSettings(_env_file=None).min_duplicate_hamming  # type: ignore[call-arg]
        return [Verdict((check,)) for check in duplicate_checks(images, min_hamming=minimum)]


class PatternInference(StubInference):
    """Product images with texture, one random pattern per seed, except that a seed in ``same``
    draws the pattern of the seed it maps to: a planted near-duplicate."""

    def __init__(self, same: Mapping[int, int] | None = None) -> None:
        super().__init__()
        self.same = dict(same or {})

    def generate_products(
        self,
        categories: Sequence[int],
        colours: Sequence[int],
        seeds: Sequence[int],
        *,
        version: int | str | None = None,
        patterns: Sequence[int] | None = None,
    ) -> Generated:
        made = super().generate_products(categories, colours, seeds, version=version, patterns=patterns)
        images = np.stack([pattern(self.same.get(seed, seed)) for seed in seeds])
        return Generated(images, made.model, made.version)


def pattern(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (PRODUCT_IMAGE_SIZE, PRODUCT_IMAGE_SIZE, 3), np.uint8)


def harness(gate: ScriptedGate | None, *, triton: StubInference | None = None) -> Harness:
    h = Harness(triton=triton)
    h.ctx.gate = gate
    return h


def product_seeds(h: Harness) -> list[list[int]]:
    return [call[1]["seeds"] for call in h.triton.calls if call[0] == "product_cgan"]


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"category": "dress", **labels}) or 0.0


def test_a_remake_is_judged_last_beside_the_other_kept_images_and_keeps_its_gate_report() -> None:
    gate = RecordingGate()
    h = harness(gate)
    job_id = h.awaiting()
    regenerate(job_id, 1, rejected_for_remake(h, job_id), h.ctx)

    # the others made again from their seeds in the remake's own request, the remake last
    assert product_seeds(h)[-1] == [SEED, SEED + 2, REMADE]
    judged = gate.batches[-1]
    assert [int(image[0, 0, 0]) for image in judged] == [grey(SEED), grey(SEED + 2), grey(REMADE)]
    assert h.triton.judged == [3, 3]  # the job's batch, then the remake's
    image = h.store.records[job_id].results[1]
    assert image.review == ImageReview(regenerations=1)  # pending again
    assert image.gate is not None and image.gate.passed and image.gate.tries == 1
    assert image.gate.seed == REMADE
    assert [check.name for check in image.gate.checks] == ["category", "colour", "duplicate", "blank"]
    metadata = h.bucket.objects[image.key][2]
    assert metadata["gate"] == "passed" and metadata["gate_tries"] == 1 and metadata["seed"] == REMADE
    assert metadata["gate_scores"] == "category=1,colour=1,duplicate=1,blank=1"


def test_a_remake_the_gate_fails_is_made_again_from_a_derived_seed_and_kept_when_it_passes() -> None:
    h = harness(RecordingGate({grey(REMADE): ["colour"]}))
    job_id = h.awaiting()
    passed_before = counted("atelier_gate_images_total", outcome="passed")
    regenerations_before = counted("atelier_gate_regenerations_total")
    regenerate(job_id, 1, rejected_for_remake(h, job_id), h.ctx)

    again = retry_seed(REMADE, 2)
    assert product_seeds(h)[1:] == [[SEED, SEED + 2, REMADE], [again]]
    image = h.store.records[job_id].results[1]
    assert image.gate is not None and image.gate.passed
    assert (image.gate.tries, image.gate.seed) == (2, again)
    metadata = h.bucket.objects[image.key][2]
    assert (metadata["seed"], metadata["gate"], metadata["gate_tries"]) == (again, "passed", 2)
    assert metadata["regeneration"] == 1
    # the remake alone is counted: one image passed, one generation more
    assert counted("atelier_gate_images_total", outcome="passed") == passed_before + 1
    assert counted("atelier_gate_regenerations_total") == regenerations_before + 1


def test_a_remake_failing_every_try_is_kept_pending_with_its_failed_report() -> None:
    failing = {grey(REMADE): ["category"], grey(retry_seed(REMADE, 2)): ["category", "blank"]}
    h = harness(RecordingGate(failing, max_tries=2))
    job_id = h.awaiting()
    regenerate(job_id, 1, rejected_for_remake(h, job_id), h.ctx)

    record = h.store.records[job_id]
    image = record.results[1]
    assert record.state is JobState.AWAITING_REVIEW and image.review == ImageReview(regenerations=1)
    assert image.gate is not None and not image.gate.passed
    assert (image.gate.tries, image.gate.seed) == (2, retry_seed(REMADE, 2))
    assert h.bucket.objects[image.key][2]["gate"] == "failed:category+blank"
    assert len(product_seeds(h)) == 3  # the job, then the remake's two generations


def test_a_remake_that_duplicates_a_kept_image_fails_the_duplicate_check_not_the_kept_image() -> None:
    h = harness(DuplicatesOnly(), triton=PatternInference({REMADE: SEED}))
    job_id = h.awaiting()
    kept = dict(h.bucket.objects)
    regenerate(job_id, 1, rejected_for_remake(h, job_id), h.ctx)

    record = h.store.records[job_id]
    image = record.results[1]
    assert image.gate is not None and image.gate.passed and image.gate.tries == 2
    assert image.gate.seed == retry_seed(REMADE, 2)
    assert image.gate.checks[0].score >= GateSettings(_env_file=None).min_duplicate_hamming  # type: ignore[call-arg]
    # variant 0, the earlier image of the pair, is untouched: its object, report and review
    assert h.bucket.objects[record.results[0].key] == kept[record.results[0].key]
    assert record.results[0].gate is not None and record.results[0].gate.tries == 1


def test_a_rejected_image_is_no_longer_one_a_remake_must_differ_from() -> None:
    h = harness(DuplicatesOnly(), triton=PatternInference({REMADE: SEED}))
    job_id = h.awaiting()
    assert h.decide(job_id, 0, ImageDecision.REJECTED, "blank").applied
    regenerate(job_id, 1, rejected_for_remake(h, job_id), h.ctx)

    assert product_seeds(h)[-1] == [SEED + 2, REMADE]  # variant 2 only beside it
    image = h.store.records[job_id].results[1]
    assert image.gate is not None and image.gate.passed and image.gate.tries == 1


def test_an_image_without_a_recorded_seed_is_read_back_from_the_bucket_at_the_models_size() -> None:
    gate = RecordingGate()
    h = harness(None)
    job_id = h.awaiting()  # made with the gate off: no report, no seed on record
    h.ctx.gate = gate
    regenerate(job_id, 1, rejected_for_remake(h, job_id), h.ctx)

    assert product_seeds(h)[-1] == [REMADE]
    judged = gate.batches[-1]
    assert judged.shape == (3, PRODUCT_IMAGE_SIZE, PRODUCT_IMAGE_SIZE, 3)
    # the stored 64 px PNGs of variants 0 and 2, shrunk back: the stub's flat greys, exactly
    assert [int(image.min()) for image in judged] == [grey(SEED), grey(SEED + 2), grey(REMADE)]
    assert [int(image.max()) for image in judged] == [grey(SEED), grey(SEED + 2), grey(REMADE)]
    image = h.store.records[job_id].results[1]
    assert image.gate is not None and image.gate.passed


def test_with_the_gate_off_a_remake_is_made_alone_and_not_judged() -> None:
    h = harness(None)
    job_id = h.awaiting()
    regenerate(job_id, 1, rejected_for_remake(h, job_id), h.ctx)

    assert product_seeds(h)[-1] == [REMADE] and h.triton.judged == []
    image = h.store.records[job_id].results[1]
    assert image.gate is None and "gate" not in h.bucket.objects[image.key][2]


def test_the_same_decisions_make_the_same_gated_remake() -> None:
    outcomes: list[Any] = []
    for _ in range(2):
        h = harness(RecordingGate({grey(REMADE): ["duplicate"]}))
        job_id = h.awaiting()
        regenerate(job_id, 1, rejected_for_remake(h, job_id), h.ctx)
        image = h.store.records[job_id].results[1]
        data, _, metadata = h.bucket.objects[image.key]
        outcomes.append((image.gate, data, {k: v for k, v in metadata.items() if k != "job_id"}))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0].tries == 2
