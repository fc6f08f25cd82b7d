"""What the gate decided on clean and planted jobs, and what it cost."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.gate.jobs import Job
from bench.gate.plants import DEFECTS, INTENDED
from quality.gate import judge_job
from quality.settings import GateSettings
from quality.verdict import Rule, Verdict
from serving_contract.taxonomy import CATEGORIES


@dataclass(frozen=True)
class Gated:
    """Jobs with one verdict per image, and the CPU time the checks took."""

    jobs: list[Job]
    verdicts: list[list[Verdict]]
    cpu_s: float

    @property
    def images(self) -> int:
        return sum(len(v) for v in self.verdicts)

    def clean_verdicts(self) -> list[tuple[Job, Verdict]]:
        return [(job, v) for job, verdicts in zip(self.jobs, self.verdicts, strict=True) for v in verdicts]

    def planted_verdicts(self) -> list[tuple[Job, Verdict]]:
        """The verdict of each planted image (the other variants of its job are left out)."""
        return [(job, verdicts[job.position]) for job, verdicts in zip(self.jobs, self.verdicts, strict=True)]


def gate(jobs: list[Job], settings: GateSettings) -> Gated:
    """Run the checks on every job, timing the CPU they use."""
    started = time.process_time()
    verdicts = [
        judge_job(job.images, job.probabilities, category=job.category, colour=job.colour, settings=settings)
        for job in jobs
    ]
    return Gated(jobs, verdicts, time.process_time() - started)


def scores(pairs: list[tuple[Job, Verdict]]) -> tuple[dict[str, np.ndarray], dict[str, Rule]]:
    """Every check's scores over the images, and each check's rule."""
    names = [c.name for c in pairs[0][1].checks]
    values = {name: np.asarray([v.check(name).score for _, v in pairs]) for name in names}
    rules = {c.name: c.rule for c in pairs[0][1].checks}
    return values, rules


def planted_scores(planted: Gated, defect_of: dict[str, str]) -> dict[str, np.ndarray]:
    """Each named check's scores on the planted images of its defect (``defect_of[check]``)."""
    pairs = planted.planted_verdicts()
    return {
        name: np.asarray([v.check(name).score for job, v in pairs if job.defect == defect])
        for name, defect in defect_of.items()
    }


def false_flags(clean: Gated) -> dict[str, Any]:
    """Share of clean images flagged, overall, by check and by requested category."""
    pairs = clean.clean_verdicts()
    flagged = [not v.passed for _, v in pairs]
    by_check = Counter(name for _, v in pairs for name in v.failed)
    by_category = {
        c.slug: round(float(np.mean([not v.passed for job, v in pairs if job.category == c.index])), 4)
        for c in CATEGORIES
    }
    return {
        "images": len(pairs),
        "flagged": int(sum(flagged)),
        "rate": round(float(np.mean(flagged)), 4),
        "by_check": {name: round(by_check[name] / len(pairs), 4) for name in scores(pairs)[1]},
        "by_category": by_category,
    }


def recall(planted: Gated) -> dict[str, Any]:
    """Per defect: planted images, how many any check caught, and how many the intended one did."""
    pairs = planted.planted_verdicts()
    result: dict[str, Any] = {}
    for defect in DEFECTS:
        mine = [v for job, v in pairs if job.defect == defect]
        caught = sum(not v.passed for v in mine)
        intended = sum(any(name in INTENDED[defect] for name in v.failed) for v in mine)
        result[defect] = {
            "planted": len(mine),
            "caught": caught,
            "recall": round(caught / len(mine), 4),
            "caught_by_intended_check": round(intended / len(mine), 4),
        }
    caught = sum(r["caught"] for r in result.values())
    total = sum(r["planted"] for r in result.values())
    result["all"] = {"planted": total, "caught": caught, "recall": round(caught / total, 4)}
    return result
