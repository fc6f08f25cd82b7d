"""``InferenceClient.judge_products`` against a fake gRPC client: a chunk is tried once without the
retry machinery, and a retryable failure then goes through the same backoff, budget and log lines
as any retried call."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from core.errors import PermanentError, RetryableError
from core.worker_settings import WorkerSettings
from worker.inference import InferenceClient


def triton_error(status: str, message: str = "details") -> InferenceServerException:
    return InferenceServerException(message, status=f"StatusCode.{status}")


class FakeJudge:
    """Answers ``quality_judge`` with each image's row index as its probabilities, after failing
    with ``errors`` first."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls: list[dict[str, Any]] = []

    def infer(self, model_name: str, inputs: list[Any], **kwargs: Any) -> Any:
        self.calls.append({"model": model_name, "shape": inputs[0].shape(), **kwargs})
        if self.errors:
            raise self.errors.pop(0)
        n = inputs[0].shape()[0]
        probabilities = np.repeat(np.arange(n, dtype=np.float32)[:, None], 10, axis=1)
        return type(
            "Result",
            (),
            {
                "as_numpy": lambda self, name: probabilities if name == "PROBABILITIES" else None,
                "get_response": lambda self: type("Response", (), {"model_version": "1"})(),
            },
        )()


def client_for(fake: FakeJudge, attempts: int = 3) -> tuple[InferenceClient, list[float]]:
    sleeps: list[float] = []
    settings = WorkerSettings(  # type: ignore[call-arg]
        _env_file=None, inference_retry_attempts=attempts, inference_backoff_base_s=0.5
    )
    return InferenceClient(settings, client_factory=lambda: fake, sleep=sleeps.append), sleeps


IMAGES = np.zeros((4, 32, 32, 3), np.uint8)


def test_a_judged_job_is_one_call_asking_for_the_probabilities() -> None:
    fake = FakeJudge()
    client, sleeps = client_for(fake)
    probabilities = client.judge_products(IMAGES)
    assert probabilities.dtype == np.float32 and probabilities.shape == (4, 10)
    np.testing.assert_array_equal(probabilities[:, 0], np.arange(4))
    assert [(c["model"], c["shape"]) for c in fake.calls] == [("quality_judge", [4, 32, 32, 3])]
    assert [o.name() for o in fake.calls[0]["outputs"]] == ["PROBABILITIES"]
    assert sleeps == []


def test_an_unavailable_judge_is_retried_with_backoff_and_logged_attempts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeJudge(triton_error("UNAVAILABLE"), triton_error("DEADLINE_EXCEEDED"))
    client, sleeps = client_for(fake)
    with caplog.at_level(logging.WARNING, logger="worker.inference"):
        probabilities = client.judge_products(IMAGES)
    assert probabilities.shape == (4, 10)
    assert len(fake.calls) == 3 and len(sleeps) == 2
    assert 0 <= sleeps[0] <= 0.5 and 0 <= sleeps[1] <= 1.0
    assert [r.attempt for r in caplog.records] == [1, 2]  # type: ignore[attr-defined]


def test_the_judge_retry_budget_counts_the_first_try() -> None:
    fake = FakeJudge(*[triton_error("UNAVAILABLE")] * 5)
    client, sleeps = client_for(fake, attempts=3)
    with pytest.raises(RetryableError, match="gave up after 3 tries") as caught:
        client.judge_products(IMAGES)
    assert caught.value.code == "inference_unavailable"
    assert len(fake.calls) == 3 and len(sleeps) == 2


def test_a_single_attempt_budget_gives_up_after_the_first_try() -> None:
    fake = FakeJudge(triton_error("UNAVAILABLE"))
    client, sleeps = client_for(fake, attempts=1)
    with pytest.raises(RetryableError, match="gave up after 1 tries"):
        client.judge_products(IMAGES)
    assert len(fake.calls) == 1 and sleeps == []


def test_a_permanent_judge_error_is_not_retried() -> None:
    fake = FakeJudge(triton_error("INVALID_ARGUMENT", "IMAGE has the wrong shape"))
    client, sleeps = client_for(fake)
    with pytest.raises(PermanentError, match="IMAGE has the wrong shape"):
        client.judge_products(IMAGES)
    assert len(fake.calls) == 1 and sleeps == []
