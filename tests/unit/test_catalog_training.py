"""Training on a catalog folder: a tiny cGAN trains for a few steps, exports as the next version
with its manifest and model card, its backend takes the catalog's vocabulary from the manifest,
and a resumed run ends where an uninterrupted one does; a catalog with patterns trains the pattern
condition; the try-on cVAE trains on the catalog's wearable garments."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from serving_contract.manifest import read_manifest
from tests.catalog_fixture import BAD_ROWS, GOOD_ROWS, PATTERNS, write_catalog
from tests.fake_backend import load_version, product_request
from training.catalog.command import (
    CatalogCvaeRun,
    CatalogRefused,
    CatalogRun,
    run_catalog_cgan,
    run_catalog_cvae,
)
from training.catalog.dataset import load_images
from training.catalog.export import ExportError, export_catalog_cgan
from training.catalog.train_cgan import CatalogCganConfig, ema_decay, sample_sheet, sheet_rows
from training.catalog.validate import CatalogError, check_catalog
from training.cgan.model import Generator
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


def ask(backend: object, category: int, colour: int) -> Any:
    [response] = backend.execute([product_request([category], [colour], [7])])  # type: ignore[attr-defined]
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

    backend = load_version(version_dir, monkeypatch)
    image = ask(backend, 2, 1)
    assert image.error is None and image.outputs[0].array.shape == (1, 32, 32, 3)
    assert ask(backend, 3, 0).error.message == "CATEGORY[0]=3 outside [0, 3)"
    assert ask(backend, 0, 2).error.message == "COLOUR[0]=2 outside [0, 2)"


@pytest.mark.parametrize("patterns", [False, True], ids=["plain", "patterned"])
def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(
    catalog: Path, tmp_path: Path, patterns: bool
) -> None:
    if patterns:
        write_catalog(catalog, patterns=True)  # over the plain one: conditions.json and CSV
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run_catalog_cgan(job(catalog, straight))
    run_catalog_cgan(job(catalog, resumed, config=replace(TINY, epochs=1)))
    with pytest.raises(FileExistsError, match="--resume"):
        run_catalog_cgan(job(catalog, resumed))
    run_catalog_cgan(job(catalog, resumed, resume=True))
    want = torch.load(straight / "checkpoint.pt", weights_only=False)
    got = torch.load(resumed / "checkpoint.pt", weights_only=False)
    assert got["epoch"] == want["epoch"] == 2
    assert ("pattern.weight" in want["generator"]) is patterns
    for part in ("generator", "discriminator", "ema"):
        assert want[part].keys() == got[part].keys()
        assert all(torch.equal(want[part][k], got[part][k]) for k in want[part]), part
    assert (resumed / "metrics.csv").read_text().count("\n") == 3  # header + two epochs


def test_a_patterned_catalog_trains_the_pattern_condition_and_the_card_lists_the_patterns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_catalog(tmp_path / "catalog", patterns=True)
    check = check_catalog(tmp_path / "catalog", Path("attributes.csv"), min_side=32)
    data = load_images(check, 32, quiet=True)
    assert data.patterns is not None  # each row's pattern, as the CSV names it
    assert data.patterns.tolist() == [(i // 2) % len(PATTERNS) for i in range(GOOD_ROWS)]
    repository = tmp_path / "repository"
    shutil.copytree("triton_models/product_cgan", repository / "product_cgan")
    run_dir = tmp_path / "run"

    version_dir = run_catalog_cgan(job(tmp_path / "catalog", run_dir, export_to=repository))

    assert version_dir == repository / "product_cgan" / "2"
    state = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    # the pattern embedding of each net (the discriminator's under spectral norm), one row per pattern
    assert state["generator"]["pattern.weight"].shape[0] == state["ema"]["pattern.weight"].shape[0] == 3
    assert state["discriminator"]["pattern.weight_orig"].shape[0] == 3
    generator = Generator(16, num_categories=3, num_colours=2, num_patterns=3)
    generator.load_state_dict(state["ema"])
    conditions = check.conditions
    sheet = sample_sheet(generator, conditions, torch.device("cpu"))
    assert sheet.shape == (3 * 3 * 2, 32, 32, 3)  # (category, pattern) rows x colour columns
    assert sheet_rows(conditions)[:4] == ["scarf solid", "scarf stripes", "scarf dots", "tee solid"]
    assert not np.array_equal(sheet[0], sheet[2])  # scarf teal: solid and stripes differ
    card = (version_dir / "MODEL_CARD.md").read_text()
    assert "## Conditions (3 categories, 2 colours, 3 patterns)" in card
    assert "| 2 | `dots` | spots on a grid |" in card and "names no pattern gets `solid`" in card
    backend = load_version(version_dir, monkeypatch)
    [image] = backend.execute([product_request([2], [1], [7], [1])])
    assert image.error is None and image.outputs[0].array.shape == (1, 32, 32, 3)


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
