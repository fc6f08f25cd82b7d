"""Design (b), BLS: a Triton python backend that generates and judges in one request.

(CATEGORY, COLOUR, SEED) -> IMAGE, PROBABILITIES, FEATURES. ``execute`` sends the whole batch
Triton handed it to ``product_cgan`` as one BLS request, then the images to ``quality_judge``,
and splits the answers back per request. If the batch fails (one invalid request), each request
is sent alone so that only the invalid one gets the error. ``bench.gate.designs`` copies this
file into a scratch model repository as ``product_cgan_judged_bls/1/model.py``; it is measured
there, not served from ``triton_models/``.
"""

from __future__ import annotations

import numpy as np
import torch
import triton_python_backend_utils as pb_utils

INPUTS = ("CATEGORY", "COLOUR", "SEED")
OUTPUTS = ("IMAGE", "PROBABILITIES", "FEATURES")


class TritonPythonModel:
    def execute(self, requests: list) -> list:
        batches = [{name: input_array(r, name) for name in INPUTS} for r in requests]
        try:
            merged = {name: np.concatenate([b[name] for b in batches]) for name in INPUTS}
            outputs = judged(merged)
        except pb_utils.TritonModelException:
            return [answer(b) for b in batches]
        sizes = np.cumsum([len(b["SEED"]) for b in batches])[:-1]
        parts = {name: np.split(values, sizes) for name, values in outputs.items()}
        return [
            pb_utils.InferenceResponse(output_tensors=[output_tensor(n, parts[n][i]) for n in OUTPUTS])
            for i in range(len(batches))
        ]


def answer(batch: dict[str, np.ndarray]) -> object:
    """One request's response, or its error, on its own."""
    try:
        outputs = judged(batch)
    except pb_utils.TritonModelException as error:
        return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error)))
    return pb_utils.InferenceResponse(output_tensors=[output_tensor(n, outputs[n]) for n in OUTPUTS])


def judged(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``product_cgan`` then ``quality_judge`` over ``batch``, through BLS."""
    images = call("product_cgan", batch, ["IMAGE"])["IMAGE"]
    scores = call("quality_judge", {"IMAGE": images}, ["PROBABILITIES", "FEATURES"])
    return {"IMAGE": images, **scores}


def call(model: str, inputs: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
    request = pb_utils.InferenceRequest(
        model_name=model,
        inputs=[output_tensor(name, values) for name, values in inputs.items()],
        requested_output_names=outputs,
    )
    response = request.exec()
    if response.has_error():
        raise pb_utils.TritonModelException(response.error().message())
    return {name: output_array(response, name) for name in outputs}


def input_array(request: object, name: str) -> np.ndarray:
    """A request's input as numpy, through DLPack (see product_cgan's backend)."""
    return torch.from_dlpack(pb_utils.get_input_tensor_by_name(request, name).to_dlpack()).numpy()


def output_array(response: object, name: str) -> np.ndarray:
    return torch.from_dlpack(pb_utils.get_output_tensor_by_name(response, name).to_dlpack()).numpy()


def output_tensor(name: str, values: np.ndarray) -> object:
    return pb_utils.Tensor.from_dlpack(name, torch.utils.dlpack.to_dlpack(torch.from_numpy(values.copy())))
