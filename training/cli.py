"""``atelier-models``: train, export and evaluate the generative models.

Each command is a thin shell over a module: training/cgan/train.py, training/cvae/train.py,
training/export.py, training/evaluate/.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(no_args_is_help=True, help=__doc__)

RunDir = Annotated[Path, typer.Option(help="checkpoints, metrics and sample grids go here")]
Repository = Annotated[Path, typer.Option(help="the Triton model repository")]
# the options both train commands take for a catalog run
Attributes = Annotated[Path, typer.Option(help="the catalog's CSV (file, category, colour)")]
SkipInvalid = Annotated[
    bool, typer.Option(help="catalog: train without invalid rows, listed in --skipped-file")
]
SkippedFile = Annotated[Path | None, typer.Option(help="default RUN_DIR/skipped_rows.csv")]
Resume = Annotated[bool, typer.Option(help="catalog: continue RUN_DIR's last checkpoint")]
Export = Annotated[bool, typer.Option(help="catalog: export the next version after training")]
ExportTo = Annotated[Path, typer.Option(help="catalog: the Triton model repository to export into")]

#: where the judge classifier's weights are committed
JUDGE_PATH = Path("training/evaluate/weights/judge.pt")


@app.command()
def train_cgan(
    run_dir: RunDir = Path("runs/cgan"),
    epochs: int = 12,
    seed: int = 0,
    limit: Annotated[int | None, typer.Option(help="use only the first N images (smoke runs)")] = None,
    catalog: Annotated[
        Path | None, typer.Option(help="train on this catalog folder instead of Fashion-MNIST")
    ] = None,
    attributes: Attributes = Path("attributes.csv"),
    resolution: Annotated[int, typer.Option(help="catalog image side: 32, 64 or 128")] = 32,
    batch_size: Annotated[int, typer.Option(help="catalog: images per step and process")] = 64,
    generator_width: Annotated[int, typer.Option(help="catalog: generator channels at 4x4")] = 256,
    discriminator_width: Annotated[int, typer.Option(help="catalog: discriminator's first channels")] = 32,
    steps_per_epoch: Annotated[int | None, typer.Option(help="catalog: cap steps per epoch")] = None,
    min_side: Annotated[
        int | None, typer.Option(help="catalog: shorter image side required (default: the resolution)")
    ] = None,
    skip_invalid: SkipInvalid = False,
    skipped_file: SkippedFile = None,
    resume: Resume = False,
    distributed: Annotated[
        bool, typer.Option(help="catalog: one DDP process of a torchrun launch (gloo CPU, NCCL GPU)")
    ] = False,
    export: Export = True,
    out: ExportTo = Path("triton_models"),
) -> None:
    """Train the product cGAN: on Fashion-MNIST (resumes from RUN_DIR's checkpoint), or with
    --catalog on a folder of images and an attributes CSV, checked row by row first."""
    if catalog is None:
        from training.cgan.train import CganConfig, train

        train(run_dir, CganConfig(epochs=epochs, seed=seed, limit=limit))
        return
    from training.catalog.command import CatalogRun, run_catalog_cgan
    from training.catalog.train_cgan import CatalogCganConfig
    from training.cgan.model import RESOLUTIONS

    if resolution not in RESOLUTIONS:
        raise _refuse(f"--resolution {resolution}: choose one of {', '.join(map(str, RESOLUTIONS))}")
    config = CatalogCganConfig(
        resolution=resolution,
        epochs=epochs,
        batch_size=batch_size,
        generator_width=generator_width,
        discriminator_width=discriminator_width,
        seed=seed,
        steps_per_epoch=steps_per_epoch,
    )
    shared = _catalog_job_fields(
        catalog, attributes, run_dir, skip_invalid, skipped_file, resume, export, out
    )
    job = CatalogRun(config=config, min_side=min_side, distributed=distributed, **shared)
    with _refusals_exit_2(ValueError):  # ValueError: a resume of another run's checkpoint
        run_catalog_cgan(job)


@app.command()
def train_cvae(
    run_dir: RunDir = Path("runs/cvae"),
    epochs: int = 15,
    examples: int = 40_000,
    seed: int = 0,
    catalog: Annotated[
        Path | None, typer.Option(help="render this catalog's wearable garments instead of Fashion-MNIST's")
    ] = None,
    attributes: Attributes = Path("attributes.csv"),
    fits_like: Annotated[
        list[str] | None,
        typer.Option(help="catalog: SLUG=TEMPLATE, draw a catalog category as a committed one (tee=t_shirt)"),
    ] = None,
    skip_invalid: SkipInvalid = False,
    skipped_file: SkippedFile = None,
    resume: Resume = False,
    export: Export = True,
    out: ExportTo = Path("triton_models"),
) -> None:
    """Train the try-on cVAE on rendered examples (resumes from RUN_DIR's checkpoint); with
    --catalog, the garments are the catalog's wearable products, checked row by row first."""
    from training.cvae.train import CvaeConfig, train

    config = CvaeConfig(epochs=epochs, train_examples=examples, seed=seed)
    if catalog is None:
        train(run_dir, config)
        return
    from training.catalog.command import CatalogCvaeRun, run_catalog_cvae

    try:
        mapping = dict(pair.split("=", 1) for pair in fits_like or [])
    except ValueError:
        raise _refuse(f"--fits-like takes SLUG=TEMPLATE, got {fits_like}") from None
    shared = _catalog_job_fields(
        catalog, attributes, run_dir, skip_invalid, skipped_file, resume, export, out
    )
    job = CatalogCvaeRun(config=config, fits_like=mapping, **shared)
    with _refusals_exit_2():
        run_catalog_cvae(job)


def _catalog_job_fields(
    catalog: Path,
    attributes: Path,
    run_dir: Path,
    skip_invalid: bool,
    skipped_file: Path | None,
    resume: bool,
    export: bool,
    out: Path,
) -> dict[str, Any]:
    """The fields a catalog cGAN job and a catalog cVAE job both take from the command line."""
    return {
        "catalog": catalog,
        "attributes": attributes,
        "run_dir": run_dir,
        "skip_invalid": skip_invalid,
        "skipped_file": skipped_file,
        "resume": resume,
        "export_to": out if export else None,
        "command": "atelier-models " + shlex.join(sys.argv[1:]),  # recorded in manifest and card
    }


@contextmanager
def _refusals_exit_2(*also: type[Exception]) -> Iterator[None]:
    """A refused catalog or run directory (or one of ``also``) ends the command with its message
    and exit status 2, not a traceback."""
    from training.catalog.command import CatalogRefused
    from training.catalog.validate import CatalogError

    refused: tuple[type[Exception], ...] = (CatalogRefused, CatalogError, FileExistsError, *also)
    try:
        yield
    except refused as error:
        raise _refuse(str(error)) from None


def _refuse(message: str) -> typer.Exit:
    """Print ``message`` as the command's error; the caller raises the returned exit (status 2)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


@app.command()
def train_judge(path: Path = JUDGE_PATH, epochs: int = 4) -> None:
    """Train the evaluation classifier on the Fashion-MNIST train split."""
    from training.evaluate.classifier import train_judge as train

    train(path, epochs=epochs)


# --- issue 16: the checks of pattern models (the textured category judge, the colour check) ---
@app.command()
def train_textured_judge(
    path: Annotated[
        Path | None, typer.Option(help="default training/evaluate/weights/textured_judge.pt")
    ] = None,
    epochs: int = 3,
    images_per_epoch: Annotated[int, typer.Option(help="train garments textured afresh per epoch")] = 30_000,
) -> None:
    """Train the category judge of pattern models further on textured garments (from judge.pt)."""
    import torch

    from training.evaluate.textured_judge import TEXTURED_JUDGE_PATH, TexturedJudgeConfig
    from training.evaluate.textured_judge import train_textured_judge as train

    torch.set_num_threads(os.cpu_count() or 1)
    config = TexturedJudgeConfig(epochs=epochs, images_per_epoch=images_per_epoch)
    train(path or TEXTURED_JUDGE_PATH, config)


@app.command()
def pattern_checks(
    out: Path = Path("docs/evaluation/pattern_checks.json"),
    colour_garments: Annotated[int, typer.Option(help="test garments per pattern x colour")] = 1000,
    repository: Repository = Path("triton_models"),
) -> None:
    """Held-out accuracy of the category judges on real textured garments (and both on the served
    colour-only product model), and of the gate's colour check on every pattern x colour; writes
    OUT (JSON)."""
    import torch

    from training.evaluate.colour_check_eval import evaluate_colour_check
    from training.evaluate.textured_judge import compare_judges, on_served_plain_model

    torch.set_num_threads(os.cpu_count() or 1)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "command": f"atelier-models pattern-checks --colour-garments {colour_garments}",
        "category_judges": compare_judges(),
        "served_colour_only_model": on_served_plain_model(repository),
        "colour_check": evaluate_colour_check(limit=colour_garments),
    }
    results["seconds"] = time.perf_counter() - started
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    typer.echo(json.dumps(results["colour_check"]["summary"], indent=1))


# --- end issue 16 ---
@app.command()
def export(
    cgan_run: Path = Path("runs/cgan"),
    cvae_run: Path = Path("runs/cvae"),
    repository: Repository = Path("triton_models"),
    version: int = 1,
    noise_scale: Annotated[float, typer.Option(help="product noise truncation (1 = none)")] = 1.0,
) -> None:
    """Write the models' TorchScript, model.py and config.pbtxt into the repository (the judge too)."""
    from training.export import export_trained

    export_trained(cgan_run, cvae_run, repository, version, noise_scale=noise_scale)


@app.command()
def export_judge(
    repository: Repository = Path("triton_models"),
    judge: Path = JUDGE_PATH,
    version: int = 1,
) -> None:
    """Write the judge classifier as the quality_judge model (TorchScript, model.py, config.pbtxt)."""
    from training.export import export_quality_judge

    export_quality_judge(repository, version, weights=judge)


@app.command()
def evaluate(
    repository: Repository = Path("triton_models"),
    judge: Path = JUDGE_PATH,
    out_dir: Path = Path("docs/evaluation"),
    product_samples: int = 10_000,
    tryon_samples: int = 1000,
) -> None:
    """Measure both served models; writes OUT_DIR/README.md, results.json and figures."""
    from training.evaluate.report import write_report

    results = write_report(
        repository, judge, out_dir, product_samples=product_samples, tryon_samples=tryon_samples
    )
    typer.echo(json.dumps(results, indent=2))


@app.command()
def inception_fid(
    samples: int = 5000,
    repository: Repository = Path("triton_models"),
    out: Path = Path("docs/evaluation/inception_fid.json"),
) -> None:
    """Inception FID/KID of the product cGAN against real test images (slow on CPU)."""
    import numpy as np

    from training.cgan.model import LATENT_DIM
    from training.data import fashion_mnist
    from training.data.products import product_images, random_colours
    from training.evaluate.inception_fid import inception_features, kernel_inception_distance
    from training.evaluate.metrics import frechet_distance
    from training.evaluate.served import ServedProductModel

    started = time.perf_counter()
    test = fashion_mnist.load("test")
    rng = np.random.default_rng(11)
    pick = rng.choice(len(test.labels), size=samples, replace=False)
    colours = random_colours(samples, 11)
    real = product_images(fashion_mnist.FashionMNIST(test.images[pick], test.labels[pick]), colours)
    generated = ServedProductModel(repository, LATENT_DIM)(
        test.labels[pick], colours, rng.integers(0, 2**31 - 1, size=samples)
    )
    cache = Path(f"runs/inception_real_test_{samples}_11.npy")  # real features never change
    if cache.exists():
        real_features = np.load(cache)
    else:
        real_features = inception_features(real, label="Inception: real test")
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, real_features)
    generated_features = inception_features(generated, label="Inception: generated")
    kid_mean, kid_std = kernel_inception_distance(generated_features, real_features)
    result = {
        "fid": frechet_distance(generated_features, real_features),
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        "samples": samples,
        "command": f"atelier-models inception-fid --samples {samples}",
        "seconds": time.perf_counter() - started,
        "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    typer.echo(json.dumps(result, indent=2))


if __name__ == "__main__":
    app()
