"""The alternative a user would pick, as a Celery app: ``celery -A bench.perf.inprocess_app worker``.

It is Atelier's own worker (``worker.app``: the same configuration, gate, tasks, pipeline,
encoding, S3 store, status store and callbacks) with one change: each process's
``WorkerContext`` gets a :class:`bench.perf.torch_inference.TorchInference` instead of the
Triton client (through ``worker.context.configure``), so every pool process loads the
TorchScript models itself (after the fork, in ``worker_process_init``), torch running with the
intra-op threads of the committed backends' configs, as each Triton instance does
(``bench.perf.intra_op``).
"""

from __future__ import annotations

from typing import Any

from celery import signals

import worker.tasks  # noqa: F401  (registers the tasks on the app)
from bench.perf.torch_inference import TorchInference
from worker import context
from worker.app import app, enqueue_callback, settings
from worker.context import WorkerContext

__all__ = ["app"]


def in_process_context() -> WorkerContext:
    """A worker's context with the models in-process (not loaded yet: see :func:`load_models`)."""
    return WorkerContext.create(settings, notify=enqueue_callback, inference=TorchInference())


context.configure(in_process_context)


@signals.worker_process_init.connect
def load_models(**_: Any) -> None:
    """Load the models in each pool process before its first job (as Triton loads them at start)."""
    inference = context.current().inference
    if not isinstance(inference, TorchInference):
        raise TypeError(f"the in-process app's context serves {type(inference).__name__}, not TorchInference")
    inference.load()
