"""``quality_judge`` without a server: its export (config, TorchScript, backend source) and its
backend in-process against the fake ``triton_python_backend_utils`` of ``test_export``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from serving_contract.tensors import JUDGE_FEATURE_DIM, QUALITY_JUDGE
from tests.unit.test_export import FakeError, load_backend, parse_config, request
from training.evaluate.classifier import judge_images, load_judge
from training.export import BACKENDS_DIR, FORWARD_BATCH, JUDGE_WEIGHTS, JudgeServing, export_quality_judge

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_quality_judge(tmp_path_factory.mktemp("repository"))


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """Product-like images: white backgrounds with coloured blocks of varied size and place."""
    rng = np.random.default_rng(0)
    out = np.full((13, 32, 32, 3), 255, np.uint8)
    for image in out:
        top, left = rng.integers(2, 14, size=2)
        image[top : top + rng.integers(8, 18), left : left + rng.integers(8, 18)] = rng.integers(0, 255, 3)
    return out


def test_export_writes_config_backend_and_torchscript_from_the_spec(exported: Path) -> None:
    config = parse_config(exported / "config.pbtxt")
    assert (config.name, config.backend, config.max_batch_size) == ("quality_judge", "python", 64)
    assert [t.name for t in config.input] == ["IMAGE"] and list(config.input[0].dims) == [32, 32, 3]
    assert [(t.name, list(t.dims)) for t in config.output] == [
        ("PROBABILITIES", [10]),
        ("FEATURES", [JUDGE_FEATURE_DIM]),
    ]
    assert config.parameters["forward_batch"].string_value == str(FORWARD_BATCH)
    assert "latent_dim" not in config.parameters  # a judge draws no noise
    assert (exported / "1" / "model.py").read_text() == (BACKENDS_DIR / "quality_judge.py").read_text()


def test_torchscript_judge_agrees_with_the_evaluation_judge(exported: Path, images: np.ndarray) -> None:
    scripted = torch.jit.load(str(exported / "1" / "model.pt"))
    judge, _ = load_judge(JUDGE_WEIGHTS)
    with torch.inference_mode():
        probabilities, features = scripted(torch.from_numpy(images))
        eager_probabilities, eager_features = JudgeServing(judge)(torch.from_numpy(images))
    predicted, evaluation_features = judge_images(judge, images)
    assert torch.equal(probabilities, eager_probabilities) and torch.equal(features, eager_features)
    assert np.array_equal(probabilities.argmax(1).numpy(), predicted)
    np.testing.assert_allclose(features.numpy(), evaluation_features, atol=1e-4)
    np.testing.assert_allclose(probabilities.sum(1).numpy(), 1.0, rtol=1e-5)


def test_judge_backend_answers_each_request_and_refuses_an_empty_one_alone(
    exported: Path, images: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = load_backend(exported, QUALITY_JUDGE, monkeypatch)
    responses = backend.execute(
        [request(IMAGE=images[:3]), request(IMAGE=images[:0]), request(IMAGE=images[3:5])]
    )
    assert responses[1].error.message == "IMAGE has no items: a request needs at least one"
    assert responses[1].error.code == FakeError.INVALID_ARG
    alone = backend.execute([request(IMAGE=images[:5])])[0]
    assert [t.name for t in responses[0].outputs] == ["PROBABILITIES", "FEATURES"]
    for k, rows in ((0, slice(0, 3)), (2, slice(3, 5))):
        for got, want in zip(responses[k].outputs, alone.outputs, strict=True):
            assert got.array.dtype == np.float32 and np.array_equal(got.array, want.array[rows])


def test_an_images_scores_do_not_depend_on_its_batch(
    exported: Path, images: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = load_backend(exported, QUALITY_JUDGE, monkeypatch)
    seen: list[int] = []
    model = backend.model

    def spy(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seen.append(len(rows))
        return model(rows)

    backend.model = spy
    together = backend.forward(torch.from_numpy(images))
    assert seen == [FORWARD_BATCH] * -(-len(images) // FORWARD_BATCH)  # 13 images, the last chunk padded
    for i in (0, 7, 12):
        alone = backend.forward(torch.from_numpy(images[i : i + 1]))
        assert torch.equal(alone[0][0], together[0][i]) and torch.equal(alone[1][0], together[1][i])
