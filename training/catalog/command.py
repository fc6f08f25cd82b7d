"""``atelier-models train-cgan|train-cvae --catalog DIR``: check, train, export, as one story.

1. check every row and file (rank 0 prints the table); refuse on any problem unless
   ``skip_invalid``, which writes the skipped rows to a CSV and goes on;
2. load the valid images (the cGAN: at its resolution; the cVAE: its wearable garments, rendered
   on sampled bodies);
3. train (or resume), the cGAN on one process or under torchrun;
4. export as the next version of ``product_cgan`` / ``tryon_cvae`` with manifest and card.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from serving_contract.tensors import PRODUCT_IMAGE_SIZE
from training import checkpoints, distributed
from training.catalog.dataset import load_images
from training.catalog.export import export_catalog_cgan, export_catalog_cvae
from training.catalog.report import print_check, write_skipped
from training.catalog.train_cgan import CatalogCganConfig, train_catalog_cgan
from training.catalog.tryon import split_rows, templates, tryon_examples
from training.catalog.validate import CatalogCheck, check_catalog
from training.cvae.train import CvaeConfig
from training.cvae.train import train as cvae_train


class CatalogRefused(Exception):
    """The catalog has invalid rows and ``--skip-invalid`` was not given (the table says which)."""


@dataclass(frozen=True)
class CatalogRun:
    catalog: Path
    attributes: Path
    run_dir: Path
    config: CatalogCganConfig
    min_side: int | None = None  #: shorter image side required; the resolution if None
    skip_invalid: bool = False
    skipped_file: Path | None = None  #: where skipped rows go; RUN_DIR/skipped_rows.csv if None
    resume: bool = False
    distributed: bool = False
    export_to: Path | None = None  #: the model repository to add a version to; None: no export
    command: str | None = None  #: the command line, recorded in the manifest and card


def checked_catalog(
    job: CatalogRun | CatalogCvaeRun, min_side: int, console: Console, *, main: bool
) -> CatalogCheck:
    """The catalog's check, printed (by rank 0); raises ``CatalogRefused`` on invalid rows unless
    ``skip_invalid``, which writes them to a file."""
    check = check_catalog(job.catalog, job.attributes, min_side=job.min_side or min_side)
    if main:
        print_check(check, console)
    if check.problems:
        if not job.skip_invalid:
            raise CatalogRefused(
                f"{len(check.invalid_lines)} invalid row(s): fix them, or pass --skip-invalid to "
                "train without them (they are written to a file)"
            )
        if main:
            path = write_skipped(check, job.skipped_file or job.run_dir / "skipped_rows.csv")
            console.print(f"skipping {len(check.invalid_lines)} invalid row(s), listed in {path}")
    if not check.rows:
        raise CatalogRefused("no valid rows left to train on")
    return check


def provenance(check: CatalogCheck, data: str, images: int, command: str | None) -> dict[str, object]:
    return {
        "data": f"catalog {check.directory} ({check.attributes.name}), {data}",
        "images": images,
        "catalog_sha256": check.sha256(),
        "skipped_rows": len(check.invalid_lines),
        "command": command,
    }


def refuse_unasked_resume(run_dir: Path, resume: bool) -> None:
    if checkpoints.load_path(run_dir).exists() and not resume:
        raise FileExistsError(
            f"{run_dir} already holds a checkpoint: pass --resume to continue it, or another --run-dir"
        )


def run_catalog_cgan(job: CatalogRun, console: Console | None = None) -> Path | None:
    """Run ``job``; returns the exported version folder (``None`` without export)."""
    console = console or Console(stderr=True)
    refuse_unasked_resume(job.run_dir, job.resume)
    run = distributed.start(distributed=job.distributed)
    try:
        check = checked_catalog(job, job.config.resolution, console, main=run.main)
        data = load_images(check, job.config.resolution, quiet=not run.main)
        facts = provenance(
            check,
            f"images squared on white and resized to {job.config.resolution} px",
            len(data),
            job.command,
        )
        train_catalog_cgan(job.run_dir, data, check.conditions, job.config, provenance=facts, run=run)
        if job.export_to is None or not run.main:
            return None
        version_dir = export_catalog_cgan(job.run_dir, job.export_to)
        console.print(f"exported {version_dir} (manifest.json, MODEL_CARD.md)")
        return version_dir
    finally:
        distributed.stop(run)


@dataclass(frozen=True)
class CatalogCvaeRun:
    catalog: Path
    attributes: Path
    run_dir: Path
    config: CvaeConfig
    fits_like: dict[str, str] = field(default_factory=dict)  #: catalog slug -> committed wearable slug
    held_out_examples: int = 512  #: renders of held-out garments for the per-epoch PSNR
    min_side: int | None = None  #: shorter image side required; 32 (the garment input) if None
    skip_invalid: bool = False
    skipped_file: Path | None = None
    resume: bool = False
    export_to: Path | None = None
    command: str | None = None


def run_catalog_cvae(job: CatalogCvaeRun, console: Console | None = None) -> Path | None:
    """Train the try-on cVAE on renders of the catalog's wearable garments; export it."""
    console = console or Console(stderr=True)
    refuse_unasked_resume(job.run_dir, job.resume)
    check = checked_catalog(job, PRODUCT_IMAGE_SIZE, console, main=True)
    mapping = templates(check, job.fits_like)
    train_rows, held_rows = split_rows(check, mapping)
    console.print(f"rendering {job.config.train_examples} try-on examples of {len(train_rows)} garments")
    examples = tryon_examples(check, train_rows, mapping, job.config.train_examples, job.config.seed)
    held_out = tryon_examples(check, held_rows, mapping, job.held_out_examples, job.config.seed + 10_000)
    cvae_train(job.run_dir, job.config, examples=examples, held_out=held_out)
    if job.export_to is None:
        return None
    facts = provenance(
        check,
        f"{len(train_rows)} wearable garments at {PRODUCT_IMAGE_SIZE} px rendered on "
        f"{job.config.train_examples} sampled bodies ({len(held_rows)} held out for PSNR)",
        len(train_rows),
        job.command,
    )
    version_dir = export_catalog_cvae(job.run_dir, job.export_to, facts)
    console.print(f"exported {version_dir} (manifest.json, MODEL_CARD.md)")
    return version_dir
