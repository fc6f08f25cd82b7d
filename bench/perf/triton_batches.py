"""The batch sizes Triton actually formed, and raw Triton's throughput at those sizes.

The shared-cores bound of the issue, ``1 / (1/T + 1/R)``, needs ``T``: raw Triton at the batch
sizes the pipeline sends. Those are not the request sizes (4 variants a job): Triton's dynamic
batcher merges concurrent requests. Triton's statistics API counts, per model, each executed
batch size (``batch_stats[].compute_infer.count``); the difference over a pipeline run is the
histogram of batches formed. :func:`raw_at_formed` measures raw Triton (``ceiling.measure``,
concurrency 1 and 2) at the powers of two around them, keys each point by the batch Triton
formed during it, and interpolates each formed size's time per image, log-linearly in the batch
size, weighting each size by its images. Every model the pipeline calls per image counts
(``product_cgan``, and the quality gate's ``quality_judge``): :func:`models_together`.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping
from typing import Any

#: the raw batch sizes measured (the formed sizes are interpolated between them)
GRID = (1, 2, 4, 8, 16, 32, 64)


def batch_histogram(grpc_url: str, model: str) -> dict[int, int]:
    """Batch size -> executions so far of ``model`` (all versions), from Triton's statistics."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url=grpc_url)
    try:
        stats = client.get_inference_statistics(model_name=model, as_json=True)
    finally:
        client.close()
    return histogram_of(stats)


def histogram_of(stats: Mapping[str, Any]) -> dict[int, int]:
    """The histogram in a statistics answer (``as_json``: 64-bit counts come as strings)."""
    found: dict[int, int] = {}
    for model in stats.get("model_stats", []):
        for entry in model.get("batch_stats", []):
            size = int(entry["batch_size"])
            count = int(entry.get("compute_infer", {}).get("count", 0))
            found[size] = found.get(size, 0) + count
    return found


def formed_between(before: Mapping[int, int], after: Mapping[int, int]) -> dict[int, int]:
    """Executions per batch size between two histograms (sizes with none left out)."""
    return {b: n - before.get(b, 0) for b, n in sorted(after.items()) if n - before.get(b, 0) > 0}


def summary(formed: Mapping[int, int]) -> dict[str, Any]:
    """Executions, images and the image-weighted mean batch of a histogram."""
    executions = sum(formed.values())
    images = sum(b * n for b, n in formed.items())
    return {
        "executions": executions,
        "images": images,
        "mean_batch": round(images / executions, 2) if executions else 0.0,
        "histogram": {str(b): n for b, n in sorted(formed.items())},
    }


def grid_needed(formed: Mapping[int, int]) -> list[int]:
    """The grid sizes that bracket every formed size."""
    needed: set[int] = set()
    for size in formed:
        i = bisect.bisect_left(GRID, size)
        if i < len(GRID) and GRID[i] == size:
            needed.add(size)
        else:
            needed.update(GRID[max(0, i - 1) : i + 1])
    return sorted(needed)


def seconds_per_image(size: float, measured: Mapping[float, float]) -> float:
    """Raw seconds per image at ``size``, from images/s ``measured`` at grid sizes: log-linear
    in the batch size between the two nearest, the nearest beyond the ends."""
    points = sorted(measured)
    if size <= points[0]:
        return 1 / measured[points[0]]
    if size >= points[-1]:
        return 1 / measured[points[-1]]
    i = bisect.bisect_left(points, size)
    lo, hi = points[i - 1], points[i]
    t = (math.log(size) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return (1 - t) / measured[lo] + t / measured[hi]


def throughput_at(formed: Mapping[int, int], measured: Mapping[float, float]) -> float:
    """Raw images/s when each formed size runs its share of the images at its raw speed."""
    images = sum(b * n for b, n in formed.items())
    seconds = sum(b * n * seconds_per_image(b, measured) for b, n in formed.items())
    return images / seconds if seconds else 0.0


def models_together(throughputs: Mapping[str, float], images: Mapping[str, int], per: str) -> float:
    """Raw images/s of ``per`` when every model the pipeline calls serves its share as well: each
    model's seconds per image, weighted by its images per image of ``per`` (the quality judge
    sees each generated image once, plus the regenerated ones), add up."""
    if not images.get(per):
        return 0.0
    seconds = sum(images[m] / images[per] / t for m, t in throughputs.items() if t and images.get(m))
    return 1 / seconds if seconds else 0.0


def shared_bound(triton: float, result_path: float) -> float:
    """Images/s if Triton and the result path shared the cores with no orchestration at all:
    their CPU seconds per image add up."""
    return 1 / (1 / triton + 1 / result_path)


def raw_at_formed(
    formed: Mapping[int, int],
    measure: Callable[[int, int], dict[str, Any]],
    histogram: Callable[[], Mapping[int, int]],
    *,
    concurrencies: tuple[int, ...] = (1, 2),
    rounds: int = 3,
) -> dict[str, Any]:
    """Measure raw Triton around the sizes in ``formed`` and interpolate its throughput there.

    ``measure(batch, concurrency)`` is ``ceiling.measure`` bound to a model and a window;
    ``histogram()`` reads the model's :func:`batch_histogram`. Each raw point is keyed by the
    mean batch Triton formed during it (two clients of batch 4 may form batches of 8), not by
    what the client sent, and the best throughput per formed size over ``rounds`` rounds is kept
    (on shared cores a round can be slowed by other work; the bound wants Triton at its best).
    """
    points = []
    for _ in range(rounds):
        for b, c in ((b, c) for b in grid_needed(formed) for c in concurrencies):
            before = histogram()
            point = measure(b, c)
            point["formed"] = summary(formed_between(before, histogram()))["mean_batch"] or float(b)
            points.append(point)
    best: dict[float, float] = {}
    for p in points:
        best[p["formed"]] = max(best.get(p["formed"], 0.0), p["images_per_s"])
    return {
        "points": points,
        "best_by_formed_batch": {str(b): v for b, v in sorted(best.items())},
        "images_per_s": round(throughput_at(formed, best), 1) if best else 0.0,
    }
