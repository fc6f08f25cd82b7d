"""The quality gate's step of a listing job: judge every variant, regenerate the failing ones.

The generated batch goes to ``quality_judge`` in a second Triton request (one request per job,
measured against a one-request BLS model in docs/benchmarks/gate.md), then through the checks of
``quality/`` (category, colour, near-duplicates, blank or degenerate). A variant that fails is
generated again with a seed derived from its own and the try (:func:`retry_seed`), by the model
version that made the first batch, and the whole set is judged again (a duplicate depends on the
others), up to ``ATELIER_GATE_MAX_TRIES`` generations. The same request therefore always ends
with the same images. A variant still failing after its last try is kept with its report: the
requester's review policy decides what happens to it (``core.jobs.review``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.contracts.jobs import GateCheck, GateReport, JobKind
from core.contracts.v1 import ListingImageRequest
from quality.gate import judge_job
from quality.settings import GateSettings
from quality.verdict import Check, Verdict
from worker import metrics
from worker.boundaries import Inference, QualityGate
from worker.inference import Generated

#: seeds stay below 2**62, like job seeds
_SEED_BITS = 62


@dataclass(frozen=True)
class JudgeGate:
    """The real gate: ``quality.gate.judge_job`` with thresholds from ``ATELIER_GATE_*``."""

    settings: GateSettings

    @property
    def max_tries(self) -> int:
        return self.settings.max_tries

    def judge(
        self, images: np.ndarray, probabilities: np.ndarray, *, category: int, colour: int
    ) -> list[Verdict]:
        return judge_job(images, probabilities, category=category, colour=colour, settings=self.settings)


@dataclass(frozen=True)
class Gated:
    """The kept images of a job (``generated`` with failing variants replaced), the seed each
    was made with, and the gate's report on each."""

    generated: Generated
    seeds: list[int]
    reports: list[GateReport]


def retry_seed(seed: int, attempt: int) -> int:
    """The seed of a variant's ``attempt``-th generation (2, 3, ...): derived, so deterministic."""
    digest = hashlib.sha256(f"{seed}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - _SEED_BITS)


def gate_listing(
    inference: Inference,
    gate: QualityGate,
    req: ListingImageRequest,
    generated: Generated,
    seeds: Sequence[int],
) -> Gated:
    """Judge ``generated`` (made from ``seeds``) and regenerate failing variants (see the module)."""
    category, colour = req.attributes.category_index, req.attributes.colour_index
    images = np.array(generated.images, copy=True)
    kept_seeds, tries = list(seeds), [1] * len(seeds)
    verdicts = _judge(inference, gate, images, category, colour)
    for attempt in range(2, gate.max_tries + 1):
        failing = [i for i, verdict in enumerate(verdicts) if not verdict.passed]
        if not failing:
            break
        retry_seeds = [retry_seed(seeds[i], attempt) for i in failing]
        with metrics.stage(JobKind.LISTING, "inference"):
            again = inference.generate_products(
                [category] * len(failing), [colour] * len(failing), retry_seeds, version=generated.version
            )
        for j, i in enumerate(failing):
            images[i], kept_seeds[i], tries[i] = again.images[j], retry_seeds[j], attempt
        verdicts = _judge(inference, gate, images, category, colour)
    reports = [
        GateReport(passed=v.passed, checks=[_check(c) for c in v.checks], tries=t, seed=s)
        for v, t, s in zip(verdicts, tries, kept_seeds, strict=True)
    ]
    metrics.gate_verdicts(req.attributes.category, verdicts, tries)
    return Gated(Generated(images, generated.model, generated.version), kept_seeds, reports)


def _judge(
    inference: Inference, gate: QualityGate, images: np.ndarray, category: int, colour: int
) -> list[Verdict]:
    with metrics.stage(JobKind.LISTING, "gate"):
        probabilities = inference.judge_products(images)
        return gate.judge(images, probabilities, category=category, colour=colour)


def _check(check: Check) -> GateCheck:
    return GateCheck(name=check.name, score=check.score, threshold=check.threshold, passed=check.passed)
