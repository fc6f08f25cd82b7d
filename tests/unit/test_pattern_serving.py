"""The pattern condition on the serving side, without a server: the export of a generator trained
with patterns (its manifest lists them, its TorchScript takes ``pattern``), and ``product_cgan``'s
backend, which requires ``PATTERN`` of a version with patterns, range-checks it, and refuses it
from a version without. Through the real Triton: tests/integration/test_pattern_version_triton.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from tritonclient.grpc.model_config_pb2 import DataType

from bench.determinism.invariance import failures
from embedded.triton import DEFAULT_REPOSITORY
from serving_contract.manifest import default_manifest, read_manifest
from serving_contract.patterns import NUM_PATTERNS, PATTERNS
from serving_contract.tensors import PRODUCT_GENERATOR, empty_batch
from tests.catalog_fixture import write_catalog
from tests.catalog_versions import committed_repository, train_tiny
from tests.fake_backend import FakeError, load_version, parse_config, product_request
from training import checkpoints
from training.catalog.export import ExportError, export_catalog_cgan
from training.catalog.validate import load_conditions
from training.cgan.model import LATENT_DIM, Generator
from training.export import (
    BACKENDS_DIR,
    FORWARD_BATCH,
    ProductServing,
    default_patterns,
    export_product_generator,
    patterned_manifest,
    write_config,
)

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def generator() -> Generator:
    """A small generator conditioned on the six patterns, with non-trivial batch-norm statistics."""
    torch.manual_seed(0)
    model = Generator(16, num_patterns=NUM_PATTERNS)
    with torch.no_grad():
        for _ in range(3):
            n = 32
            model(
                torch.randn(n, LATENT_DIM),
                torch.randint(0, 10, (n,)),
                torch.randint(0, 12, (n,)),
                torch.randint(0, NUM_PATTERNS, (n,)),
            )
    return model.eval()


@pytest.fixture(scope="module")
def exported(generator: Generator, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The patterned generator exported as version 1 of a scratch repository."""
    return export_product_generator(generator, tmp_path_factory.mktemp("patterned")) / "1"


def noise(seeds: list[int]) -> torch.Tensor:
    return torch.stack([torch.randn(LATENT_DIM, generator=torch.Generator().manual_seed(s)) for s in seeds])


# --- export ---------------------------------------------------------------------------------------


def test_a_patterned_export_lists_its_patterns_and_its_torchscript_takes_pattern(
    generator: Generator, exported: Path
) -> None:
    manifest = read_manifest(exported)
    assert manifest.conditions.pattern_names() == tuple(p.name for p in PATTERNS)
    assert [t.name for t in manifest.inputs] == ["CATEGORY", "COLOUR", "PATTERN", "SEED"]
    assert (
        manifest.tensor("PATTERN").description
        == f"pattern index in [0, {NUM_PATTERNS}), required by this version"
    )
    assert (exported / "model.py").read_text() == (BACKENDS_DIR / "product_cgan.py").read_text()
    scripted = torch.jit.load(str(exported / "model.pt"))
    serving = ProductServing(generator)
    z, category, colour = noise([1, 2, 3, 4]), torch.tensor([0, 3, 5, 9]), torch.tensor([1, 4, 7, 11])
    with torch.inference_mode():
        plain, dotted = (scripted(z, category, colour, torch.full((4,), p)) for p in (0, 3))
        assert torch.equal(dotted, serving(z, category, colour, torch.full((4,), 3)))
        assert not torch.equal(plain, dotted)  # the pattern reaches the generator
        with pytest.raises(RuntimeError):
            scripted(z, category, colour)


def test_export_refuses_a_manifest_whose_patterns_disagree_with_the_generator(
    generator: Generator, tmp_path: Path
) -> None:
    plain = default_manifest(PRODUCT_GENERATOR.name).model_copy(update={"latent_dim": LATENT_DIM})
    with pytest.raises(ValueError, match="the generator takes 6 patterns; the manifest lists 0 and lacks"):
        export_product_generator(generator, tmp_path, manifest=plain)
    with pytest.raises(ValueError, match="the generator takes 0 patterns; the manifest lists 6 and has"):
        export_product_generator(
            Generator(16), tmp_path, manifest=patterned_manifest(plain, default_patterns())
        )


def test_empty_batch_leaves_optional_inputs_out_unless_named() -> None:
    assert list(empty_batch(PRODUCT_GENERATOR, 2)) == ["CATEGORY", "COLOUR", "SEED"]
    batch = empty_batch(PRODUCT_GENERATOR, 2, optional=["PATTERN"])
    assert (batch["PATTERN"].dtype, batch["PATTERN"].shape) == (np.int32, (2, 1))
    with pytest.raises(KeyError, match="product_cgan has no optional input SIZE"):
        empty_batch(PRODUCT_GENERATOR, 2, optional=["SIZE"])


def test_the_committed_config_declares_pattern_optional() -> None:
    config = parse_config(DEFAULT_REPOSITORY / "product_cgan" / "config.pbtxt")
    [pattern] = [t for t in config.input if t.name == "PATTERN"]
    assert (DataType.Name(pattern.data_type), list(pattern.dims), pattern.optional) == (
        "TYPE_INT32",
        [1],
        True,
    )
    assert [t.name for t in config.input if not t.optional] == ["CATEGORY", "COLOUR", "SEED"]


# --- the backend ------------------------------------------------------------------------------------


def test_a_patterned_version_requires_pattern_in_range_and_answers_the_rest_of_the_batch(
    generator: Generator, exported: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = load_version(exported, monkeypatch)
    requests = [
        product_request([1, 2], [3, 4], [10, 11], patterns=[0, 5]),
        product_request([1], [3], [12]),  # no PATTERN
        product_request([1, 2], [3, 4], [13, 14], patterns=[2, 6]),
        product_request([9], [11], [15], patterns=[4]),
    ]
    responses = backend.execute(requests)
    assert [r.error.message for r in responses if r.error is not None] == [
        "PATTERN missing: product_cgan v1 requires one per item",
        "PATTERN[1]=6 outside [0, 6)",
    ]
    assert {r.error.code for r in responses if r.error is not None} == {FakeError.INVALID_ARG}
    with torch.inference_mode():
        want = ProductServing(generator)(
            noise([10, 11, 15]), torch.tensor([1, 2, 9]), torch.tensor([3, 4, 11]), torch.tensor([0, 5, 4])
        ).numpy()
    assert np.array_equal(responses[0].outputs[0].array, want[:2])
    assert np.array_equal(responses[3].outputs[0].array, want[2:])


def test_a_version_without_patterns_refuses_pattern_and_answers_the_rest_of_the_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = load_version(DEFAULT_REPOSITORY / "product_cgan" / "1", monkeypatch)  # the committed v1
    with_pattern, without = product_request([3], [7], [42], patterns=[0]), product_request([3], [7], [42])
    refused, answered = backend.execute([with_pattern, without])
    assert refused.error.message == "product_cgan v1 has no patterns: send no PATTERN"
    assert refused.error.code == FakeError.INVALID_ARG
    assert answered.error is None and answered.outputs[0].array.shape == (1, 32, 32, 3)


def test_a_patterned_version_runs_every_forward_on_forward_batch_rows_with_the_patterns(
    exported: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = load_version(exported, monkeypatch)
    seen: list[tuple[int, ...]] = []
    model = backend.model

    def spy(*inputs: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(len(t) for t in inputs))
        return model(*inputs)

    backend.model = spy
    many = FORWARD_BATCH + 3
    [response] = backend.execute([product_request([1] * many, [2] * many, list(range(many)), [3] * many)])
    assert response.outputs[0].array.shape[0] == many
    assert seen == [(FORWARD_BATCH,) * 4, (FORWARD_BATCH,) * 4]  # z, category, colour, pattern


def test_a_patterned_item_gets_the_same_bytes_alone_and_at_any_place_in_any_batch(
    exported: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = load_version(exported, monkeypatch)

    def serve(indices: list[int]) -> torch.Tensor:
        index = torch.tensor(indices)
        seeds = np.asarray([1000 + 7919 * i for i in indices], dtype=np.int64)
        return backend.forward(index % 10, index % 12, index % NUM_PATTERNS, seeds=seeds)

    found, checked, _ = failures(serve, items=24)
    assert checked > 100
    assert found == []


# --- a catalog with patterns, trained by the catalog trainer ------------------------------------------


@pytest.fixture(scope="module")
def patterned_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny real run of the catalog trainer on the catalog with three patterns."""
    return train_tiny(tmp_path_factory.mktemp("patterned-run"), patterns=True)


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """A scratch model repository holding the committed version 1 (config.pbtxt with PATTERN)."""
    return committed_repository(tmp_path / "repository")


def test_a_patterned_catalog_exports_a_version_whose_backend_takes_its_patterns(
    patterned_run: Path, repository: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    version_dir = export_catalog_cgan(patterned_run, repository)
    assert version_dir == repository / "product_cgan" / "2"
    manifest = read_manifest(version_dir)
    assert manifest.conditions.pattern_names() == ("solid", "stripes", "dots")
    assert [t.name for t in manifest.inputs] == ["CATEGORY", "COLOUR", "PATTERN", "SEED"]
    assert "category + colour + pattern + seed" in manifest.description
    assert "| 1 | `stripes` | horizontal stripes |" in (version_dir / "MODEL_CARD.md").read_text()
    backend = load_version(version_dir, monkeypatch)
    solid, dots, bad = backend.execute(
        [
            product_request([2], [1], [7], [0]),
            product_request([2], [1], [7], [2]),
            product_request([2], [1], [7], [3]),
        ]
    )
    assert solid.error is None and solid.outputs[0].array.shape == (1, 32, 32, 3)
    assert not np.array_equal(solid.outputs[0].array, dots.outputs[0].array)  # the pattern is used
    assert bad.error.message == "PATTERN[0]=3 outside [0, 3)"


def test_a_catalog_with_patterns_is_not_exported_from_a_generator_trained_without_them(
    tmp_path: Path, repository: Path
) -> None:
    """A checkpoint the trainer left before it knew patterns: trained on the catalog's categories
    and colours only, its conditions (as the catalog's ``conditions.json`` now reads) list patterns."""
    run_dir = train_tiny(tmp_path)
    write_catalog(tmp_path / "now", patterns=True)
    state = torch.load(checkpoints.load_path(run_dir), weights_only=False)
    state["conditions"] = load_conditions(tmp_path / "now").model_dump(mode="json")
    checkpoints.save(run_dir, state)
    with pytest.raises(
        ExportError, match="lists 3 patterns but the checkpoint's generator was trained without"
    ):
        export_catalog_cgan(run_dir, repository)
    assert not (repository / "product_cgan" / "2").exists()


def test_a_patterned_version_is_refused_by_a_config_without_a_pattern_input(
    patterned_run: Path, tmp_path: Path
) -> None:
    before = dataclasses.replace(PRODUCT_GENERATOR, optional_inputs=())  # a config written before PATTERN
    write_config(before, tmp_path / "repository", latent_dim=LATENT_DIM)
    with pytest.raises(ExportError, match="declares no PATTERN input"):
        export_catalog_cgan(patterned_run, tmp_path / "repository")
