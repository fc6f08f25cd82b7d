"""In-memory stand-ins for the worker's boundaries (``worker.boundaries``), shipped for unit
tests and benchmarks as Dramatiq ships its stub broker: a job runs through the real pipeline
with no Triton, S3, Redis or broker. Each records what it was asked, and takes errors to raise
(one per call, in order) so a test can make a boundary fail.

- :class:`StubInference`: deterministic images of the models' shapes, from every input;
- :class:`MemoryImageStore`: objects in a dict, with ``ImageStore``'s garment lookup rules;
- :class:`RecordingNotifier`: the callbacks a job queued;
- :func:`stub_context`: a ``WorkerContext`` of these, ``core.jobs.MemoryJobStore`` and a real
  ``CallbackSender`` whose HTTP goes to a :class:`RecordingReceiver`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np

from core.contracts.jobs import JobEventType, JobKind, StoredImage
from core.errors import ErrorCode, PermanentError
from core.jobs import MemoryJobStore
from core.model_registry import MemoryManifests, ModelRegistry
from core.worker_settings import WorkerSettings
from quality.verdict import Check, Verdict
from serving_contract.taxonomy import NUM_CATEGORIES
from serving_contract.tensors import (
    PRODUCT_GENERATOR,
    PRODUCT_IMAGE_SIZE,
    TRYON_GENERATOR,
    TRYON_IMAGE_SIZE,
)
from worker.boundaries import Callbacks, Images, Inference, QualityGate, StatusStore
from worker.callbacks import CallbackSender
from worker.context import WorkerContext
from worker.inference import Generated
from worker.storage import job_prefix

#: the version a stub model answers with when the request pins none
STUB_VERSION = "1"
#: the address every callback host resolves to in a stub context (a public one, so the URL
#: rules pass; nothing is sent there)
STUB_CALLBACK_ADDRESS = "93.184.216.34"


class _Failures:
    """Errors to raise, one per call, before answering."""

    def __init__(self, errors: Sequence[BaseException]) -> None:
        self.errors = list(errors)

    def maybe_fail(self) -> None:
        if self.errors:
            raise self.errors.pop(0)


class StubInference(_Failures):
    """Both generators without a model: each image is one grey level computed from its inputs,
    so a test can tell which inputs went where (products ``(7*seed + 3*category + colour) %
    256``, try-ons ``(mean garment + seed) % 256``); the judge agrees with every request.
    ``calls`` lists ``(model, inputs)`` of the generators, ``judged`` the judge's batch sizes.

    Parameters: ``errors`` to raise, one per call (after the call is recorded).
    """

    def __init__(self, *errors: BaseException) -> None:
        super().__init__(errors)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        #: the size of each ``judge_products`` batch (``calls`` lists the generators only)
        self.judged: list[int] = []

    def generate_products(
        self,
        categories: Sequence[int],
        colours: Sequence[int],
        seeds: Sequence[int],
        *,
        version: int | str | None = None,
        patterns: Sequence[int] | None = None,
    ) -> Generated:
        inputs = {"categories": list(categories), "colours": list(colours), "seeds": list(seeds)}
        if patterns is not None:
            inputs["patterns"] = list(patterns)
        self.calls.append((PRODUCT_GENERATOR.name, {**inputs, "version": version}))
        self.maybe_fail()
        values = [(7 * s + 3 * c + k) % 256 for s, c, k in zip(seeds, categories, colours, strict=True)]
        return Generated(_images(values, PRODUCT_IMAGE_SIZE), PRODUCT_GENERATOR.name, _answered(version))

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
        inputs = {
            "measurements": [list(m) for m in measurements],
            "sizes": list(sizes),
            "categories": list(categories),
            "garments": np.asarray(garments),
            "seeds": list(seeds),
        }
        self.calls.append((TRYON_GENERATOR.name, {**inputs, "version": version}))
        self.maybe_fail()
        values = [(int(g.mean()) + s) % 256 for g, s in zip(garments, seeds, strict=True)]
        return Generated(_images(values, TRYON_IMAGE_SIZE), TRYON_GENERATOR.name, _answered(version))

    def judge_products(self, images: np.ndarray) -> np.ndarray:
        """Every category at probability 1: the stub judge agrees with any request."""
        self.judged.append(len(images))
        self.maybe_fail()
        return np.ones((len(images), NUM_CATEGORIES), dtype=np.float32)

    def close(self) -> None:
        """Nothing to close."""


class ScriptedGate:
    """A quality gate that fails what it is told: ``failing_values[v]`` names the checks that
    fail for a stub image of grey level ``v`` (:class:`StubInference` computes it from the seed,
    category and colour), so a test can plant a defect and watch it regenerated. With no script
    every image passes. ``seen`` counts the images judged."""

    def __init__(
        self, failing_values: Mapping[int, Sequence[str]] | None = None, *, max_tries: int = 3
    ) -> None:
        self.failing_values = dict(failing_values or {})
        self._max_tries = max_tries
        self.seen = 0

    @property
    def max_tries(self) -> int:
        return self._max_tries

    def judge(
        self,
        images: np.ndarray,
        probabilities: np.ndarray,
        *,
        category: int | None,
        colour: int | tuple[int, int, int],
        pattern: str | None = None,
    ) -> list[Verdict]:
        verdicts = []
        for image in images:
            self.seen += 1
            failed = set(self.failing_values.get(int(image[0, 0, 0]), ()))
            checks = tuple(
                Check.at_least(name, 0.0 if name in failed else 1.0, 0.5) for name in GATE_CHECK_NAMES
            )
            verdicts.append(Verdict(checks))
        return verdicts


#: the checks :class:`ScriptedGate` reports, as the real gate names its main ones
GATE_CHECK_NAMES = ("category", "colour", "duplicate", "blank")


def _images(values: Sequence[int], size: int) -> np.ndarray:
    return np.stack([np.full((size, size, 3), v, np.uint8) for v in values])


def _answered(version: int | str | None) -> str:
    return STUB_VERSION if version is None else str(version)


class MemoryImageStore(_Failures):
    """The bucket as a dict: ``objects[key] = (data, content_type, metadata)``; links are fake
    (``https://s3.test/{key}?sig``, valid an hour). ``puts`` counts the writes that succeeded.

    Parameters: ``errors`` to raise, one per ``put_image``.
    """

    def __init__(self, *errors: BaseException) -> None:
        super().__init__(errors)
        self.objects: dict[str, tuple[bytes, str, dict[str, Any]]] = {}
        self.puts = 0

    def ensure_bucket(self) -> None:
        """The dict is always there."""

    def put_image(
        self, key: str, data: bytes, content_type: str, metadata: Mapping[str, Any], *, variant: int
    ) -> StoredImage:
        self.maybe_fail()
        self.puts += 1
        self.objects[key] = (data, content_type, dict(metadata))
        return StoredImage(
            variant=variant,
            bucket="test",
            key=key,
            content_type=content_type,
            url=f"https://s3.test/{key}?sig",
            url_expires_at=datetime.now(UTC) + timedelta(hours=1),
        )

    def remove_job_images(self, kind: JobKind | str, job_id: str) -> int:
        keys = [key for key in self.objects if key.startswith(job_prefix(kind, job_id))]
        for key in keys:
            del self.objects[key]
        return len(keys)

    def get_listing_image(self, job_id: str, variant: int) -> bytes:
        prefix = f"{job_prefix('listing', job_id)}{variant}."
        for key, (data, _, _) in sorted(self.objects.items()):
            if key.startswith(prefix):
                return data
        raise PermanentError(
            ErrorCode.GARMENT_NOT_FOUND, f"listing job {job_id} has no image for variant {variant}"
        )


class RecordingNotifier:
    """A ``notify`` that keeps ``(job_id, event)`` in ``queued`` instead of queuing a delivery."""

    def __init__(self) -> None:
        self.queued: list[tuple[str, JobEventType]] = []
        self._failures: dict[JobEventType, Exception] = {}

    def __call__(self, job_id: str, event: JobEventType, /) -> None:
        if (error := self._failures.pop(event, None)) is not None:
            raise error
        self.queued.append((job_id, event))

    def fail_next(self, event: JobEventType, error: Exception) -> None:
        """Raise ``error`` instead of queuing the next ``event`` (a broker outage)."""
        self._failures[event] = error

    def events(self, job_id: str) -> list[str]:
        """The events queued for ``job_id``, in order."""
        return [event.value for queued_id, event in self.queued if queued_id == job_id]


class RecordingReceiver:
    """A callback receiver inside ``httpx.MockTransport``: keeps every request in ``posts`` and
    answers with ``answer(request)`` (default 204)."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        self.posts: list[httpx.Request] = []
        self._answer = answer or (lambda request: httpx.Response(204))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.posts.append(request)
        return self._answer(request)

    def sender(self, settings: WorkerSettings) -> CallbackSender:
        """The real ``CallbackSender`` (signing, URL rules, retry schedule), posting here."""
        return CallbackSender(
            settings,
            resolve=lambda host, port: [STUB_CALLBACK_ADDRESS],
            transport=httpx.MockTransport(self),
        )


def stub_context(
    settings: WorkerSettings,
    *,
    store: StatusStore | None = None,
    inference: Inference | None = None,
    images: Images | None = None,
    callbacks: Callbacks | None = None,
    notify: RecordingNotifier | None = None,
    gate: QualityGate | None = None,
    models: ModelRegistry | None = None,
) -> WorkerContext:
    """A ``WorkerContext`` that touches no service; each part defaults to its stand-in
    (``MemoryJobStore``, :class:`StubInference`, :class:`MemoryImageStore`, a sender posting to
    a :class:`RecordingReceiver` that answers 204, :class:`RecordingNotifier`, a
    :class:`ScriptedGate` that passes everything, a model registry in memory holding nothing:
    the built-in version 1 of each model)."""
    return WorkerContext(
        settings=settings,
        store=store if store is not None else MemoryJobStore(),
        inference=inference if inference is not None else StubInference(),
        images=images if images is not None else MemoryImageStore(),
        callbacks=callbacks if callbacks is not None else RecordingReceiver().sender(settings),
        notify=notify if notify is not None else RecordingNotifier(),
        gate=gate if gate is not None else ScriptedGate(),
        models=models if models is not None else ModelRegistry(MemoryManifests(), ttl_s=0),
    )
