"""Triton over gRPC: one client per worker process, requests built from ``serving_contract.tensors``.

A job sends all its variants in one call, split into chunks of the model's ``max_batch_size``.
While Triton is unreachable, unavailable or slow, each chunk is retried with capped exponential
backoff and full jitter (``inference_retry_attempts``, ``inference_backoff_base_s``,
``inference_backoff_max_s``); every failure leaves as a ``RetryableError`` or a
``PermanentError`` whose ``code`` says why (see ``classify``).

Models run at the version the caller pins (the pipeline always pins one: the version whose
manifest mapped the request's conditions, ``worker.model_versions.job_manifest``), else the
configured default, else Triton's latest; once the first chunk has answered, the rest of the job
is pinned to the version that answered, so a model loaded mid-job never mixes two versions in one
result. A product version with patterns also gets the optional ``PATTERN`` input.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity import wait_random_exponential as full_jitter
from tritonclient.utils import InferenceServerException

from core.errors import AtelierError, ErrorCode, PermanentError, RetryableError
from core.worker_settings import WorkerSettings
from serving_contract.tensors import (
    CLIENT_DTYPES,
    MODELS,
    PRODUCT_GENERATOR,
    QUALITY_JUDGE,
    TRYON_GENERATOR,
    ModelSpec,
    empty_batch,
)
from worker.backpressure import Backpressure
from worker.per_process import PerProcessClient

log = logging.getLogger(__name__)

#: gRPC status -> (error class, code); statuses not listed are permanent ``inference_rejected``
STATUS_ERRORS: dict[str, tuple[type[AtelierError], ErrorCode]] = {
    "UNAVAILABLE": (RetryableError, ErrorCode.INFERENCE_UNAVAILABLE),
    "RESOURCE_EXHAUSTED": (RetryableError, ErrorCode.INFERENCE_UNAVAILABLE),
    "ABORTED": (RetryableError, ErrorCode.INFERENCE_UNAVAILABLE),
    "CANCELLED": (RetryableError, ErrorCode.INFERENCE_UNAVAILABLE),
    "DEADLINE_EXCEEDED": (RetryableError, ErrorCode.INFERENCE_TIMEOUT),
    "INTERNAL": (RetryableError, ErrorCode.INFERENCE_FAILED),
    "UNKNOWN": (RetryableError, ErrorCode.INFERENCE_FAILED),
    "NOT_FOUND": (PermanentError, ErrorCode.MODEL_NOT_FOUND),
    "INVALID_ARGUMENT": (PermanentError, ErrorCode.INFERENCE_REJECTED),
}

#: output tensor both models return
OUTPUT = "IMAGE"
#: what ``quality_judge`` is asked for: built once, ``infer`` only copies it into each request
_JUDGE_OUTPUTS = [grpcclient.InferRequestedOutput("PROBABILITIES")]
#: the judge's input type (``judge_products`` sends uint8 images)
_UINT8 = CLIENT_DTYPES["uint8"]


@dataclass(frozen=True)
class Generated:
    """Images from one model call: ``images`` uint8 ``[N, H, W, 3]``, and who made them."""

    images: np.ndarray
    model: str
    version: str  #: the version that answered (resolved when the request asked for the latest)


def classify(error: BaseException, *, model: str = "", version: str = "") -> AtelierError:
    """The typed error for an exception raised by a Triton call.

    ``InferenceServerException`` carries the gRPC status as ``"StatusCode.NAME"``; a status-less
    one was raised by the client library itself (bad input on our side): permanent.
    """
    where = f"{model} (version {version or 'latest'})" if model else "triton"
    if isinstance(error, AtelierError):
        return error
    if isinstance(error, InferenceServerException):
        status = (error.status() or "").removeprefix("StatusCode.")
        kind, code = STATUS_ERRORS.get(status, (PermanentError, ErrorCode.INFERENCE_REJECTED))
        detail = error.message() or str(error)
        if status == "NOT_FOUND" or (status == "UNAVAILABLE" and "unknown model" in detail.lower()):
            kind, code = PermanentError, ErrorCode.MODEL_NOT_FOUND
        return kind(code, f"{where}: {status or 'client error'}: {detail}")
    code_of = getattr(error, "code", None)  # a raw grpc.RpcError
    if callable(code_of):
        status = getattr(code_of(), "name", str(code_of()))
        kind, code = STATUS_ERRORS.get(status, (PermanentError, ErrorCode.INFERENCE_REJECTED))
        return kind(code, f"{where}: {status}: {error}")
    if isinstance(error, TimeoutError):
        return RetryableError(ErrorCode.INFERENCE_TIMEOUT, f"{where}: {error}")
    if isinstance(error, OSError):  # ConnectionError and friends
        return RetryableError(ErrorCode.INFERENCE_UNAVAILABLE, f"{where}: {error}")
    return PermanentError(ErrorCode.INFERENCE_REJECTED, f"{where}: {type(error).__name__}: {error}")


def chunks(n: int, size: int) -> list[slice]:
    """``[0, n)`` in consecutive slices of at most ``size``."""
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


class InferenceClient(PerProcessClient[Any]):
    """``tritonclient.grpc`` behind the worker's two questions: product images and try-ons.

    Parameters: ``settings`` (Triton URL, TLS, timeout, retry budget, default versions);
    keyword-only ``client_factory`` (default: a real ``InferenceServerClient`` from settings;
    tests pass a fake), ``sleep`` (default ``time.sleep``; tests pass a recorder) and
    ``backpressure`` (each request's priority and admission, ``worker.backpressure``; default
    shared through the status store's Redis).

    The gRPC channel is opened lazily and reopened after a fork, so one instance created in a
    Celery parent still gives each pool process its own channel.
    """

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        client_factory: Callable[[], Any] | None = None,
        sleep: Callable[[float], None] | None = None,
        backpressure: Backpressure | None = None,
    ) -> None:
        self.settings = settings
        super().__init__(client_factory or self._connect)
        self._sleep = sleep or time.sleep
        # backpressure: a try-on's requests go first, backfill waits while one is in flight
        self.backpressure = backpressure or Backpressure.from_settings(settings)

    def _connect(self) -> grpcclient.InferenceServerClient:
        s = self.settings

        def path(p: os.PathLike[str] | None) -> str | None:
            return os.fspath(p) if p is not None else None

        return grpcclient.InferenceServerClient(
            url=s.triton_grpc_url,
            ssl=s.triton_ssl,
            root_certificates=path(s.triton_root_certificates),
            private_key=path(s.triton_private_key),
            certificate_chain=path(s.triton_certificate_chain),
        )

    # --- the two models ---

    def generate_products(
        self,
        categories: Sequence[int],
        colours: Sequence[int],
        seeds: Sequence[int],
        *,
        version: int | str | None = None,
        patterns: Sequence[int] | None = None,
    ) -> Generated:
        """``product_cgan``: one image per (category, colour, seed), uint8 ``[N, 32, 32, 3]``;
        ``patterns``: the pattern of each, for a version that has patterns (sent as ``PATTERN``),
        ``None`` for one that has none (no ``PATTERN`` input at all)."""
        columns = {"categories": categories, "colours": colours, "seeds": seeds}
        if patterns is not None:
            columns["patterns"] = patterns
        optional = ("PATTERN",) if patterns is not None else ()
        batch = empty_batch(PRODUCT_GENERATOR, _same_length(**columns), optional=optional)
        batch["CATEGORY"][:, 0] = categories
        batch["COLOUR"][:, 0] = colours
        batch["SEED"][:, 0] = seeds
        if patterns is not None:
            batch["PATTERN"][:, 0] = patterns
        return self._generate(
            PRODUCT_GENERATOR, batch, _version(version, self.settings.product_model_version)
        )

    def generate_tryon(
        self,
        measurements: np.ndarray | Sequence[Sequence[float]],
        sizes: Sequence[int],
        categories: Sequence[int],
        garments: np.ndarray,
        seeds: Sequence[int],
        *,
        version: int | str | None = None,
    ) -> Generated:
        """``tryon_cvae``: measurements ``[N, 5]`` (cm, kg), size and category indices, garments
        uint8 ``[N, 32, 32, 3]`` (product images) and seeds -> uint8 ``[N, 64, 64, 3]``."""
        n = _same_length(
            measurements=measurements, sizes=sizes, categories=categories, garments=garments, seeds=seeds
        )
        batch = empty_batch(TRYON_GENERATOR, n)
        for name, values in (("MEASUREMENTS", measurements), ("GARMENT", garments)):
            array = np.asarray(values)
            if array.shape != batch[name].shape:
                raise ValueError(f"{name} must have shape {batch[name].shape}, got {array.shape}")
            batch[name][:] = array
        batch["SIZE"][:, 0] = sizes
        batch["CATEGORY"][:, 0] = categories
        batch["SEED"][:, 0] = seeds
        return self._generate(TRYON_GENERATOR, batch, _version(version, self.settings.tryon_model_version))

    def judge_products(self, images: np.ndarray) -> np.ndarray:
        """``quality_judge``: category probabilities ``[N, categories]`` (float32) for product
        images uint8 ``[N, 32, 32, 3]`` as ``generate_products`` returns them.

        A chunk is sent once without the retry machinery (tenacity's bookkeeping cost about as
        much CPU as the rest of the call's Python): only when that try fails retryably does it go
        through :meth:`_infer_with_retry`, which sees the failure as its first attempt (the same
        backoff, log lines and budget as a retried call that started there)."""
        parts: list[np.ndarray] = []
        for part in chunks(len(images), QUALITY_JUDGE.max_batch_size):
            batch = {"IMAGE": np.ascontiguousarray(images[part], dtype=np.uint8)}
            try:
                probabilities, _ = self._judge(QUALITY_JUDGE, batch, "")
            except RetryableError as error:
                call = _failed_once(error, self._judge)
                probabilities, _ = self._infer_with_retry(QUALITY_JUDGE, batch, "", call=call)
            parts.append(probabilities)
        return np.concatenate(parts)

    # --- helpers for health checks and the CLI ---

    def ready(self) -> bool:
        """Whether the server and every model answer ready now (no retry, never raises)."""
        timeout = self.settings.triton_timeout_s
        try:
            return bool(
                self.client.is_server_ready(client_timeout=timeout)
                and all(self.client.is_model_ready(spec.name, client_timeout=timeout) for spec in MODELS)
            )
        except Exception:  # any failure means "not ready"; the caller only wants a yes or no
            return False

    def model_versions(self) -> dict[str, list[str]]:
        """Ready versions per model, e.g. ``{"product_cgan": ["1"], "tryon_cvae": ["1", "2"]}``."""
        try:
            index = self.client.get_model_repository_index(
                as_json=True, client_timeout=self.settings.triton_timeout_s
            )
        except Exception as error:
            raise classify(error) from error
        versions: dict[str, list[str]] = {}
        for model in index.get("models", []):
            if model.get("state") == "READY":
                versions.setdefault(model["name"], []).append(str(model.get("version", "")))
        return {name: sorted(v, key=lambda x: (len(x), x)) for name, v in versions.items()}

    # --- one job's calls ---

    def _generate(self, spec: ModelSpec, batch: dict[str, np.ndarray], version: str) -> Generated:
        n = len(next(iter(batch.values())))
        parts: list[np.ndarray] = []
        for part in chunks(n, spec.max_batch_size):
            images, version = self._infer_with_retry(spec, {k: v[part] for k, v in batch.items()}, version)
            parts.append(images)
        return Generated(np.concatenate(parts), spec.name, version)

    def _infer_with_retry(
        self,
        spec: ModelSpec,
        arrays: dict[str, np.ndarray],
        version: str,
        *,
        call: Callable[[ModelSpec, dict[str, np.ndarray], str], tuple[np.ndarray, str]] | None = None,
    ) -> tuple[np.ndarray, str]:
        s = self.settings
        retrying = Retrying(
            stop=stop_after_attempt(s.inference_retry_attempts),
            wait=full_jitter(multiplier=s.inference_backoff_base_s, max=s.inference_backoff_max_s),
            retry=retry_if_exception_type(RetryableError),
            before_sleep=lambda state: _log_retry(spec.name, version, state),
            reraise=True,
            sleep=self._sleep,
        )
        try:
            return retrying(call or self._infer, spec, arrays, version)
        except RetryableError as error:
            tries = s.inference_retry_attempts
            raise type(error)(error.code, f"{error.message} (gave up after {tries} tries)") from error

    def _infer(self, spec: ModelSpec, arrays: dict[str, np.ndarray], version: str) -> tuple[np.ndarray, str]:
        inputs = []
        for name, values in arrays.items():
            tensor = grpcclient.InferInput(name, list(values.shape), CLIENT_DTYPES[values.dtype.name])
            tensor.set_data_from_numpy(np.ascontiguousarray(values))
            inputs.append(tensor)
        try:
            with self.backpressure.request() as priority:  # backpressure
                result = self.client.infer(
                    spec.name,
                    inputs,
                    model_version=version,
                    outputs=[grpcclient.InferRequestedOutput(OUTPUT)],
                    client_timeout=self.settings.triton_timeout_s,
                    priority=priority,
                )
        except Exception as error:
            raise classify(error, model=spec.name, version=version) from error
        images = result.as_numpy(OUTPUT)
        expected = (len(arrays["SEED"]), *spec.outputs[0].shape)
        if images is None or images.shape != expected or images.dtype != np.uint8:
            got = None if images is None else (images.shape, images.dtype)
            raise PermanentError(
                ErrorCode.INFERENCE_REJECTED, f"{spec.name} returned {got}, expected {expected} uint8"
            )
        answered = str(result.get_response().model_version or version)
        return images, answered

    def _judge(self, spec: ModelSpec, arrays: dict[str, np.ndarray], version: str) -> tuple[np.ndarray, str]:
        images = arrays["IMAGE"]
        tensor = grpcclient.InferInput("IMAGE", list(images.shape), _UINT8)
        tensor.set_data_from_numpy(images)
        try:
            with self.backpressure.request() as priority:  # backpressure
                result = self.client.infer(
                    spec.name,
                    [tensor],
                    model_version=version,
                    outputs=_JUDGE_OUTPUTS,
                    client_timeout=self.settings.triton_timeout_s,
                    priority=priority,
                )
        except Exception as error:
            raise classify(error, model=spec.name, version=version) from error
        return _judge_result(spec, result, len(images)), str(result.get_response().model_version or version)


def _failed_once(
    error: RetryableError, call: Callable[[ModelSpec, dict[str, np.ndarray], str], tuple[np.ndarray, str]]
) -> Callable[[ModelSpec, dict[str, np.ndarray], str], tuple[np.ndarray, str]]:
    """``call`` whose first invocation raises ``error`` again (the try already made), and every
    later one calls through."""
    pending = [error]

    def again(spec: ModelSpec, arrays: dict[str, np.ndarray], version: str) -> tuple[np.ndarray, str]:
        if pending:
            raise pending.pop()
        return call(spec, arrays, version)

    return again


def _judge_result(spec: ModelSpec, result: Any, n: int) -> np.ndarray:
    probabilities = result.as_numpy("PROBABILITIES")
    expected = (n, *spec.outputs[0].shape)
    if probabilities is None or probabilities.shape != expected:
        got = None if probabilities is None else probabilities.shape
        raise PermanentError(ErrorCode.INFERENCE_REJECTED, f"{spec.name} returned {got}, expected {expected}")
    return np.asarray(probabilities, dtype=np.float32)


def _version(requested: int | str | None, default: str) -> str:
    """Triton's ``model_version`` string: the request's pin, else the default ("" = latest)."""
    return str(requested) if requested not in (None, "") else default


def _same_length(**columns: Sequence[Any] | np.ndarray) -> int:
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"inputs must have one length per image, got {lengths}")
    n = next(iter(lengths.values()))
    if n < 1:
        raise ValueError("at least one image must be requested")
    return n


def _log_retry(model: str, version: str, state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    log.warning(
        "triton call failed (%s), retrying in %.2f s",
        error,
        wait,
        extra={"model": model, "version": version or "latest", "attempt": state.attempt_number},
    )
