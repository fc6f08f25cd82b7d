"""The real worker with CPU timers per stage: ``celery -A bench.perf.accounted_app worker``.

It is ``worker.app`` unchanged (configuration, gate, tasks, pipeline) after
``bench.perf.stage_cpu.install`` wrapped its stages and boundaries with per-thread CPU timers,
so the pipeline benchmark can split the worker processes' CPU by stage. The timers cost a few
microseconds per stage, against milliseconds of work per image.
"""

from __future__ import annotations

import worker.tasks  # noqa: F401  (registers the tasks on the app)
from bench.perf.stage_cpu import install
from worker.app import app

__all__ = ["app"]

install()
