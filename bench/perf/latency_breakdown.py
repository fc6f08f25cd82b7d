"""Where an interactive job's time goes in one phase of the backlog benchmark.

Two Prometheus endpoints are read before and after a phase and the counters subtracted:

- Triton's ``/metrics``: per model, the mean time a request waited in the model's queue
  (``nv_inference_queue_duration_us``), ran (``nv_inference_compute_infer_duration_us``) and the
  mean batch it ran in (requests over executions). A model that serves both queues (the
  try-on's garment comes from ``product_cgan``) mixes both kinds of request in its means.
- The try-on worker's ``/metrics``: the mean seconds of each job stage
  (``atelier_job_stage_seconds``: inference, encode, upload).

Each figure is a mean over the phase (counters hold sums, not samples); the percentiles come
from the job records. With both, a slow p95 can be read as queueing in Triton, slower model
compute (CPU starvation) or time in the worker itself.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

#: Triton counters read per model (all cumulative)
TRITON_COUNTERS = (
    "nv_inference_request_success",
    "nv_inference_exec_count",
    "nv_inference_queue_duration_us",
    "nv_inference_compute_infer_duration_us",
)
#: the worker's stage histogram
STAGE_METRIC = "atelier_job_stage_seconds"

#: ``(metric, labels as sorted tuples)`` -> value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, keyed by name and labels.

    A counter's samples are keyed by the name as exposed: the parser's ``_total`` suffix, which
    Triton's counters lack, is taken off again."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name
            if family.type == "counter" and name == f"{family.name}_total":
                name = family.name
            samples[(name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return samples


def scrape(url: str, *, timeout_s: float = 5.0) -> Samples:
    """Parse the exposition at ``url``; an endpoint that does not answer gives no samples."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return parse(response.read().decode())
    except OSError:
        return {}


def delta(before: Samples, after: Samples) -> Samples:
    """``after - before`` for every sample in ``after`` (a sample new in ``after`` counts whole)."""
    return {key: value - before.get(key, 0.0) for key, value in after.items()}


def _by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for (metric, labels), value in samples.items():
        if metric == name:
            key = dict(labels).get(label, "")
            found[key] = found.get(key, 0.0) + value
    return found


def triton_models(changes: Samples) -> dict[str, dict[str, float]]:
    """Per model with requests in ``changes``: requests, mean queue and compute ms, mean batch."""
    requests = _by_label(changes, "nv_inference_request_success", "model")
    executions = _by_label(changes, "nv_inference_exec_count", "model")
    queue = _by_label(changes, "nv_inference_queue_duration_us", "model")
    compute = _by_label(changes, "nv_inference_compute_infer_duration_us", "model")
    summary: dict[str, dict[str, float]] = {}
    for model, count in sorted(requests.items()):
        if count <= 0:
            continue
        summary[model] = {
            "requests": int(count),
            "queue_ms": round(queue.get(model, 0.0) / count / 1000, 1),
            "compute_ms": round(compute.get(model, 0.0) / count / 1000, 1),
            "requests_per_execution": round(count / max(executions.get(model, 0.0), 1.0), 2),
        }
    return summary


def worker_stages(changes: Samples, *, kind: str) -> dict[str, float]:
    """Mean milliseconds of each stage ``kind`` jobs spent in (observations in ``changes``)."""
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for (metric, labels), value in changes.items():
        tags = dict(labels)
        if tags.get("kind") != kind:
            continue
        if metric == f"{STAGE_METRIC}_sum":
            sums[tags["stage"]] = sums.get(tags["stage"], 0.0) + value
        elif metric == f"{STAGE_METRIC}_count":
            counts[tags["stage"]] = counts.get(tags["stage"], 0.0) + value
    return {
        stage: round(1000 * sums.get(stage, 0.0) / count, 1)
        for stage, count in sorted(counts.items())
        if count > 0
    }


def breakdown(
    triton: tuple[Samples, Samples], worker: tuple[Samples, Samples], *, kind: str
) -> Mapping[str, object]:
    """The phase's Triton per-model means and the ``kind`` worker's stage means."""
    return {
        "triton": triton_models(delta(*triton)),
        "worker_stage_ms": worker_stages(delta(*worker), kind=kind),
    }
