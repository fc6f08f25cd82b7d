"""Training on a catalog folder: a tiny cGAN trains for a few steps, exports as the next version
with its manifest and model card, its backend takes the catalog's vocabulary from the manifest,
and a resumed run ends where an uninterrupted one does; the try-on cVAE trains on the catalog's
wearable garments."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import types
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from serving_contract.manifest import read_manifest
from tests.catalog_fixture import BAD_ROWS, GOOD_ROWS, write_catalog
from training.catalog.command import (
    CatalogCvaeRun,
    CatalogRefused,
    CatalogRun,
    run_catalog_cgan,
    run_catalog_cvae,
)
from training.catalog.export import ExportError, export_catalog_cgan
from training.catalog.train_cgan import CatalogCganConfig, ema_decay
from training.catalog.validate import CatalogError
from training.cvae.train import CvaeConfig

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")

TINY = CatalogCganConfig(
    epochs=2, batch_size=4, generator_width=16, discriminator_width=4, steps_per_epoch=2, seed=3
)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    write_catalog(tmp_path / "catalog")
    return tmp_path / "catalog"


def job(catalog: Path, run_dir: Path, **changes: object) -> CatalogRun:
    base = CatalogRun(catalog, Path("attributes.csv"), run_dir, TINY, skip_invalid=True, command="test")
    return replace(base, **changes)  # type: ignore[arg-type]


def load_backend(version_dir: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    """The version's model.py, initialised as Triton would, against a minimal fake pb_utils."""

    class Tensor:
        def __init__(self, name: str, array: np.ndarray) -> None:
            self.name, self.array = name, array

        def to_dlpack(self) -> object:
            return torch.utils.dlpack.to_dlpack(torch.from_numpy(np.ascontiguousarray(self.array)))

        @staticmethod
        def from_dlpack(name: str, capsule: object) -> Tensor:
            return Tensor(name, torch.from_dlpack(capsule).numpy())

    class Error:
        INVALID_ARG = 3

        def __init__(self, message: str, code: int = 0) -> None:
            self.message = message

    fake = types.SimpleNamespace(
        Tensor=Tensor,
        TritonError=Error,
        InferenceResponse=lambda output_tensors=None, error=None: types.SimpleNamespace(
            outputs=output_tensors, error=error
        ),
        get_input_tensor_by_name=lambda request, name: Tensor(name, request[name]),
    )
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", fake)
    spec = importlib.util.spec_from_file_location("catalog_backend", version_dir / "model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = text_format.Parse(
        (version_dir.parent / "config.pbtxt").read_text(), model_config_pb2.ModelConfig()
    )
    parameters = {key: {"string_value": value.string_value} for key, value in config.parameters.items()}
    backend = module.TritonPythonModel()
    backend.initialize({"model_config": json.dumps({"parameters": parameters}), "model_instance_kind": "CPU"})
    return backend


def ask(backend: object, category: int, colour: int) -> Any:
    request = {
        "CATEGORY": np.array([[category]], np.int32),
        "COLOUR": np.array([[colour]], np.int32),
        "SEED": np.array([[7]], np.int64),
    }
    [response] = backend.execute([request])  # type: ignore[attr-defined]
    return response


def test_catalog_trains_and_exports_the_next_version_with_manifest_and_card(
    catalog: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository = tmp_path / "repository"
    shutil.copytree("triton_models/product_cgan", repository / "product_cgan")  # version 1 exists
    committed_config = (repository / "product_cgan" / "config.pbtxt").read_bytes()
    run_dir = tmp_path / "run"

    version_dir = run_catalog_cgan(job(catalog, run_dir, export_to=repository))

    assert version_dir == repository / "product_cgan" / "2"
    assert (run_dir / "samples" / "epoch_001.png").exists() and (
        run_dir / "samples" / "epoch_002.png"
    ).exists()
    assert len((run_dir / "skipped_rows.csv").read_text().splitlines()) == 1 + len(BAD_ROWS)
    manifest = read_manifest(version_dir)
    assert manifest.conditions.category_slugs() == ("scarf", "tee", "skirt")
    assert manifest.conditions.colour_names() == ("teal", "coral")
    assert (manifest.image_size, manifest.tensor("IMAGE").shape) == (32, (32, 32, 3))
    assert (manifest.provenance.images, manifest.provenance.skipped_rows) == (GOOD_ROWS, len(BAD_ROWS))
    assert manifest.provenance.settings["generator_width"] == 16
    card = (version_dir / "MODEL_CARD.md").read_text()
    assert "# product_cgan version 2" in card and "| 0 | `scarf` | Scarf | accessories | no |" in card
    assert "![sample grid](samples.png)" in card and (version_dir / "samples.png").exists()
    assert "| 2 |" in card  # the metrics table has the second epoch
    # the model folder's config (shared with version 1) is kept as it was
    assert (repository / "product_cgan" / "config.pbtxt").read_bytes() == committed_config
    assert read_manifest(repository / "product_cgan" / "1").conditions.category_slugs()[0] == "t_shirt"

    backend = load_backend(version_dir, monkeypatch)
    image = ask(backend, 2, 1)
    assert image.error is None and image.outputs[0].array.shape == (1, 32, 32, 3)
    assert ask(backend, 3, 0).error.message == "CATEGORY[0]=3 outside [0, 3)"
    assert ask(backend, 0, 2).error.message == "COLOUR[0]=2 outside [0, 2)"


def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(catalog: Path, tmp_path: Path) -> None:
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run_catalog_cgan(job(catalog, straight))
    run_catalog_cgan(job(catalog, resumed, config=replace(TINY, epochs=1)))
    with pytest.raises(FileExistsError, match="--resume"):
        run_catalog_cgan(job(catalog, resumed))
    run_catalog_cgan(job(catalog, resumed, resume=True))
    want = torch.load(straight / "checkpoint.pt", weights_only=False)
    got = torch.load(resumed / "checkpoint.pt", weights_only=False)
    assert got["epoch"] == want["epoch"] == 2
    for part in ("generator", "discriminator", "ema"):
        assert want[part].keys() == got[part].keys()
        assert all(torch.equal(want[part][k], got[part][k]) for k in want[part]), part
    assert (resumed / "metrics.csv").read_text().count("\n") == 3  # header + two epochs


def test_resume_refuses_a_changed_catalog_or_changed_settings(catalog: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_catalog_cgan(job(catalog, run_dir, config=replace(TINY, epochs=1)))
    with pytest.raises(ValueError, match=r"settings changed.*generator_width"):
        run_catalog_cgan(job(catalog, run_dir, resume=True, config=replace(TINY, generator_width=32)))
    (catalog / "attributes.csv").write_text(
        "\n".join((catalog / "attributes.csv").read_text().splitlines()[:-3]) + "\n"
    )
    with pytest.raises(ValueError, match="rows or images changed"):
        run_catalog_cgan(job(catalog, run_dir, resume=True))


def test_invalid_rows_stop_the_run_before_training_without_skip_invalid(
    catalog: Path, tmp_path: Path
) -> None:
    with pytest.raises(CatalogRefused, match=f"{len(BAD_ROWS)} invalid row"):
        run_catalog_cgan(job(catalog, tmp_path / "run", skip_invalid=False))
    assert not (tmp_path / "run").exists()


def test_64_px_version_gets_its_own_repository_not_the_32_px_model(catalog: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    config = replace(TINY, resolution=64, epochs=1, steps_per_epoch=1)
    run_catalog_cgan(job(catalog, run_dir, config=config, min_side=40))
    shutil.copytree("triton_models/product_cgan", tmp_path / "repo32" / "product_cgan")
    with pytest.raises(
        ExportError, match=r"serves 32x32 images.*64 px version needs another model repository"
    ):
        export_catalog_cgan(run_dir, tmp_path / "repo32")
    version_dir = export_catalog_cgan(run_dir, tmp_path / "repo64")
    assert version_dir == tmp_path / "repo64" / "product_cgan" / "1"
    assert "dims: [ 64, 64, 3 ]" in (version_dir.parent / "config.pbtxt").read_text()
    model = torch.jit.load(str(version_dir / "model.pt"))
    with torch.inference_mode():
        images = model(torch.randn(2, 64), torch.tensor([0, 2]), torch.tensor([1, 0]))
    assert images.shape == (2, 64, 64, 3) and images.dtype == torch.uint8
    assert read_manifest(version_dir).image_size == 64


def test_tryon_cvae_trains_on_the_catalogs_wearable_garments_and_exports(
    catalog: Path, tmp_path: Path
) -> None:
    repository = tmp_path / "repository"
    shutil.copytree("triton_models/tryon_cvae", repository / "tryon_cvae")
    run = CatalogCvaeRun(
        catalog,
        Path("attributes.csv"),
        tmp_path / "run",
        CvaeConfig(epochs=1, train_examples=64, batch_size=64, data_dir=str(tmp_path / "data")),
        fits_like={"tee": "t_shirt"},
        held_out_examples=8,
        skip_invalid=True,
        export_to=repository,
    )
    with pytest.raises(CatalogError, match="wearable categories skirt have no try-on shape"):
        run_catalog_cvae(run)
    version_dir = run_catalog_cvae(replace(run, fits_like={"tee": "t_shirt", "skirt": "dress"}))
    assert version_dir == repository / "tryon_cvae" / "2"
    manifest = read_manifest(version_dir)
    wearable_rows = sum(1 for i in range(GOOD_ROWS) if i % 3 != 0)  # tee and skirt, not scarf
    assert manifest.provenance.images is not None and manifest.provenance.images < wearable_rows
    assert "wearable garments" in manifest.provenance.data and manifest.measurements
    assert (version_dir / "MODEL_CARD.md").exists() and (version_dir / "samples.png").exists()
    model = torch.jit.load(str(version_dir / "model.pt"))
    with torch.inference_mode():
        image = model(
            torch.zeros(1, 16),
            torch.tensor([[172.0, 70.0, 96.0, 82.0, 100.0]]),
            torch.tensor([1]),
            torch.tensor([3]),
            torch.zeros(1, 32, 32, 3, dtype=torch.uint8),
        )
    assert image.shape == (1, 64, 64, 3)


def test_ema_decay_warms_up_so_a_short_run_exports_trained_weights() -> None:
    assert ema_decay(0.999, 0) == pytest.approx(0.1)
    assert ema_decay(0.999, 90) == pytest.approx(0.91)
    assert ema_decay(0.999, 100_000) == 0.999
