"""Export a catalog-trained model as a new version of a Triton model, with its manifest and card.

The version number is the next free one under ``<repository>/<model>/``. The model folder's
``config.pbtxt`` is shared by all its versions: when it exists it is kept (with any version
policy an operator added), and the new version must fit its tensors; a version at another image
size goes into another model repository (``--out``). The request limits a version's ``model.py``
checks (category, colour and pattern counts) come from the version's own ``manifest.json``; a
catalog whose conditions list patterns exports a generator that takes ``PATTERN``.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from serving_contract.manifest import (
    Conditions,
    ModelManifest,
    Provenance,
    default_manifest,
    tensor_entries,
)
from serving_contract.tensors import PRODUCT_GENERATOR, ModelSpec
from training.catalog.card import write_model_card
from training.catalog.train_cgan import CatalogCganConfig
from training.cgan.model import LATENT_DIM, Generator
from training.checkpoints import CHECKPOINT_NAME
from training.cvae.model import TryOnVAE
from training.export import (
    ProductServing,
    export_model,
    export_tryon_vae,
    patterned_manifest,
)

_DIMS = re.compile(r'name: "IMAGE"\s+data_type: \w+\s+dims: \[ ([\d, ]+) \]')
_PATTERN_INPUT = re.compile(r'name: "PATTERN"')


class ExportError(ValueError):
    """The version cannot be added where it was asked to go."""


def next_version(model_dir: Path) -> int:
    """One more than the highest numbered version folder of ``model_dir`` (1 if none)."""
    numbers = [int(p.name) for p in model_dir.glob("*") if p.is_dir() and p.name.isdigit()]
    return max(numbers, default=0) + 1


def product_spec(resolution: int) -> ModelSpec:
    """``PRODUCT_GENERATOR`` with its ``IMAGE`` output at ``resolution`` pixels."""
    outputs = tuple(
        dataclasses.replace(t, shape=(resolution, resolution, t.shape[-1])) if t.name == "IMAGE" else t
        for t in PRODUCT_GENERATOR.outputs
    )
    return dataclasses.replace(PRODUCT_GENERATOR, outputs=outputs)


def export_catalog_cgan(run_dir: Path, repository: Path, *, version: int | None = None) -> Path:
    """Export the EMA generator of ``run_dir``'s last checkpoint; returns the version folder."""
    path = run_dir / CHECKPOINT_NAME
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}: train first")
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    config = CatalogCganConfig(**state["config"])
    conditions = Conditions.model_validate(state["conditions"])
    spec = product_spec(config.resolution)
    model_dir = repository / spec.name
    config_path = model_dir / "config.pbtxt"
    keep_config = config_path.exists()
    if keep_config:
        _check_fits(config_path, config.resolution, patterns=bool(conditions.patterns))
    version = version or next_version(model_dir)
    serving = ProductServing(ema_generator(config, conditions, state["ema"]))
    manifest = catalog_manifest(version, config, conditions, state["provenance"])
    export_model(
        spec,
        serving,
        repository,
        version,
        latent_dim=LATENT_DIM,
        example_inputs=serving.example_inputs([0, 0], [0, 0]),
        manifest=manifest,
        write_model_config=not keep_config,
    )
    version_dir = model_dir / str(version)
    _copy_pictures(run_dir, version_dir)
    write_model_card(version_dir, manifest, run_dir, epochs=state["epoch"])
    return version_dir


def ema_generator(config: CatalogCganConfig, conditions: Conditions, weights: dict[str, Any]) -> Generator:
    """The checkpoint's EMA generator, conditioned on patterns exactly when the catalog lists them.

    A generator trained without the catalog's patterns is refused: served, its images would
    ignore the ``PATTERN`` every request of its version must carry.
    """
    trained_on_patterns = "pattern.weight" in weights
    if trained_on_patterns != bool(conditions.patterns):
        raise ExportError(
            f"the catalog lists {len(conditions.patterns)} patterns but the checkpoint's generator was "
            f"trained {'with' if trained_on_patterns else 'without'} a pattern condition: retrain"
        )
    generator = Generator(
        config.generator_width,
        resolution=config.resolution,
        num_categories=len(conditions.categories),
        num_colours=len(conditions.colours),
        num_patterns=len(conditions.patterns),
    )
    generator.load_state_dict(weights)
    return generator


def catalog_manifest(
    version: int,
    config: CatalogCganConfig,
    conditions: Conditions,
    provenance: dict[str, Any],
) -> ModelManifest:
    inputs, outputs = tensor_entries(PRODUCT_GENERATOR, config.resolution)
    pattern = " + pattern" if conditions.patterns else ""
    manifest = ModelManifest(
        model=PRODUCT_GENERATOR.name,
        version=version,
        description=f"conditional GAN trained on a catalog: category + colour{pattern} + seed -> "
        f"{config.resolution} px product image",
        image_size=config.resolution,
        latent_dim=LATENT_DIM,
        conditions=Conditions(categories=conditions.categories, colours=conditions.colours),
        inputs=inputs,
        outputs=outputs,
        max_batch_size=PRODUCT_GENERATOR.max_batch_size,
        provenance=Provenance(
            **provenance,
            settings=dataclasses.asdict(config),
            trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        ),
    )
    return patterned_manifest(manifest, conditions.patterns) if conditions.patterns else manifest


def _check_fits(config_path: Path, resolution: int, *, patterns: bool) -> None:
    text = config_path.read_text()
    if patterns and not _PATTERN_INPUT.search(text):
        raise ExportError(
            f"{config_path} declares no PATTERN input, which a version with patterns needs: regenerate "
            "it with training/export.py (write_config), or export into another repository (--out DIR)"
        )
    match = _DIMS.search(text)
    if match is None:
        raise ExportError(f"{config_path} declares no IMAGE output: not a product generator's config")
    dims = [int(d) for d in match.group(1).replace(" ", "").split(",")]
    if dims[:2] != [resolution, resolution]:
        raise ExportError(
            f"{config_path} serves {dims[0]}x{dims[1]} images to all its versions; a {resolution} px "
            "version needs another model repository (--out DIR)"
        )


def export_catalog_cvae(run_dir: Path, repository: Path, provenance: dict[str, Any]) -> Path:
    """Export the try-on cVAE of ``run_dir`` (trained on a catalog's garments) as the next version
    of ``tryon_cvae``; its manifest keeps the committed taxonomy (the renderer's templates)."""
    path = run_dir / CHECKPOINT_NAME
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}: train first")
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    model_dir = repository / "tryon_cvae"
    keep_config = (model_dir / "config.pbtxt").exists()
    version = next_version(model_dir)
    vae = TryOnVAE()
    vae.load_state_dict(state["model"])
    manifest = default_manifest("tryon_cvae", version)
    manifest = manifest.model_copy(
        update={
            "description": "conditional VAE trained on a catalog's wearable garments: measurements + "
            "garment + size + seed -> try-on image",
            "provenance": Provenance(
                **provenance,
                settings=state["config"],
                trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
            ),
        }
    )
    export_tryon_vae(vae, repository, version, manifest=manifest, write_model_config=not keep_config)
    version_dir = model_dir / str(version)
    _copy_pictures(run_dir, version_dir)
    write_model_card(version_dir, manifest, run_dir, epochs=state["epoch"])
    return version_dir


def _copy_pictures(run_dir: Path, version_dir: Path) -> None:
    """The last sample grid and the metrics plot, beside the card that shows them."""
    samples = sorted((run_dir / "samples").glob("epoch_*.png"))
    if samples:
        shutil.copyfile(samples[-1], version_dir / "samples.png")
    if (run_dir / "metrics.png").exists():
        shutil.copyfile(run_dir / "metrics.png", version_dir / "metrics.png")
