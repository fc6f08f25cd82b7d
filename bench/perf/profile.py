"""``python -m bench.perf.profile [--jobs N]``: where a listing worker's time goes, by pyinstrument.

Runs ``worker.pipeline.run_listing`` for N listing jobs in this process on real clients (its own
Triton and S3, the shared Redis and RabbitMQ), then each job's ``job.succeeded`` delivery, under
pyinstrument (wall-clock sampling: waits on Triton, S3 and Redis show as such), and writes the
call tree to ``docs/benchmarks/worker-profile.txt``. The profile that led to the changes recorded in
BENCHMARKS.md; Celery and the message gate are not in it (see the CPU split in benchmark 5).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from pyinstrument import Profiler

from bench.perf.report import PLOTS
from bench.perf.rig import Environment, PipelineRig
from core.contracts.jobs import JobEventType
from worker import notifications, pipeline
from worker.context import WorkerContext

#: where the call tree goes
OUTPUT = PLOTS / "worker-profile.txt"


def profile(env: Environment, jobs: int) -> str:
    with PipelineRig(env, "profile") as rig:
        publisher = rig.producer.publisher
        ctx = WorkerContext.create(
            rig.settings, notify=lambda job_id, event: publisher.publish_callback(job_id, event.value)
        )
        requests = [rig.listing(i) for i in range(jobs + 1)]
        job_ids = rig.submit_all(requests)
        pipeline.run_listing(job_ids[0], requests[0], ctx)  # warm-up: connections, bucket
        profiler = Profiler(interval=0.0005)
        with profiler:
            for job_id, request in zip(job_ids[1:], requests[1:], strict=True):
                pipeline.run_listing(job_id, request, ctx)
                notifications.deliver_callback(job_id, JobEventType.SUCCEEDED, ctx)
        ctx.close()
    return str(profiler.output_text(unicode=False, color=False, show_all=False))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf.profile", description=__doc__)
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="atelier-profile-") as workdir, Environment(Path(workdir)) as env:
        text = profile(env, args.jobs)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
