"""The pipeline and the in-process alternative (and an earlier commit's pipeline, ``--before``)
measured round by round, and the medians taken over the rounds.

This host's speed drifts by a fifth between runs minutes apart, and a run's benchmarks follow
each other over minutes, so a ratio of two figures measured far apart moves with the drift.
These benchmarks are measured together instead: in each round, at each process count, the
earlier commit's pipeline, the pipeline and the in-process alternative one after the other
(in reverse order every other round). A
ratio is taken within each round (both sides a minute apart) and its target is the median over
the rounds. Where one point per process count is shown (tables, plots, the shared-cores bound,
RSS), it is the point of the median round by images per second: ``points`` of each benchmark's
result; ``round_points`` keeps every round's. Results recorded before rounds existed have no
``round`` and count as one round.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

#: the pipeline with an earlier commit's worker (``python -m bench.perf --before REF``)
BEFORE = "pipeline_before"
#: the benchmarks measured in rounds, in the order they run at each process count of a round
ROUNDS_ORDER = (BEFORE, "pipeline", "inprocess")


@dataclass(frozen=True)
class Step:
    """One step of a run: a whole benchmark (``round`` is ``None``) or one point of a round."""

    benchmark: str
    round: int | None = None
    processes: int | None = None


def schedule(benchmarks: Sequence[str], *, rounds: int, processes: Sequence[int]) -> list[Step]:
    """The run's steps: each benchmark in its turn, except those of ``ROUNDS_ORDER``, which run
    together at the place of the first of them: round by round, at each process count, in
    ``ROUNDS_ORDER`` in even rounds and in reverse in odd ones (a drift within a round then
    favours neither side over the rounds)."""
    paired = [b for b in ROUNDS_ORDER if b in benchmarks]
    first = next((b for b in benchmarks if b in paired), None)
    steps: list[Step] = []
    for name in benchmarks:
        if name not in paired:
            steps.append(Step(name))
        elif name == first:
            steps += [
                Step(b, r, p)
                for r in range(rounds)
                for p in processes
                for b in (paired if r % 2 == 0 else paired[::-1])
            ]
    return steps


def summary(points: list[dict[str, Any]]) -> dict[str, Any]:
    """A benchmark's result from its points of every round: ``points`` (the median round's at each
    process count), ``best`` (the fastest of those), ``round_points`` and ``rounds``."""
    shown = median_points(points)
    return {
        "rounds": len({p.get("round", 0) for p in points}),
        "round_points": points,
        "points": shown,
        "best": max(shown, key=lambda p: p["images_per_s"]),
    }


def every_round(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The points of every round (``points`` in results recorded before rounds existed)."""
    found: list[dict[str, Any]] = result.get("round_points") or result.get("points", [])
    return found


def by_processes(points: list[dict[str, Any]]) -> dict[int, dict[int, dict[str, Any]]]:
    """Process count -> round -> point, in the order measured."""
    found: dict[int, dict[int, dict[str, Any]]] = {}
    for p in points:
        found.setdefault(p["processes"], {})[p.get("round", 0)] = p
    return found


def median_points(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """At each process count, the point of the round with the median images/s (of an even number
    of rounds, the slower middle one: a measured point, not an average of two)."""
    shown = []
    for rounds in by_processes(points).values():
        ordered = sorted(rounds.values(), key=lambda p: p["images_per_s"])
        shown.append(ordered[(len(ordered) - 1) // 2])
    return shown


def medians(points: list[dict[str, Any]], key: str) -> dict[str, float]:
    """Process count (a string, as in the JSON) -> the median of ``key`` over the rounds that have it."""
    found: dict[str, float] = {}
    for processes, rounds in by_processes(points).items():
        values = [p[key] for p in rounds.values() if p.get(key) is not None]
        if values:
            found[str(processes)] = round(statistics.median(values), 3)
    return found


def ratios_by_round(
    numerator: list[dict[str, Any]], denominator: list[dict[str, Any]], value: Callable[[dict[str, Any]], Any]
) -> dict[str, list[float]]:
    """Process count -> ``value`` of ``numerator`` over that of ``denominator`` in each round both
    measured (and ``value`` is given and non-zero), rounds in order."""
    found: dict[str, list[float]] = {}
    theirs = by_processes(denominator)
    for processes, rounds in by_processes(numerator).items():
        other = theirs.get(processes, {})
        pairs = [(value(p), value(other[r])) for r, p in sorted(rounds.items()) if r in other]
        shown = [round(a / b, 2) for a, b in pairs if a is not None and b]
        if shown:
            found[str(processes)] = shown
    return found


def median_ratios(by_round: dict[str, list[float]]) -> dict[str, float]:
    """Process count -> the median of its per-round ratios."""
    return {p: round(statistics.median(values), 2) for p, values in by_round.items()}
