"""What a scenario measures once its jobs have run: lost, duplicated, failed, callbacks seen.

- **lost**: a job that never reached a terminal state before the deadline.
- **duplicated**: a succeeded job with anything but exactly one set of result objects in S3,
  or a job whose requester received an event under more than one ``webhook-id`` (receivers
  de-duplicate by ``webhook-id``, so the same id posted twice is a retry, not a duplicate).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from core.contracts.jobs import JobRecord, JobState
from embedded.receiver import Received


@dataclass
class ScenarioResult:
    """One result row: the figures the report prints, and the named checks behind them."""

    scenario: str
    size: str
    jobs: int
    faults_injected: int
    succeeded: int = 0
    failed: int = 0
    lost: int = 0
    duplicated: int = 0
    time_to_recover_s: float | None = None  #: worst time from a fault's end to work flowing again
    wall_s: float = 0.0
    faults: dict[str, int] = field(default_factory=dict)  #: fault kind -> how many
    checks: dict[str, bool] = field(default_factory=dict)  #: what was proven, pass or fail
    figures: dict[str, Any] = field(default_factory=dict)  #: more measurements, for the report

    @property
    def passed(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and all(self.checks.values())

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def by_job_and_event(received: list[Received], job_ids: set[str]) -> dict[tuple[str, str], list[Received]]:
    """The verified POSTs of ``job_ids``, grouped by (job id, event type)."""
    grouped: dict[tuple[str, str], list[Received]] = defaultdict(list)
    for item in received:
        if item.event is not None and str(item.event.data.get("job_id")) in job_ids:
            grouped[(str(item.event.data["job_id"]), item.event.type.value)].append(item)
    return grouped


def count_outcomes(
    result: ScenarioResult,
    records: dict[str, JobRecord],
    object_sets: dict[str, int],
    received: list[Received],
) -> dict[tuple[str, str], list[Received]]:
    """Fill ``succeeded``, ``failed``, ``lost`` and ``duplicated``; returns the grouped POSTs."""
    grouped = by_job_and_event(received, set(records))
    duplicated: set[str] = {job_id for job_id, sets in object_sets.items() if sets > 1}
    for (job_id, _event), items in grouped.items():
        if len({item.headers.get("webhook-id") for item in items}) > 1:
            duplicated.add(job_id)
    result.succeeded = sum(r.state is JobState.SUCCEEDED for r in records.values())
    result.failed = sum(r.state is JobState.FAILED for r in records.values())
    result.lost = sum(not r.state.terminal for r in records.values())
    result.duplicated = len(duplicated)
    result.figures["callback POSTs"] = sum(len(items) for items in grouped.values())
    result.figures["events received (after de-dup by webhook-id)"] = len(grouped)
    return grouped
