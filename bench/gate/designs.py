"""The two ways a worker can get a generated batch judged, measured against the real Triton server.

- ``two_requests`` (design a): ``product_cgan`` answers the images, then the worker sends them to
  ``quality_judge`` in a second request.
- ``ensemble`` and ``bls`` (design b): one request to a model that generates and judges:
  Triton's ensemble scheduler chaining the two models (``product_cgan_judged``, config only),
  or a python backend calling both through BLS (``product_cgan_judged_bls``, ``bls_model.py``).

``scratch_repository`` lays out a model repository with the committed ``product_cgan`` and
``quality_judge`` beside both design-(b) models, so one server serves every design.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient

from embedded.triton import DEFAULT_REPOSITORY
from quality.gate import judge_job
from quality.settings import GateSettings
from serving_contract.tensors import (
    CLIENT_DTYPES,
    PRODUCT_GENERATOR,
    QUALITY_JUDGE,
    TRITON_DTYPES,
    ModelSpec,
    TensorSpec,
)
from training.export import render_config

#: the ensemble of design (b): config only, Triton's scheduler passes IMAGE from one to the other
ENSEMBLE = "product_cgan_judged"
#: the BLS model of design (b): a python backend that calls both models
BLS = "product_cgan_judged_bls"
#: what design (b) answers: the image and the judge's outputs
JUDGED_OUTPUTS: tuple[TensorSpec, ...] = PRODUCT_GENERATOR.outputs + QUALITY_JUDGE.outputs
#: the BLS backend's source, copied as its ``model.py``
BLS_SOURCE = Path(__file__).with_name("bls_model.py")

#: one call of a design: (client, categories, colours, seeds) -> (images, probabilities, features)
Judged = tuple[np.ndarray, np.ndarray, np.ndarray]
Design = Callable[[grpcclient.InferenceServerClient, np.ndarray, np.ndarray, np.ndarray], Judged]


def judged_spec(name: str) -> ModelSpec:
    return ModelSpec(
        name=name,
        inputs=PRODUCT_GENERATOR.inputs,
        outputs=JUDGED_OUTPUTS,
        max_batch_size=PRODUCT_GENERATOR.max_batch_size,
        doc="product_cgan then quality_judge in one request",
    )


def ensemble_config() -> str:
    """``config.pbtxt`` of the ensemble: the two committed models, latest versions, chained."""

    def tensors(kind: str, specs: tuple[TensorSpec, ...]) -> str:
        def entry(t: TensorSpec) -> str:
            dims = ", ".join(map(str, t.shape))
            return f'{{ name: "{t.name}" data_type: {TRITON_DTYPES[t.dtype]} dims: [ {dims} ] }}'

        entries = ", ".join(entry(t) for t in specs)
        return f"{kind} [ {entries} ]"

    def step(model: str, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]) -> str:
        maps = [f'input_map {{ key: "{t.name}" value: "{t.name}" }}' for t in inputs]
        maps += [f'output_map {{ key: "{t.name}" value: "{t.name}" }}' for t in outputs]
        return f'{{ model_name: "{model}" model_version: -1 {" ".join(maps)} }}'

    generate = step(PRODUCT_GENERATOR.name, PRODUCT_GENERATOR.inputs, PRODUCT_GENERATOR.outputs)
    judge = step(QUALITY_JUDGE.name, QUALITY_JUDGE.inputs, QUALITY_JUDGE.outputs)
    return "\n".join(
        [
            f'name: "{ENSEMBLE}"',
            'platform: "ensemble"',
            f"max_batch_size: {PRODUCT_GENERATOR.max_batch_size}",
            tensors("input", PRODUCT_GENERATOR.inputs),
            tensors("output", JUDGED_OUTPUTS),
            f"ensemble_scheduling {{ step [ {generate}, {judge} ] }}",
            "",
        ]
    )


def scratch_repository(target: Path, source: Path = DEFAULT_REPOSITORY) -> Path:
    """``target`` (replaced) with the committed generator and judge and both design-(b) models."""
    if target.exists():
        shutil.rmtree(target)
    for spec in (PRODUCT_GENERATOR, QUALITY_JUDGE):
        shutil.copytree(source / spec.name, target / spec.name)
    (target / ENSEMBLE / "1").mkdir(parents=True)
    (target / ENSEMBLE / "config.pbtxt").write_text(ensemble_config())
    (target / BLS / "1").mkdir(parents=True)
    (target / BLS / "config.pbtxt").write_text(render_config(judged_spec(BLS), parameters={}))
    shutil.copyfile(BLS_SOURCE, target / BLS / "1" / "model.py")
    return target


def product_inputs(categories: np.ndarray, colours: np.ndarray, seeds: np.ndarray) -> list[Any]:
    arrays = {"CATEGORY": categories, "COLOUR": colours, "SEED": seeds}
    return [
        grpc_input(t.name, np.asarray(arrays[t.name], t.dtype).reshape(-1, 1), t)
        for t in PRODUCT_GENERATOR.inputs
    ]


def grpc_input(name: str, values: np.ndarray, spec: TensorSpec) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput(name, list(values.shape), CLIENT_DTYPES[spec.dtype])
    tensor.set_data_from_numpy(values)
    return tensor


def requested(specs: tuple[TensorSpec, ...]) -> list[grpcclient.InferRequestedOutput]:
    return [grpcclient.InferRequestedOutput(t.name) for t in specs]


def generate(
    client: grpcclient.InferenceServerClient, categories: np.ndarray, colours: np.ndarray, seeds: np.ndarray
) -> np.ndarray:
    """``product_cgan`` alone: what a worker gets today."""
    result = client.infer(
        PRODUCT_GENERATOR.name,
        product_inputs(categories, colours, seeds),
        outputs=requested(PRODUCT_GENERATOR.outputs),
    )
    return np.asarray(result.as_numpy("IMAGE"))


def judge(client: grpcclient.InferenceServerClient, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``quality_judge`` over uint8 images: (probabilities, features)."""
    [spec] = QUALITY_JUDGE.inputs
    result = client.infer(
        QUALITY_JUDGE.name, [grpc_input(spec.name, images, spec)], outputs=requested(QUALITY_JUDGE.outputs)
    )
    return np.asarray(result.as_numpy("PROBABILITIES")), np.asarray(result.as_numpy("FEATURES"))


def two_requests(
    client: grpcclient.InferenceServerClient, categories: np.ndarray, colours: np.ndarray, seeds: np.ndarray
) -> Judged:
    """Design (a): generate, then judge the answered images in a second request."""
    images = generate(client, categories, colours, seeds)
    return (images, *judge(client, images))


def one_request(model: str) -> Design:
    """Design (b): one request to ``model`` (the ensemble or the BLS model)."""

    def call(
        client: grpcclient.InferenceServerClient,
        categories: np.ndarray,
        colours: np.ndarray,
        seeds: np.ndarray,
    ) -> Judged:
        result = client.infer(
            model, product_inputs(categories, colours, seeds), outputs=requested(JUDGED_OUTPUTS)
        )
        return tuple(np.asarray(result.as_numpy(t.name)) for t in JUDGED_OUTPUTS)  # type: ignore[return-value]

    return call


def generate_only(
    client: grpcclient.InferenceServerClient, categories: np.ndarray, colours: np.ndarray, seeds: np.ndarray
) -> Judged:
    """The baseline: no judge (empty scores)."""
    return generate(client, categories, colours, seeds), np.empty((0,)), np.empty((0,))


def with_checks(settings: GateSettings) -> Design:
    """Design (a) followed by the gate's checks: what a worker with the gate does per job."""

    def call(
        client: grpcclient.InferenceServerClient,
        categories: np.ndarray,
        colours: np.ndarray,
        seeds: np.ndarray,
    ) -> Judged:
        images, probabilities, features = two_requests(client, categories, colours, seeds)
        judge_job(
            images, probabilities, category=int(categories[0]), colour=int(colours[0]), settings=settings
        )
        return images, probabilities, features

    return call


#: every design measured, by name
DESIGNS: dict[str, Design] = {
    "generate only (no judge)": generate_only,
    "a: two requests": two_requests,
    "b: ensemble": one_request(ENSEMBLE),
    "b: BLS": one_request(BLS),
}
#: design (a) with the gate's checks, built from the thresholds it is given
WITH_CHECKS = "a + gate checks"


def design(name: str, gate: dict[str, Any] | None = None) -> Design:
    """The design called ``name``; ``WITH_CHECKS`` runs the checks with ``GateSettings(**gate)``."""
    return with_checks(GateSettings(**(gate or {}))) if name == WITH_CHECKS else DESIGNS[name]
