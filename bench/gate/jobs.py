"""Listing jobs generated through the real Triton server, as a worker makes them: one request to
``product_cgan`` with the job's variants (seeds ``seed + i``), one to ``quality_judge``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import tritonclient.grpc as grpcclient

from bench.gate.designs import generate, judge
from serving_contract.palette import NUM_COLOURS
from serving_contract.taxonomy import NUM_CATEGORIES

#: images per job: a listing request's default ``variants``
VARIANTS = 4


@dataclass(frozen=True)
class Job:
    """One listing job's images and the judge's probabilities for them; ``defect`` names what was
    planted at variant ``position`` (``None``: the job as generated)."""

    category: int
    colour: int
    seed: int
    images: np.ndarray
    probabilities: np.ndarray
    defect: str | None = None
    position: int = -1

    @property
    def seeds(self) -> np.ndarray:
        return self.seed + np.arange(len(self.images))


def conditions() -> list[tuple[int, int]]:
    """Every (category, colour) the product model takes."""
    return [(c, k) for c in range(NUM_CATEGORIES) for k in range(NUM_COLOURS)]


def generate_jobs(
    client: grpcclient.InferenceServerClient,
    *,
    jobs_per_condition: int,
    first_seed: int,
    advance: Callable[[int], object] = lambda n: None,
) -> list[Job]:
    """``jobs_per_condition`` jobs of every condition, seeds from ``first_seed`` (disjoint per job);
    ``advance(images)`` after each job (a progress bar)."""
    jobs = []
    for index, (category, colour) in enumerate(conditions() * jobs_per_condition):
        seed = first_seed + 100 * index
        seeds = seed + np.arange(VARIANTS)
        images = generate(client, np.full(VARIANTS, category), np.full(VARIANTS, colour), seeds)
        probabilities, _ = judge(client, images)
        jobs.append(Job(category, colour, seed, images, probabilities))
        advance(VARIANTS)
    return jobs


def rejudged(client: grpcclient.InferenceServerClient, job: Job) -> Job:
    """``job`` with the judge's probabilities for its (planted) images."""
    probabilities, _ = judge(client, job.images)
    return replace(job, probabilities=probabilities)
