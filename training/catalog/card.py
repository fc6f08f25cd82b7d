"""The model card of an exported version (``MODEL_CARD.md``): what it was trained on, what it
is conditioned on (categories, colours and, when it has them, patterns), how it was trained,
its metrics and its last sample grid, generated from the manifest and the run's files so it
cannot disagree with them."""

from __future__ import annotations

from pathlib import Path

from serving_contract.manifest import Conditions, ModelManifest
from training.progress import MetricsLog

#: the card's file name in the version folder
CARD_NAME = "MODEL_CARD.md"


def model_card(manifest: ModelManifest, metrics: list[dict[str, float]], *, epochs: int) -> str:
    provenance = manifest.provenance
    conditions = manifest.conditions
    lines = [
        f"# {manifest.model} version {manifest.version}",
        "",
        f"{manifest.description}. Generated at export by `training/catalog/card.py`; the same facts, "
        "machine-readable, are in `manifest.json`.",
        "",
        "## Data",
        "",
        f"- {provenance.data}",
        f"- {provenance.images} training images; {provenance.skipped_rows} rows skipped as invalid",
        f"- catalog SHA-256 `{provenance.catalog_sha256}`",
        f"- trained with `{provenance.command}`" if provenance.command else "- command not recorded",
        "",
        f"## Conditions ({_counts(conditions)})",
        "",
        "| index | category | label | department | try-on |",
        "|---|---|---|---|---|",
        *(
            f"| {c.index} | `{c.slug}` | {c.label} | {c.department} | {'yes' if c.wearable else 'no'} |"
            for c in conditions.categories
        ),
        "",
        *(["| index | colour | RGB |", "|---|---|---|"] if conditions.colours else []),
        *(f"| {c.index} | `{c.name}` | `{c.hex}` |" for c in conditions.colours),
        "",
        *_patterns(conditions),
        "## Training settings",
        "",
        "| setting | value |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in provenance.settings.items()),
        f"| epochs trained | {epochs} |",
        "",
        f"Output: `IMAGE` uint8 [{manifest.image_size}, {manifest.image_size}, 3]; "
        f"noise size {manifest.latent_dim}. Inputs: "
        + ", ".join(f"`{t.name}` {t.dtype} {list(t.shape)}" for t in manifest.inputs)
        + ".",
        "",
        "## Metrics (per epoch, means over the epoch's steps)",
        "",
    ]
    if metrics:
        names = list(metrics[0])
        lines += ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
        lines += ["| " + " | ".join(_number(row[n]) for n in names) + " |" for row in metrics]
        lines += ["", "![losses per epoch](metrics.png)", ""]
    else:
        lines += ["No metrics recorded.", ""]
    lines += [
        "## Samples (last epoch)",
        "",
        "![sample grid](samples.png)",
        "",
        "Hinge losses of a GAN say whether training stayed balanced, not how good the images are: "
        "look at the grid, and measure with `atelier-models evaluate` before promoting the version.",
    ]
    return "\n".join(lines) + "\n"


def _counts(conditions: Conditions) -> str:
    counts = f"{len(conditions.categories)} categories, {len(conditions.colours)} colours"
    return counts + (f", {len(conditions.patterns)} patterns" if conditions.patterns else "")


def _patterns(conditions: Conditions) -> list[str]:
    """The pattern table (every request to the version carries one of these), if it has patterns."""
    if not conditions.patterns:
        return []
    rows = [f"| {p.index} | `{p.name}` | {p.description} |" for p in conditions.patterns]
    return [
        "| index | pattern | description |",
        "|---|---|---|",
        *rows,
        "",
        f"A request that names no pattern gets `{conditions.patterns[0].name}` (index 0).",
        "",
    ]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.4g}"


def write_model_card(version_dir: Path, manifest: ModelManifest, run_dir: Path, *, epochs: int) -> Path:
    path = version_dir / CARD_NAME
    path.write_text(model_card(manifest, MetricsLog(run_dir).rows(), epochs=epochs))
    return path
