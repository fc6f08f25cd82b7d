"""Export without a server: generated configs, TorchScript fidelity, and the backends run in-process
against a fake ``triton_python_backend_utils``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from tritonclient.grpc import model_config_pb2

from serving_contract.sizing import MEASUREMENTS
from serving_contract.tensors import MODELS, PRODUCT_GENERATOR, TRITON_DTYPES, TRYON_GENERATOR, ModelSpec
from tests.fake_backend import FakeError, load_version, parse_config, product_request, request
from training.cgan.model import LATENT_DIM, Generator
from training.export import (
    BACKENDS_DIR,
    FORWARD_BATCH,
    DynamicBatching,
    ProductServing,
    export_model,
    export_product_generator,
    gpu_repository,
    instance_count_of,
    to_uint8_hwc,
    write_config,
)

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def serving() -> ProductServing:
    torch.manual_seed(0)
    generator = Generator()
    generator.train()
    with torch.no_grad():  # non-trivial running statistics, as after training
        generator(torch.randn(32, LATENT_DIM), torch.randint(0, 10, (32,)), torch.randint(0, 12, (32,)))
    return ProductServing(generator)


@pytest.mark.parametrize("spec", MODELS, ids=lambda s: s.name)
def test_config_pbtxt_is_a_triton_model_config_matching_the_spec(spec: ModelSpec, tmp_path: Path) -> None:
    config = parse_config(write_config(spec, tmp_path, latent_dim=24))
    assert (config.name, config.backend, config.max_batch_size) == (spec.name, "python", spec.max_batch_size)
    types_ = model_config_pb2.DataType

    def tensors(entries: object) -> list[tuple[str, str, tuple[int, ...]]]:
        return [(t.name, types_.Name(t.data_type), tuple(t.dims)) for t in entries]  # type: ignore[attr-defined]

    inputs = (*spec.inputs, *spec.optional_inputs)
    assert tensors(config.input) == [(t.name, TRITON_DTYPES[t.dtype], t.shape) for t in inputs]
    assert [t.optional for t in config.input] == [t in spec.optional_inputs for t in inputs]
    assert tensors(config.output) == [(t.name, TRITON_DTYPES[t.dtype], t.shape) for t in spec.outputs]
    assert list(config.dynamic_batching.preferred_batch_size) == list(DynamicBatching().preferred_batch_sizes)
    assert config.dynamic_batching.max_queue_delay_microseconds == DynamicBatching().max_queue_delay_us
    [group] = config.instance_group
    assert (group.count, model_config_pb2.ModelInstanceGroup.Kind.Name(group.kind)) == (
        instance_count_of(spec),
        "KIND_CPU",
    )
    assert config.parameters["latent_dim"].string_value == "24"
    assert config.parameters["num_categories"].string_value == "10"


def test_tryon_config_carries_the_request_limits(tmp_path: Path) -> None:
    parameters = parse_config(write_config(TRYON_GENERATOR, tmp_path, latent_dim=16)).parameters
    assert json.loads(parameters["wearable_categories"].string_value) == [0, 1, 2, 3, 4, 6]
    assert json.loads(parameters["measurement_low"].string_value) == [m.low for m in MEASUREMENTS]
    assert json.loads(parameters["measurement_high"].string_value) == [m.high for m in MEASUREMENTS]
    assert parameters["num_sizes"].string_value == "4"


def test_gpu_config_and_gpu_copy_put_every_instance_on_the_gpu(tmp_path: Path) -> None:
    config = parse_config(
        write_config(
            PRODUCT_GENERATOR, tmp_path / "a", latent_dim=8, instance_kind="KIND_GPU", instance_count=2
        )
    )
    assert [(g.count, g.kind) for g in config.instance_group] == [
        (2, model_config_pb2.ModelInstanceGroup.KIND_GPU)
    ]

    for spec in MODELS:
        write_config(spec, tmp_path / "cpu", latent_dim=8)
    (tmp_path / "cpu" / PRODUCT_GENERATOR.name / "1").mkdir()
    (tmp_path / "cpu" / PRODUCT_GENERATOR.name / "1" / "model.pt").write_bytes(b"weights")
    gpu = gpu_repository(tmp_path / "cpu", tmp_path / "gpu")
    for spec in MODELS:
        kinds = [g.kind for g in parse_config(gpu / spec.name / "config.pbtxt").instance_group]
        assert kinds == [model_config_pb2.ModelInstanceGroup.KIND_GPU]
    assert (gpu / PRODUCT_GENERATOR.name / "1" / "model.pt").read_bytes() == b"weights"


def test_to_uint8_hwc_rounds_half_to_even_and_clips() -> None:
    x = torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0, 1 / 127.5 - 1]).view(1, 3, 1, 2)
    assert to_uint8_hwc(x).permute(0, 3, 1, 2).flatten().tolist() == [0, 0, 128, 255, 255, 1]


def test_torchscript_model_reproduces_the_eager_module(serving: ProductServing, tmp_path: Path) -> None:
    model_dir = export_product_generator(serving.generator, tmp_path)
    scripted = torch.jit.load(str(model_dir / "1" / "model.pt"))
    source = (BACKENDS_DIR / "product_cgan.py").read_text()
    assert (model_dir / "1" / "model.py").read_text() == source
    for n in (1, 5, 16, 5):  # new and repeated batch sizes (TorchScript re-profiles on new shapes)
        z, category, colour = (
            torch.randn(n, LATENT_DIM),
            torch.randint(0, 10, (n,)),
            torch.randint(0, 12, (n,)),
        )
        with torch.inference_mode():
            want, got = serving(z, category, colour), scripted(z, category, colour)
        assert got.dtype == torch.uint8 and got.shape == (n, 32, 32, 3)
        assert torch.equal(got, want)


# --- the backends in-process, against a fake triton_python_backend_utils ---------------------------


def load_backend(model_dir: Path, spec: ModelSpec, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Version 1 of ``model_dir`` (``spec``'s model folder), in-process (``tests.fake_backend``)."""
    assert model_dir.name == spec.name
    return load_version(model_dir / "1", monkeypatch)


def test_product_backend_answers_each_request_and_refuses_the_bad_one_alone(
    serving: ProductServing, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = load_backend(
        export_product_generator(serving.generator, tmp_path), PRODUCT_GENERATOR, monkeypatch
    )
    good_a, bad, good_b = (
        product_request([1, 2], [3, 4], [10, 11]),
        product_request([12], [0], [5]),
        product_request([9], [11], [12]),
    )
    responses = backend.execute([good_a, bad, good_b])
    assert responses[1].error.message == "CATEGORY[0]=12 outside [0, 10)"
    assert responses[1].error.code == FakeError.INVALID_ARG
    seeds = [10, 11, 12]
    z = torch.stack([torch.randn(LATENT_DIM, generator=torch.Generator().manual_seed(s)) for s in seeds])
    with torch.inference_mode():
        want = serving(z, torch.tensor([1, 2, 9]), torch.tensor([3, 4, 11])).numpy()
    assert responses[0].error is None and np.array_equal(responses[0].outputs[0].array, want[:2])
    assert responses[2].error is None and np.array_equal(responses[2].outputs[0].array, want[2:])


def test_product_backend_runs_every_forward_on_exactly_forward_batch_rows(
    serving: ProductServing, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = load_backend(
        export_product_generator(serving.generator, tmp_path), PRODUCT_GENERATOR, monkeypatch
    )
    assert backend.forward_batch == FORWARD_BATCH
    seen: list[int] = []
    model = backend.model

    def spy(z: torch.Tensor, category: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
        seen.append(len(z))
        return model(z, category, colour)

    backend.model = spy
    small = [product_request([1], [2], [3]), product_request([0, 1], [0, 1], [4, 5])]
    assert [r.outputs[0].array.shape[0] for r in backend.execute(small)] == [1, 2]
    assert seen == [FORWARD_BATCH]
    seen.clear()
    many = FORWARD_BATCH + 3
    large = [product_request([1] * many, [2] * many, list(range(many)))]
    assert backend.execute(large)[0].outputs[0].array.shape[0] == many
    assert seen == [FORWARD_BATCH, FORWARD_BATCH]


class GarmentUpscale(nn.Module):
    """A trivial try-on module: the garment at 64x64, darkened by the noise's first component."""

    def forward(
        self,
        z: torch.Tensor,
        measurements: torch.Tensor,
        size: torch.Tensor,
        category: torch.Tensor,
        garment: torch.Tensor,
    ) -> torch.Tensor:
        x = F.interpolate(garment.permute(0, 3, 1, 2).float() / 127.5 - 1.0, scale_factor=2.0)
        return to_uint8_hwc(torch.tanh(x - z[:, :1, None, None].abs()))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"CATEGORY": 8}, "CATEGORY[0]=8 is not wearable: try-on takes [0, 1, 2, 3, 4, 6]"),
        ({"SIZE": -1}, "SIZE[0]=-1 outside [0, 4)"),
        (
            {"MEASUREMENTS": (144.0, 70.0, 96.0, 82.0, 100.0)},
            "MEASUREMENTS[0][0]=144.0 (height cm) outside [145.0, 205.0]",
        ),
        ({"SEED": -1}, "SEED[0]=-1 must be >= 0"),
    ],
)
def test_tryon_backend_refuses_out_of_contract_requests(
    change: dict, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = (
        torch.randn(2, 4),
        torch.full((2, 5), 100.0),
        torch.tensor([0, 1]),
        torch.tensor([0, 1]),
        torch.zeros(2, 32, 32, 3, dtype=torch.uint8),
    )
    model_dir = export_model(
        TRYON_GENERATOR, GarmentUpscale(), tmp_path, 1, latent_dim=4, example_inputs=example
    )
    backend = load_backend(model_dir, TRYON_GENERATOR, monkeypatch)
    arrays: dict[str, np.ndarray] = {
        "MEASUREMENTS": np.array([[172.0, 70.0, 96.0, 82.0, 100.0]], np.float32),
        "SIZE": np.array([[1]], np.int32),
        "CATEGORY": np.array([[6]], np.int32),
        "GARMENT": np.full((1, 32, 32, 3), 200, np.uint8),
        "SEED": np.array([[3]], np.int64),
    }
    [good] = backend.execute([request(**arrays)])
    assert good.error is None and good.outputs[0].array.shape == (1, 64, 64, 3)
    for name, value in change.items():
        arrays[name] = np.array([value], arrays[name].dtype).reshape(arrays[name].shape)
    [refused] = backend.execute([request(**arrays)])
    assert refused.error.message == message
