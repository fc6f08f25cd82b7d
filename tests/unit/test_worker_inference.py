"""worker.inference against a fake gRPC client: batching, versions, error types, retry budget."""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from core.errors import PermanentError, RetryableError
from core.worker_settings import WorkerSettings
from worker.inference import InferenceClient, chunks, classify


def settings(**overrides: Any) -> WorkerSettings:
    values: dict[str, Any] = {"inference_retry_attempts": 3, "inference_backoff_base_s": 0.5}
    return WorkerSettings(_env_file=None, **{**values, **overrides})  # type: ignore[call-arg]


def triton_error(status: str, message: str = "details") -> InferenceServerException:
    return InferenceServerException(message, status=f"StatusCode.{status}")


class FakeResult:
    def __init__(self, images: np.ndarray, version: str) -> None:
        self.images, self.version = images, version

    def as_numpy(self, name: str) -> np.ndarray:
        return self.images

    def get_response(self) -> Any:
        return type("Response", (), {"model_version": self.version})()


class FakeTriton:
    """Answers like Triton: one image per SEED row, after failing with ``errors`` first."""

    def __init__(self, *errors: BaseException, version: str = "3") -> None:
        self.errors = list(errors)
        self.version = version
        self.calls: list[dict[str, Any]] = []

    def infer(self, model_name: str, inputs: list[Any], **kwargs: Any) -> FakeResult:
        self.calls.append({"model": model_name, "inputs": {i.name(): i.shape() for i in inputs}, **kwargs})
        if self.errors:
            raise self.errors.pop(0)
        n = next(i.shape()[0] for i in inputs if i.name() == "SEED")
        side = 32 if model_name == "product_cgan" else 64
        return FakeResult(np.zeros((n, side, side, 3), np.uint8), kwargs.get("model_version") or self.version)


def client_for(fake: FakeTriton, **overrides: Any) -> tuple[InferenceClient, list[float]]:
    sleeps: list[float] = []
    return InferenceClient(settings(**overrides), client_factory=lambda: fake, sleep=sleeps.append), sleeps


def test_all_variants_go_in_one_call_with_the_default_version_and_timeout() -> None:
    fake = FakeTriton()
    client, _ = client_for(fake, triton_timeout_s=7.5)
    out = client.generate_products([1] * 8, [2] * 8, list(range(8)))
    assert out.images.shape == (8, 32, 32, 3) and out.images.dtype == np.uint8
    assert (out.model, out.version) == ("product_cgan", "3")
    (call,) = fake.calls
    assert call["inputs"] == {"CATEGORY": [8, 1], "COLOUR": [8, 1], "SEED": [8, 1]}
    assert call["model_version"] == "" and call["client_timeout"] == 7.5


def test_large_jobs_split_at_max_batch_size_and_stay_on_one_version() -> None:
    fake = FakeTriton(version="5")
    client, _ = client_for(fake)
    out = client.generate_products([0] * 130, [0] * 130, list(range(130)))
    assert out.images.shape[0] == 130
    assert [c["inputs"]["SEED"][0] for c in fake.calls] == [64, 64, 2]
    assert [c["model_version"] for c in fake.calls] == ["", "5", "5"]
    assert chunks(5, 2) == [slice(0, 2), slice(2, 4), slice(4, 5)]


def test_request_pin_beats_the_configured_default() -> None:
    fake = FakeTriton()
    client, _ = client_for(fake, tryon_model_version="1")
    garments = np.zeros((2, 32, 32, 3), np.uint8)
    body = [[170.0, 70.0, 95.0, 80.0, 100.0]] * 2
    assert client.generate_tryon(body, [1, 2], [0, 0], garments, [1, 2]).version == "1"
    out = client.generate_tryon(body, [1, 2], [0, 0], garments, [1, 2], version=2)
    assert out.images.shape == (2, 64, 64, 3) and out.version == "2"
    assert fake.calls[-1]["inputs"]["MEASUREMENTS"] == [2, 5]


def test_mismatched_inputs_are_a_programming_error() -> None:
    client, _ = client_for(FakeTriton())
    with pytest.raises(ValueError, match="one length per image"):
        client.generate_products([1, 2], [1], [1, 2])
    with pytest.raises(ValueError, match="GARMENT must have shape"):
        client.generate_tryon([[170.0] * 5], [0], [0], np.zeros((1, 28, 28, 3), np.uint8), [0])


@pytest.mark.parametrize(
    ("error", "kind", "code"),
    [
        (
            triton_error("UNAVAILABLE", "failed to connect to all addresses"),
            RetryableError,
            "inference_unavailable",
        ),
        (triton_error("DEADLINE_EXCEEDED", "Deadline Exceeded"), RetryableError, "inference_timeout"),
        (triton_error("RESOURCE_EXHAUSTED"), RetryableError, "inference_unavailable"),
        (triton_error("INTERNAL", "stub crashed"), RetryableError, "inference_failed"),
        (triton_error("INVALID_ARGUMENT", "SEED must be >= 0"), PermanentError, "inference_rejected"),
        (triton_error("NOT_FOUND", "Request for unknown model"), PermanentError, "model_version_not_found"),
        (
            triton_error("UNAVAILABLE", "Request for unknown model: 'product_cgan' version 9 is not found"),
            PermanentError,
            "model_version_not_found",
        ),
        (InferenceServerException("bad dtype"), PermanentError, "inference_rejected"),
        (ConnectionResetError("reset"), RetryableError, "inference_unavailable"),
    ],
)
def test_triton_errors_are_classified(error: Exception, kind: type, code: str) -> None:
    typed = classify(error, model="product_cgan", version="")
    assert type(typed) is kind and typed.code == code
    assert "product_cgan" in typed.message


def test_raw_grpc_errors_are_classified() -> None:
    class RawError(grpc.RpcError):
        def code(self) -> grpc.StatusCode:
            return grpc.StatusCode.UNAVAILABLE

    assert classify(RawError()).code == "inference_unavailable"


def test_unavailability_is_retried_with_jittered_backoff_then_succeeds() -> None:
    fake = FakeTriton(triton_error("UNAVAILABLE"), triton_error("DEADLINE_EXCEEDED"))
    client, sleeps = client_for(fake, inference_backoff_base_s=0.5, inference_backoff_max_s=10)
    assert client.generate_products([0], [0], [0]).images.shape == (1, 32, 32, 3)
    assert len(fake.calls) == 3 and len(sleeps) == 2
    assert 0 <= sleeps[0] <= 0.5 and 0 <= sleeps[1] <= 1.0


def test_retry_budget_runs_out_as_a_retryable_error() -> None:
    fake = FakeTriton(*[triton_error("UNAVAILABLE")] * 5)
    client, sleeps = client_for(fake, inference_retry_attempts=3)
    with pytest.raises(RetryableError, match="gave up after 3 tries") as caught:
        client.generate_products([0], [0], [0])
    assert caught.value.code == "inference_unavailable"
    assert len(fake.calls) == 3 and len(sleeps) == 2


def test_permanent_errors_are_not_retried() -> None:
    fake = FakeTriton(triton_error("INVALID_ARGUMENT", "CATEGORY must be in [0, 10)"))
    client, sleeps = client_for(fake)
    with pytest.raises(PermanentError, match=r"CATEGORY must be in \[0, 10\)"):
        client.generate_products([99], [0], [0])
    assert len(fake.calls) == 1 and sleeps == []


def test_backoff_is_capped() -> None:
    fake = FakeTriton(*[triton_error("UNAVAILABLE")] * 9)
    client, sleeps = client_for(
        fake, inference_retry_attempts=10, inference_backoff_base_s=1.0, inference_backoff_max_s=2.0
    )
    client.generate_products([0], [0], [0])
    assert len(sleeps) == 9 and max(sleeps) <= 2.0
