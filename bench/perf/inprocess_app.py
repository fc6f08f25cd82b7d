"""The alternative a user would pick, as a Celery app: ``celery -A bench.perf.inprocess_app worker``.

It is Atelier's own worker (``worker.app``: the same configuration, gate, tasks, pipeline,
encoding, S3 store, status store and callbacks) with one change: each process's
``WorkerContext`` gets a :class:`bench.perf.torch_inference.TorchInference` instead of the
Triton client, so every pool process loads the TorchScript models itself (after the fork, in
``worker_process_init``). Benchmark-only: ``worker.context.current`` is replaced here.
"""

from __future__ import annotations

import os
from typing import Any

from celery import signals

import worker.tasks  # noqa: F401  (registers the tasks on the app)
from bench.perf.torch_inference import TorchInference
from worker import context
from worker.app import app, enqueue_callback, settings
from worker.context import WorkerContext

__all__ = ["app"]

_current: WorkerContext | None = None
_pid: int | None = None


def current() -> WorkerContext:
    """This process's context with the model in-process (built again after a fork)."""
    global _current, _pid
    if _current is None or _pid != os.getpid():
        built = WorkerContext.create(settings, notify=enqueue_callback)
        built.inference = TorchInference()  # type: ignore[assignment]
        _current, _pid = built, os.getpid()
    return _current


context.current = current


@signals.worker_process_init.connect
def load_models(**_: Any) -> None:
    """Load the models in each pool process before its first job (as Triton loads them at start)."""
    inference = current().inference
    assert isinstance(inference, TorchInference)
    inference.load()
