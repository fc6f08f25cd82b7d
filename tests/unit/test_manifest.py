"""The model manifest: defaults say what the constants say, files round-trip, bad vocabularies
are refused naming the field, and every export (committed versions included) carries one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from serving_contract.manifest import (
    MANIFEST_NAME,
    Conditions,
    default_manifest,
    read_manifest,
    write_manifest,
)
from serving_contract.palette import PALETTE
from serving_contract.sizing import MEASUREMENTS, SIZE_CHART
from serving_contract.taxonomy import CATEGORIES
from serving_contract.tensors import MODELS, PRODUCT_GENERATOR
from training.cgan.model import LATENT_DIM, Generator
from training.export import export_product_generator

REPOSITORY = Path("triton_models")
MODEL_NAMES = [spec.name for spec in MODELS]


def test_default_product_manifest_lists_the_committed_taxonomy_palette_and_tensors() -> None:
    manifest = default_manifest("product_cgan")
    assert manifest.conditions.category_slugs() == tuple(c.slug for c in CATEGORIES)
    assert [(c.label, c.department, c.wearable) for c in manifest.conditions.categories] == [
        (c.label, c.department, c.wearable) for c in CATEGORIES
    ]
    assert [(c.name, c.rgb) for c in manifest.conditions.colours] == [(c.name, c.rgb) for c in PALETTE]
    assert [(t.name, t.dtype, t.shape) for t in manifest.inputs] == [
        (t.name, t.dtype, t.shape) for t in PRODUCT_GENERATOR.inputs
    ]
    assert (manifest.image_size, manifest.latent_dim, manifest.max_batch_size) == (32, LATENT_DIM, 64)
    assert manifest.conditions.patterns == () and manifest.measurements == ()


def test_default_tryon_manifest_carries_measurement_ranges_and_the_size_chart() -> None:
    manifest = default_manifest("tryon_cvae")
    assert [(m.name, m.unit, m.low, m.high) for m in manifest.measurements] == [
        (m.name, m.unit, m.low, m.high) for m in MEASUREMENTS
    ]
    assert [s.label for s in manifest.conditions.sizes] == [s.label for s in SIZE_CHART]
    assert manifest.image_size == 64 and manifest.tensor("GARMENT").shape == (32, 32, 3)


def test_unknown_model_has_no_default() -> None:
    with pytest.raises(KeyError, match="product_cgan, tryon_cvae, quality_judge"):
        default_manifest("nope")


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_manifest_round_trips_through_its_file(model: str, tmp_path: Path) -> None:
    manifest = default_manifest(model, version=3)
    path = write_manifest(tmp_path / model / "3", manifest)
    assert path.name == MANIFEST_NAME
    assert read_manifest(path.parent) == manifest


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_committed_versions_carry_the_default_manifest(model: str) -> None:
    assert read_manifest(REPOSITORY / model / "1") == default_manifest(model)


def test_manifest_in_another_version_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="manifest of version 1 written into folder"):
        write_manifest(tmp_path / "2", default_manifest("product_cgan"))


def test_missing_manifest_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=str(tmp_path / MANIFEST_NAME)):
        read_manifest(tmp_path)


def category(index: int, slug: str) -> dict[str, object]:
    return {"index": index, "slug": slug, "label": slug, "department": "tops", "wearable": True}


@pytest.mark.parametrize(
    ("conditions", "message"),
    [
        ({"categories": [category(0, "a"), category(2, "b")]}, r"categories\[1\] \(b\) has index 2"),
        ({"categories": [category(0, "a"), category(1, "a")]}, "slug 'a' appears twice"),
        ({"categories": [category(0, "Not A Slug")]}, "categories.0.slug"),
        ({"colours": [{"index": 0, "name": "red", "rgb": [300, 0, 0]}]}, "colours.0.rgb.0"),
        ({"patterns": [{"index": 0, "name": "dots", "extra": 1}]}, "patterns.0.extra"),
    ],
)
def test_bad_vocabularies_are_refused_naming_the_field(conditions: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Conditions.model_validate(conditions)


def test_manifest_file_with_a_bad_field_is_refused_naming_it(tmp_path: Path) -> None:
    data = default_manifest("product_cgan").model_dump(mode="json")
    data["image_size"] = 0
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(ValidationError, match="image_size"):
        read_manifest(tmp_path)


def test_export_writes_the_manifest_beside_model_py(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    export_product_generator(Generator(16), tmp_path, version=2)
    version_dir = tmp_path / "product_cgan" / "2"
    assert sorted(p.name for p in version_dir.iterdir()) == ["manifest.json", "model.pt", "model.py"]
    assert read_manifest(version_dir) == default_manifest("product_cgan", version=2)
