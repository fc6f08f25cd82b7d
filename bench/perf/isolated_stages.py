"""``python -m bench.perf.isolated_stages [--jobs N] [--rounds R]``: a listing job's worker CPU
per stage with nothing else in the worker process, beside the pipeline benchmark's.

The pipeline benchmark splits the listing worker's CPU by stage (``bench.perf.stage_cpu``) while
Celery, 8 jobs in flight and every server share the cores. This runs the same job code
(``worker.pipeline.run_listing``, its ``job.succeeded`` callback sent inline) on the same kind of
real servers (Triton, S3, Redis, the callback receiver), in this process, with the same timers:
in one thread, then in ``worker_concurrency`` threads, without Celery. ``rest`` is the job
threads' CPU outside the timed stages (the request's validation, the start's bookkeeping, logs,
metrics). Celery's own cost is measured apart, in a real listing worker (threads pool) fed
messages whose job has no record: each is checked by the message gate, becomes a Celery
request, is refused after two status reads (its start's, and the look at why) and a log line,
and is acknowledged.

What it tells: how much of the pipeline's CPU per stage is the work itself, what the client
libraries cost per call on this host, and how much the load around it adds. Results go to
``bench/perf/isolated_stages.json`` and ``docs/benchmarks/isolated-stages.png``.

``--before REF`` (e.g. ``db5119c``) also runs REF's pipeline in the same rounds, at each of
``--processes``, and sets against its orchestration CPU (issue 15's "before") two figures of this
checkout's: the pipeline's, and a **floor**: the job code's orchestration stages in one thread
(every stage but encoding), plus Celery's own cost per image, plus what the other processes
(broker, Redis, Triton's server, the receiver, the producer) spent per image in this checkout's
pipeline point of the same round. The floor is what the orchestration would be if the job's
own calls cost what they cost alone and nothing ran beside them: a target below it cannot be
reached by cutting overhead, only by making fewer calls per image.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import queue
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.faults.report import machine
from bench.perf import stage_cpu
from bench.perf.before import checkout
from bench.perf.cpu_accounting import KIND_STAGES, NOT_ORCHESTRATION
from bench.perf.paired import KEPT, models_differ, run_side, sides
from bench.perf.pipeline import ACCOUNTED_APP, worker_pools
from bench.perf.report import PLOTS
from bench.perf.rig import Environment, PipelineRig
from core.contracts.jobs import JobEventType, JobState
from core.contracts.v1 import ListingImageRequest
from core.topology import LISTING_TASK
from worker import notifications, pipeline
from worker.context import WorkerContext

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "bench" / "perf" / "isolated_stages.json"
PLOT = PLOTS / "isolated-stages.png"
#: images per listing job, as the pipeline benchmark's jobs ask (``PipelineRig.listing``)
VARIANTS = 4
#: the worker stages, in the pipeline's stage-table order (``rest``: the job threads' remainder)
STAGES = ["encode", "upload", "status", "gate", "inference", "delivery", "rest"]
#: the pipeline table's row for each stage (``bench.perf.cpu_accounting``)
PIPELINE_ROWS = {
    "encode": "encoding (worker)",
    "upload": "S3 put, client side (worker)",
    "status": "status writes (Redis client, workers)",
    "gate": "quality gate (judge call + checks)",
    "inference": "inference call, client side (gRPC)",
    "delivery": "callback delivery (signing, HTTP POST)",
    "rest": "orchestration rest (Celery, message gate, AMQP, task code)",
}
#: the pipeline's rows from processes other than the workers that orchestration counts
OTHER_PROCESS_ROWS = tuple(row for row in KIND_STAGES.values() if row not in NOT_ORCHESTRATION)
#: jobs run before each measured set (connections, the bucket, the models' first calls)
WARM_JOBS = 8
#: the worker's CPU counts as settled once it grows less than this over ``SETTLE_S``
SETTLED_CPU_S = 0.005
SETTLE_S = 0.5
#: how long the idle worker's own CPU rate is read before the messages
IDLE_S = 1.0


def stage_seconds() -> dict[str, float]:
    """Each timed stage's thread CPU seconds so far in this process (``stage_cpu``'s counter)."""
    out: dict[str, float] = {}
    for family in stage_cpu.STAGE_CPU.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                out[sample.labels["stage"]] = sample.value
    return out


def per_image(thread_cpu_s: float, stages_s: Mapping[str, float], images: int) -> dict[str, float]:
    """ms per image of each of :data:`STAGES`: the timed stages, and ``rest``, what the job
    threads spent outside them (kept when slightly negative, so the rows add up to the threads')."""
    timed = {name: stages_s.get(name, 0.0) for name in STAGES if name != "rest"}
    rest = thread_cpu_s - sum(stages_s.values())
    ms = {**timed, "rest": rest}
    return {name: round(1000 * ms[name] / max(images, 1), 3) for name in STAGES}


def run_threads(
    ctx: WorkerContext, work: Sequence[tuple[str, dict[str, Any]]], threads: int
) -> dict[str, Any]:
    """``work``'s listing jobs in ``threads`` threads of this process; their CPU by stage."""
    todo: queue.SimpleQueue[tuple[str, dict[str, Any]]] = queue.SimpleQueue()
    for item in work:
        todo.put(item)
    spent: list[float] = []

    def drain() -> None:
        started = time.thread_time()
        while True:
            try:
                job_id, request = todo.get_nowait()
            except queue.Empty:
                break
            pipeline.run_listing(job_id, request, ctx)
        spent.append(time.thread_time() - started)

    before = stage_seconds()
    wall = time.perf_counter()
    pool = [threading.Thread(target=drain, name=f"isolated-job-{k}") for k in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    wall_s = time.perf_counter() - wall
    after = stage_seconds()
    stages = {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) > 0}
    images = len(work) * VARIANTS
    table = per_image(sum(spent), stages, images)
    return {
        "threads": threads,
        "jobs": len(work),
        "ms_per_image": table,
        "total_ms_per_image": round(sum(table.values()), 3),
        "images_per_s": round(images / wall_s, 1),
    }


def job_code(env: Environment, jobs: int, thread_counts: Sequence[int], round_: int) -> list[dict[str, Any]]:
    """One round: ``jobs`` listing jobs per entry of ``thread_counts``, in this process."""
    with PipelineRig(env, f"isolated-r{round_}") as rig:
        handed_over: list[str] = []

        def queue_callback(job_id: str, event: JobEventType, /, **_: Any) -> None:
            handed_over.append(job_id)  # the receiver was slow: sent through the queue instead
            rig.producer.publisher.publish_callback(job_id, event.value)

        def notify(job_id: str, event: JobEventType) -> None:
            # looked up at each call: stage_cpu.install wraps the module's function
            notifications.notify_first_inline(job_id, event, ctx, queue=queue_callback)

        ctx = WorkerContext.create(rig.settings, notify=notify)
        points = []
        # a warm-up set first (its figures are dropped), then one thread, then each count
        for n, threads in enumerate([1, 1, *thread_counts]):
            warm = n == 0
            count = WARM_JOBS if warm else jobs
            requests = [rig.listing(10_000 * n + i) for i in range(count)]
            job_ids = rig.submit_all(requests)
            bodies = [ListingImageRequest.model_validate(r).model_dump(mode="json") for r in requests]
            found = run_threads(ctx, list(zip(job_ids, bodies, strict=True)), threads)
            if not warm:
                records = rig.wait_terminal(job_ids, timeout_s=30)
                ended = {
                    "succeeded": sum(r.state is JobState.SUCCEEDED for r in records.values()),
                    "callbacks_received": len(rig.callbacks_at(job_ids)),
                    "handed_over": len(handed_over),
                }
                points.append({**found, **ended, "round": round_})
        ctx.close()
    return points


def celery_message_cost(env: Environment, messages: int, round_: int) -> dict[str, Any]:
    """A real listing worker's CPU per message whose job has no record (see the module)."""
    with PipelineRig(env, f"celery-r{round_}") as rig:
        root = rig.stack.workdir / "stage-cpu"
        listing = worker_pools(1, ACCOUNTED_APP, "threads", {"OMP_NUM_THREADS": "1"}, root)[0]
        rig.stack.start_workers(listing)

        def cpu() -> float:
            return rig.stats("listing").cpu_s

        idle_before = cpu()
        time.sleep(IDLE_S)
        idle_rate = (cpu() - idle_before) / IDLE_S
        body = ListingImageRequest.model_validate(rig.listing(0)).model_dump(mode="json")
        publisher = rig.producer.publisher
        queue_name = f"{rig.settings.exchange}.listing"
        started_cpu, started = cpu(), time.perf_counter()
        for _ in range(messages):
            publisher.publish(LISTING_TASK, uuid.uuid4().hex, body)
        while rig.queue_depth(queue_name) > 0:
            time.sleep(0.05)
        while True:  # the last prefetched messages
            before = cpu()
            time.sleep(SETTLE_S)
            if cpu() - before < SETTLED_CPU_S + idle_rate * SETTLE_S:
                break
        window = time.perf_counter() - started
        spent = cpu() - started_cpu - idle_rate * window
    return {"round": round_, "messages": messages, "ms_per_message": round(1000 * spent / messages, 3)}


def summary(
    points: Sequence[Mapping[str, Any]],
    celery: Sequence[Mapping[str, Any]],
    piped: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Medians over rounds: per thread count, each stage's ms per image; Celery's ms per message
    and per image (one message per job of :data:`VARIANTS` images); the pipeline points' worker
    stages (``piped``, run in the same rounds)."""
    by_threads: dict[int, list[Mapping[str, Any]]] = {}
    for point in points:
        by_threads.setdefault(int(point["threads"]), []).append(point)
    medians = {
        str(threads): {
            "ms_per_image": {
                name: round(statistics.median(p["ms_per_image"][name] for p in found), 3) for name in STAGES
            },
            "total_ms_per_image": round(statistics.median(p["total_ms_per_image"] for p in found), 3),
            "images_per_s": round(statistics.median(p["images_per_s"] for p in found), 1),
            "rounds": len(found),
        }
        for threads, found in sorted(by_threads.items())
    }
    per_message = statistics.median(c["ms_per_message"] for c in celery) if celery else None
    single = [p for p in piped if p.get("processes", 1) == 1]
    stages = [pipeline_stages(p) for p in single]
    return {
        "by_threads": medians,
        "pipeline_1_process": {name: round(statistics.median(t[name] for t in stages), 3) for name in STAGES}
        if stages
        else {},
        "pipeline_images_per_s": round(statistics.median(p["images_per_s"] for p in single), 1)
        if single
        else None,
        "celery_ms_per_message": None if per_message is None else round(per_message, 3),
        "celery_ms_per_image": None if per_message is None else round(per_message / VARIANTS, 3),
    }


def floor_ms(
    job_code: Mapping[str, float], celery_ms_per_message: float, pipeline_point: Mapping[str, Any]
) -> float:
    """The orchestration floor of one round (see the module): the job code's stages but encoding
    in one thread (``job_code``: ms per image by stage), Celery's own cost per image, and the
    other processes' orchestration rows of the pipeline point."""
    table = pipeline_point.get("cpu_by_stage", {})
    own = sum(ms for name, ms in job_code.items() if name != "encode")
    others = sum(float(table.get(row, 0.0)) for row in OTHER_PROCESS_ROWS)
    return round(own + celery_ms_per_message / VARIANTS + others, 3)


def against_before(
    points: Sequence[Mapping[str, Any]],
    celery: Sequence[Mapping[str, Any]],
    piped: Sequence[Mapping[str, Any]],
    befores: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """Per process count of REF's points (``befores``): in each round, the floor and the pipeline's
    orchestration over REF's, and their medians over the rounds (ms per image and ratios)."""
    one_thread = {p["round"]: p["ms_per_image"] for p in points if int(p["threads"]) == 1}
    per_message = {c["round"]: c["ms_per_message"] for c in celery}
    ours = {(p["round"], p["processes"]): p for p in piped}
    found: dict[str, Any] = {}
    for processes in sorted({int(b["processes"]) for b in befores}):
        rows: list[dict[str, float]] = []
        for before in (b for b in befores if int(b["processes"]) == processes):
            round_ = before["round"]
            mine = ours.get((round_, processes))
            if mine is None or round_ not in one_thread or round_ not in per_message:
                continue
            was = float(before["orchestration_ms_per_image"])
            floor = floor_ms(one_thread[round_], per_message[round_], mine)
            now = float(mine["orchestration_ms_per_image"])
            rows.append({"before": was, "pipeline": now, "floor": floor})
        if not rows:
            continue

        def median(key: str, rows: list[dict[str, float]] = rows) -> float:
            return round(statistics.median(r[key] for r in rows), 3)

        def ratios(key: str, rows: list[dict[str, float]] = rows) -> list[float]:
            return [round(r[key] / r["before"], 3) for r in rows]

        found[str(processes)] = {
            "before_ms_per_image": median("before"),
            "pipeline_ms_per_image": median("pipeline"),
            "floor_ms_per_image": median("floor"),
            "pipeline_ratio_by_round": ratios("pipeline"),
            "floor_ratio_by_round": ratios("floor"),
            "pipeline_ratio": round(statistics.median(ratios("pipeline")), 3),
            "floor_ratio": round(statistics.median(ratios("floor")), 3),
            "rounds": len(rows),
        }
    return found


def pipeline_stages(point: Mapping[str, Any]) -> dict[str, float]:
    """A pipeline point's listing worker stages (``bench.perf.pipeline.run_jobs``'s stage table),
    in ms per image by :data:`STAGES` name (its ``rest`` holds Celery and the message gate)."""
    table = point.get("cpu_by_stage", {})
    return {name: float(table.get(row, 0.0)) for name, row in PIPELINE_ROWS.items()}


def plot(found: Mapping[str, Any], path: Path) -> None:
    """Bars per stage: one thread, N threads, and the pipeline's listing worker; with REF's points,
    a second panel: REF's orchestration, half of it, the pipeline's and the floor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    celery = found.get("celery_ms_per_image")
    names = [*STAGES, "Celery"] if celery is not None else list(STAGES)

    def bars(by_stage: Mapping[str, float], celery_ms: float = 0.0) -> list[float]:
        return [*(by_stage.get(s, 0.0) for s in STAGES), *([celery_ms] if celery is not None else [])]

    series = [
        (f"job code, {threads} thread{'s' if threads != '1' else ''}", bars(point["ms_per_image"]))
        for threads, point in found["by_threads"].items()
    ]
    if found.get("pipeline_1_process"):  # its Celery is inside its rest
        series.append(("pipeline, 1 process (same rounds)", bars(found["pipeline_1_process"])))
    if celery is not None:
        series.append(("Celery per message, / 4 images", bars({}, celery)))
    versus = found.get("against_before") or {}
    fig, axes = plt.subplots(
        1,
        2 if versus else 1,
        figsize=(14 if versus else 9, 4.5),
        squeeze=False,
        gridspec_kw={"width_ratios": [2, 1]} if versus else None,
    )
    ax = axes[0][0]
    width = 0.8 / len(series)
    for k, (label, values) in enumerate(series):
        ax.bar([i + k * width for i in range(len(names))], values, width, label=label)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names)
    ax.set_ylabel("CPU ms per image")
    ax.set_title("A listing job's worker CPU by stage: alone, in threads, and in the pipeline")
    ax.legend(fontsize=8)
    if versus:
        ax = axes[0][1]
        ref = found.get("before", {}).get("ref", "REF")
        kinds = [
            (f"{ref}'s pipeline", "before_ms_per_image", 1.0),
            (f"half of {ref}'s (the goal)", "before_ms_per_image", 0.5),
            ("this pipeline", "pipeline_ms_per_image", 1.0),
            ("floor: job code alone + Celery + other processes", "floor_ms_per_image", 1.0),
        ]
        counts = list(versus)
        width = 0.8 / len(kinds)
        for k, (label, key, scale) in enumerate(kinds):
            values = [versus[c][key] * scale for c in counts]
            ax.bar([i + k * width for i in range(len(counts))], values, width, label=label)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(counts))], [f"{c} process(es)" for c in counts])
        tallest = max(versus[c][key] for c in counts for _, key, _ in kinds)
        ax.set_ylim(0, tallest * 1.45)  # room for the legend above the bars
        ax.set_ylabel("orchestration CPU ms per image (medians)")
        ax.set_title("Orchestration against the before, and its floor")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf.isolated_stages", description=__doc__)
    parser.add_argument("--jobs", type=int, default=150, help="listing jobs per measured set")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=8, help="jobs in flight in the threaded set")
    parser.add_argument("--messages", type=int, default=1000, help="messages per Celery measurement")
    parser.add_argument(
        "--before", metavar="REF", help="also run REF's pipeline in each round (the floor against it)"
    )
    parser.add_argument(
        "--processes",
        type=int,
        nargs="+",
        default=[1],
        help="listing worker processes of the pipeline points",
    )
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--plot", type=Path, default=PLOT)
    args = parser.parse_args(argv)
    stage_cpu.install()
    points: list[dict[str, Any]] = []
    celery: list[dict[str, Any]] = []
    piped: list[dict[str, Any]] = []
    befores: list[dict[str, Any]] = []
    started = time.time()
    with contextlib.ExitStack() as stack:
        workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="atelier-isolated-"))
        env = stack.enter_context(Environment(Path(workdir)))
        ref = stack.enter_context(checkout(args.before, Path(workdir))) if args.before else None
        own_models = ref is not None and models_differ(ref.commit)
        for round_ in range(args.rounds):
            for point in job_code(env, args.jobs, [args.threads], round_):
                points.append(point)
                print(
                    f"round {round_ + 1}/{args.rounds}, {point['threads']} threads: "
                    f"{point['total_ms_per_image']} ms/image {point['ms_per_image']}",
                    flush=True,
                )
            celery.append(celery_message_cost(env, args.messages, round_))
            print(
                f"round {round_ + 1}/{args.rounds}, Celery: {celery[-1]['ms_per_message']} ms/message",
                flush=True,
            )
            for processes in args.processes:
                # REF first in even rounds, this checkout first in odd ones (bench.perf.paired.sides)
                for side in sides(round_) if ref is not None else ("after",):
                    tag = f"{'ref' if side == 'before' else 'pipe'}{processes}-r{round_}"
                    measured = run_side(
                        env, side, ref, tag=tag, jobs=args.jobs, processes=processes, own_models=own_models
                    )
                    (befores if side == "before" else piped).append({**measured, "round": round_})
                    print(
                        f"round {round_ + 1}/{args.rounds}, {processes} process(es), "
                        f"{'REF' if side == 'before' else 'pipeline'}: orchestration "
                        f"{measured['orchestration_ms_per_image']} ms/image {pipeline_stages(measured)}",
                        flush=True,
                    )
    found = summary(points, celery, piped)
    if ref is not None:
        found["before"] = {"ref": args.before, "commit": ref.commit, "own_triton": own_models}
        found["against_before"] = against_before(points, celery, piped, befores)
    document = {
        "command": "python -m bench.perf.isolated_stages " + " ".join(argv or []),
        "ran_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_s": round(time.time() - started, 1),
        "machine": machine(),
        **found,
        "points": points,
        "celery_rounds": celery,
        # each point as bench.perf.paired keeps it, with its round
        "pipeline_rounds": [{"round": p["round"], **{k: p.get(k) for k in KEPT}} for p in piped],
        "before_rounds": [{"round": p["round"], **{k: p.get(k) for k in KEPT}} for p in befores],
    }
    args.output.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    plot(found, args.plot)
    print(json.dumps(found, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
