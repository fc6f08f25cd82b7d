"""The quality gate's step of a listing job: judge every variant, regenerate the failing ones.

The generated batch goes to ``quality_judge`` in a second Triton request (one request per job,
measured against a one-request BLS model in docs/benchmarks/gate.md), then through the checks of
``quality/`` (category, colour, near-duplicates, blank or degenerate). A variant that fails is
generated again with a seed derived from its own and the try (:func:`retry_seed`), by the model
version that made the first batch, and the whole set is judged again (a duplicate depends on the
others), up to ``ATELIER_GATE_MAX_TRIES`` generations. The same request therefore always ends
with the same images. A variant still failing after its last try is kept with its report: the
requester's review policy decides what happens to it (``core.jobs.review``).

A variant that people had made again (``worker.regeneration``) goes through the same loop
(:func:`gate_remake`), judged last beside the job's other kept images.

What is judged (:class:`Asked`): the images are regenerated with the indexes of the job's model
version, while the category check reads the judge's probability at the *judge's* index of the
category's slug (``quality_judge``'s manifest). A category the judge was not trained on (a catalog
version's own) is recorded as not judged (``quality.verdict.Check.not_judged``) rather than failing
every job of that version; the colour check compares with the version's own colour (its RGB).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import TypeAdapter

from core.contracts.conditions import ProductConditions, vocabulary
from core.contracts.jobs import GateReport, JobKind
from core.contracts.v1 import ListingImageRequest
from quality.gate import judge_job
from quality.settings import GateSettings
from quality.verdict import Check, Verdict
from serving_contract.manifest import ModelManifest
from worker import metrics
from worker.boundaries import Inference, QualityGate
from worker.inference import Generated

#: seeds stay below 2**62, like job seeds
_SEED_BITS = 62
#: a job's gate reports, validated together
_REPORTS = TypeAdapter(list[GateReport])


@dataclass(frozen=True)
class JudgeGate:
    """The real gate: ``quality.gate.judge_job`` with thresholds from ``ATELIER_GATE_*``."""

    settings: GateSettings

    @property
    def max_tries(self) -> int:
        return self.settings.max_tries

    def judge(
        self,
        images: np.ndarray,
        probabilities: np.ndarray,
        *,
        category: int | None,
        colour: int | tuple[int, int, int],
        pattern: str | None = None,
    ) -> list[Verdict]:
        return judge_job(
            images, probabilities, category=category, colour=colour, settings=self.settings, pattern=pattern
        )


@dataclass(frozen=True)
class Asked:
    """What a listing job asked its product model version for, and what the gate compares with."""

    #: the job's conditions as indexes of its product model version
    made: ProductConditions
    #: the judge's index of the category, ``None``: the judge does not know it (not judged)
    judge_category: int | None
    #: the version's colour, as RGB
    colour: tuple[int, int, int]

    @property
    def patterns(self) -> dict[str, list[int]]:
        """``generate_products``' ``patterns`` keyword for one image, when the version has any."""
        return {} if self.made.pattern is None else {"patterns": [self.made.pattern]}


def asked_for(made: ProductConditions, product: ModelManifest, judge: ModelManifest) -> Asked:
    """:class:`Asked` of a job whose conditions ``made`` are in ``product``'s version, judged by
    ``judge``'s version (the category by slug, never by the product version's index)."""
    slug = product.conditions.categories[made.category].slug
    rgb = product.conditions.colours[made.colour].rgb
    return Asked(made, vocabulary(judge).categories.get(slug), (rgb[0], rgb[1], rgb[2]))


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
    asked: Asked,
) -> Gated:
    """Judge ``generated`` (made from ``seeds`` as ``asked``) and regenerate failing variants
    (see the module)."""
    images = np.array(generated.images, copy=True)
    outcomes = _judge_until_passed(
        inference, gate, asked, images, range(len(seeds)), seeds, generated.version
    )
    return _gated(req, Generated(images, generated.model, generated.version), outcomes)


def gate_remake(
    inference: Inference,
    gate: QualityGate,
    req: ListingImageRequest,
    others: Sequence[np.ndarray],
    remade: Generated,
    seed: int,
    asked: Asked,
) -> Gated:
    """Judge a variant that people had made again (``remade``, one image from ``seed``) after the
    job's other kept images ``others`` (uint8 ``[32, 32, 3]`` each, as the model made them), and
    regenerate it the same way while it fails. It comes last, so a near-duplicate pair fails the
    newcomer, never an image already kept. Only the remade variant is reported and counted: the
    others keep their own reports."""
    images = np.stack([*others, *remade.images])
    outcomes = _judge_until_passed(inference, gate, asked, images, [len(others)], [seed], remade.version)
    return _gated(req, Generated(images[len(others) :], remade.model, remade.version), outcomes)


@dataclass(frozen=True)
class _Outcome:
    """The gate's last verdict on one judged variant, the seed that made it and its generations."""

    verdict: Verdict
    seed: int
    tries: int


def _judge_until_passed(
    inference: Inference,
    gate: QualityGate,
    asked: Asked,
    images: np.ndarray,
    candidates: Sequence[int],
    seeds: Sequence[int],
    version: str,
) -> list[_Outcome]:
    """Judge the whole of ``images``; while one of ``candidates`` (indices into ``images``, first
    made from ``seeds``) fails, generate it again from :func:`retry_seed` in place, and judge the
    whole set again (a duplicate depends on the others), up to ``gate.max_tries`` generations.
    One outcome per candidate; the other images are context only."""
    made = asked.made
    kept_seeds, tries = list(seeds), [1] * len(seeds)
    verdicts = _judge(inference, gate, images, asked)
    for attempt in range(2, gate.max_tries + 1):
        failing = [j for j, i in enumerate(candidates) if not verdicts[i].passed]
        if not failing:
            break
        retry_seeds = [retry_seed(seeds[j], attempt) for j in failing]
        with metrics.stage(JobKind.LISTING, "inference"):
            n = len(failing)
            patterns = {} if made.pattern is None else {"patterns": [made.pattern] * n}
            again = inference.generate_products(
                [made.category] * n, [made.colour] * n, retry_seeds, version=version, **patterns
            )
        for k, j in enumerate(failing):
            images[candidates[j]], kept_seeds[j], tries[j] = again.images[k], retry_seeds[k], attempt
        verdicts = _judge(inference, gate, images, asked)
    return [
        _Outcome(verdicts[i], seed, tried)
        for i, seed, tried in zip(candidates, kept_seeds, tries, strict=True)
    ]


def _gated(req: ListingImageRequest, generated: Generated, outcomes: Sequence[_Outcome]) -> Gated:
    """The kept images with their seeds and reports (validated in one call for the job: a model
    built per check cost twice the CPU); the verdicts counted in the metrics."""
    reports = _REPORTS.validate_python(
        [
            {
                "passed": o.verdict.passed,
                "checks": [_check(c) for c in o.verdict.checks],
                "tries": o.tries,
                "seed": o.seed,
            }
            for o in outcomes
        ]
    )
    metrics.gate_verdicts(req.attributes.category, [o.verdict for o in outcomes], [o.tries for o in outcomes])
    return Gated(generated, [o.seed for o in outcomes], reports)


def _judge(inference: Inference, gate: QualityGate, images: np.ndarray, asked: Asked) -> list[Verdict]:
    with metrics.stage(JobKind.LISTING, "gate"):
        probabilities = inference.judge_products(images)
        return gate.judge(
            images,
            probabilities,
            category=asked.judge_category,
            colour=asked.colour,
            pattern=asked.made.pattern_name,
        )


def _check(check: Check) -> dict[str, Any]:
    """A ``GateCheck``'s fields, from the gate's check."""
    return {
        "name": check.name,
        "score": check.score,
        "threshold": check.threshold,
        "passed": check.passed,
        "judged": check.judged,
    }
