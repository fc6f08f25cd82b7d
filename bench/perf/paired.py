"""``python -m bench.perf.paired --ref REF [--rounds N] [--processes P] [--env K=V]``: this
checkout's listing worker against REF's, in pairs of pipeline points, round after round.

A change that saves 5-10% of the worker's CPU is below what this shared host moves between two
runs of the same code (the same worker gave 4.7 to 6.0 ms of orchestration per image over the
six rounds of one run, ``bench/perf/paired.json``). A full ``python -m bench.perf --before REF``
takes 20 minutes and runs each side three times; this runs only the pipeline point
(``bench.perf.pipeline.run_jobs``), both sides in the same round, the side that goes first
alternating (a drift inside a round favours neither), for as many rounds as asked, and takes the
median of each round's after / before. REF's worker runs from its own tree with this checkout's
``bench/`` (``bench.perf.before.checkout``) against the same S3, RabbitMQ and Redis, and the
same Triton unless REF's model repository differs (then a Triton serving REF's own, as the full
benchmark does). ``--ref HEAD`` with ``--env`` tries a setting without a code change (the
variables go to this checkout's workers only).

Writes ``bench/perf/paired.json`` (``--output``): each round's orchestration and total CPU per
image, images/s and stage table for both sides, and the medians.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.faults.report import machine
from bench.perf.before import Before, checkout
from bench.perf.pipeline import run_before, run_jobs
from bench.perf.rig import Environment
from bench.perf.rounds import median_ratios, medians, ratios_by_round

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "bench" / "perf" / "paired.json"
#: the figures each point keeps (the rest of ``run_jobs``' answer is for the full benchmark)
KEPT = (
    "processes",
    "jobs",
    "succeeded",
    "callbacks_received",
    "images_per_s",
    "orchestration_ms_per_image",
    "cpu_total_ms_per_image",
    "cpu_by_stage",
)


def sides(round_: int) -> tuple[str, str]:
    """The order of the two sides in ``round_``: REF first in even rounds, this checkout in odd."""
    return ("before", "after") if round_ % 2 == 0 else ("after", "before")


def run_side(
    env: Environment,
    side: str,
    ref: Before | None,
    *,
    tag: str,
    jobs: int,
    processes: int,
    own_models: bool,
    worker_env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One pipeline point of ``side``: REF's worker (``before``, on its own Triton when
    ``own_models``) or this checkout's (``after``, with ``worker_env`` for its workers)."""
    if side == "before":
        if ref is None:
            raise ValueError("the 'before' side needs REF's checkout")
        return run_before(env, ref, tag=tag, jobs=jobs, processes=processes, own_models=own_models)
    return run_jobs(env, tag=tag, jobs=jobs, processes=processes, worker_env=worker_env)


def models_differ(commit: str) -> bool:
    """Whether ``commit``'s model repository differs from this checkout's (then REF's side gets a
    Triton serving its own, as ``bench.perf.pipeline.point`` does: the models' batching and cost
    are part of what REF was); the same models share the run's Triton."""
    same = subprocess.run(["git", "diff", "--quiet", commit, "--", "triton_models"], cwd=ROOT, check=False)
    return same.returncode != 0


def parse_env(pairs: Sequence[str]) -> dict[str, str]:
    """``K=V`` arguments as a mapping; ``ValueError`` naming the one without ``=``."""
    found: dict[str, str] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name:
            raise ValueError(f"--env {pair!r}: expected NAME=VALUE")
        found[name] = value
    return found


def summary(points: Mapping[str, Sequence[dict[str, Any]]]) -> dict[str, Any]:
    """Per process count: the after / before ratio of orchestration CPU, total CPU and images/s in
    each round (rounds in order) and their medians; the two sides' medians."""
    before, after = list(points["before"]), list(points["after"])
    found: dict[str, Any] = {}
    for key in ("orchestration_ms_per_image", "cpu_total_ms_per_image", "images_per_s"):
        by_round = ratios_by_round(after, before, _value(key))
        found[key] = {
            "ratios_by_round": by_round,
            "median_ratio": median_ratios(by_round),
            "before_median": medians(before, key),
            "after_median": medians(after, key),
        }
    return found


def _value(key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda point: point.get(key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf.paired", description=__doc__)
    parser.add_argument("--ref", default="HEAD", help="the commit whose worker is 'before' (default HEAD)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--jobs", type=int, default=200, help="listing jobs per point")
    parser.add_argument("--processes", type=int, nargs="+", default=[1], help="listing worker processes")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for this checkout's workers")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    env_after = parse_env(args.env)
    points: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    started = time.time()
    with (
        tempfile.TemporaryDirectory(prefix="atelier-paired-") as workdir,
        Environment(Path(workdir)) as env,
        checkout(args.ref, Path(workdir)) as ref,
    ):
        own_models = models_differ(ref.commit)
        for round_ in range(args.rounds):
            for processes in args.processes:
                for side in sides(round_):
                    found = run_side(
                        env,
                        side,
                        ref,
                        tag=f"{side}{processes}-r{round_}",
                        jobs=args.jobs,
                        processes=processes,
                        own_models=own_models,
                        worker_env=env_after,
                    )
                    points[side].append({**{k: found[k] for k in KEPT}, "round": round_})
                    print(
                        f"round {round_ + 1}/{args.rounds}, {processes} process(es), {side}: "
                        f"orchestration {found['orchestration_ms_per_image']} ms/image, "
                        f"{found['images_per_s']} images/s",
                        flush=True,
                    )
    found = summary(points)
    document = {
        "command": "python -m bench.perf.paired " + " ".join(argv or []),
        "ran_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_s": round(time.time() - started, 1),
        "machine": machine(),
        "before": {"ref": args.ref, "commit": ref.commit, "own_triton": own_models},
        "env": env_after,
        **found,
        "points": points,
    }
    args.output.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    print(json.dumps(found, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
