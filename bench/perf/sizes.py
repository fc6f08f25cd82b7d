"""How big each benchmark runs: ``tiny`` (the CI smoke test), ``quick``, ``default``, ``full``.

Every figure is a ratio or a percentile measured within one run, so a smaller size changes the
noise, not what is compared. ``default`` uses the issue's 2,000-job backlog.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Size:
    """One size of the whole run.

    - ``ceiling_batches``, ``ceiling_concurrency``, ``ceiling_window_s``: the Triton sweep (each
      point measured for ``ceiling_window_s`` after a warm-up call per thread)
    - ``result_images``: images encoded and stored by the raw result path
    - ``listing_jobs``: listing jobs per pipeline / in-process / scaling point (``default``: 200,
      a window of about 5 s at 2 processes; 100 gave 2.7 s, short enough that the start and the
      drain of the queue moved pipeline / in-process by a few hundredths between runs)
    - ``processes``: the worker-process counts of the pipeline and in-process comparison
    - ``scaling_processes``: the worker-process counts of the scaling sweep
    - ``tryon_jobs``, ``tryon_rate_hz``, ``backlog_jobs``: the interactive-latency benchmark
      (a phase's p95 is set by its slowest twentieth: 10 try-ons of 200, where 40 left it to 2;
      200 at 2/s end while the 2,000-job backlog still queues)
    - ``stage_jobs``: jobs timed stage by stage for the per-image CPU cost
    - ``rounds``: rounds of the pipeline and in-process points (and ``--before``'s), measured in
      turn at each process count so that each ratio compares points a minute apart, not minutes
      (``bench.perf.rounds``; default 3)
    """

    name: str
    ceiling_batches: tuple[int, ...]
    ceiling_concurrency: tuple[int, ...]
    ceiling_window_s: float
    result_images: int
    listing_jobs: int
    processes: tuple[int, ...]
    scaling_processes: tuple[int, ...]
    tryon_jobs: int
    tryon_rate_hz: float
    backlog_jobs: int
    stage_jobs: int
    rounds: int = 3


SIZES: dict[str, Size] = {
    "tiny": Size("tiny", (1, 8), (1, 2), 0.3, 16, 4, (1,), (1,), 3, 4.0, 6, 3, rounds=1),
    "quick": Size(
        "quick", (1, 8, 32, 64), (1, 2, 4), 0.8, 200, 40, (1, 2), (1, 2, 4), 20, 2.0, 300, 20, rounds=2
    ),
    "default": Size(
        "default", (1, 8, 32, 64), (1, 2, 4), 2.0, 400, 200, (1, 2), (1, 2, 4), 200, 2.0, 2000, 40
    ),
    "full": Size(
        "full", (1, 4, 8, 16, 32, 64), (1, 2, 4, 8), 3.0, 1000, 250, (1, 2, 4), (1, 2, 4), 200, 2.0, 2000, 80
    ),
}
