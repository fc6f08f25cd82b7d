"""A worker process pays its one-time costs before its first job (``worker.warm_up``): what its
queues need and nothing else, and a service that is not up yet never stops it from starting."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from core.worker_settings import WorkerSettings
from quality.verdict import Verdict
from worker import context
from worker.context import WorkerContext
from worker.stubs import MemoryImageStore, ScriptedGate, stub_context
from worker.warm_up import warm_process

CALLBACKS = "atelier.callbacks"


class Down(MemoryImageStore):
    def ensure_bucket(self) -> None:
        raise ConnectionError("S3 is not up yet")


class BrokenGate(ScriptedGate):
    def judge(self, images: np.ndarray, probabilities: np.ndarray, **_: Any) -> list[Verdict]:
        raise RuntimeError("judge exploded")


class RecordingGate(ScriptedGate):
    def __init__(self) -> None:
        super().__init__()
        self.judged: list[int] = []

    def judge(self, images: np.ndarray, probabilities: np.ndarray, **kwargs: Any) -> list[Verdict]:
        self.judged.append(len(images))
        return super().judge(images, probabilities, **kwargs)


def settings() -> WorkerSettings:
    return WorkerSettings(_env_file=None)  # type: ignore[call-arg]


@pytest.fixture
def installed() -> Iterator[Any]:
    def install(ctx: WorkerContext) -> WorkerContext:
        context.use(ctx)
        return ctx

    yield install
    context.close()


def test_a_job_worker_makes_sure_of_its_bucket_and_judges_once_before_its_first_job(installed: Any) -> None:
    gate = RecordingGate()
    ctx = installed(stub_context(settings(), gate=gate))
    warm_process(["atelier.listing"], callback_queue=CALLBACKS)
    assert ctx._bucket_ready
    assert gate.judged == [2]
    assert ctx.callbacks._client is not None  # a job's thread posts its terminal callback


def test_a_callback_worker_opens_only_its_callback_client(installed: Any) -> None:
    gate = RecordingGate()
    ctx = installed(stub_context(settings(), gate=gate))
    warm_process([CALLBACKS], callback_queue=CALLBACKS)
    assert ctx.callbacks._client is not None
    assert not ctx._bucket_ready and gate.judged == []


def test_a_service_that_is_down_is_logged_and_the_worker_starts_anyway(
    installed: Any, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = installed(stub_context(settings(), images=Down(), gate=BrokenGate()))
    with caplog.at_level(logging.WARNING):
        warm_process([], callback_queue=CALLBACKS)  # no queue named: everything
    assert not ctx._bucket_ready  # the first job makes sure of the bucket again
    assert "S3 is not up yet" in caplog.text and "judge exploded" in caplog.text
