"""What one exported model version knows: its conditions, their vocabularies, its image size,
measurement ranges and tensors, and where its training data came from.

``training/export.py`` writes it as ``manifest.json`` beside ``model.py`` and ``model.pt`` in
``triton_models/<model>/<version>/`` (Triton reads only those two and ignores other files), so a
version trained on another catalog carries its own categories and colours with it. The constants
of ``taxonomy``, ``palette``, ``sizing`` and ``tensors`` are the default vocabulary:
``default_manifest`` expresses them as a manifest.

Kept free of torch, like the rest of ``serving_contract``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from serving_contract.palette import PALETTE
from serving_contract.sizing import MEASUREMENTS, SIZE_CHART
from serving_contract.taxonomy import CATEGORIES
from serving_contract.tensors import MODELS, ModelSpec

#: the file a version folder carries its manifest in
MANIFEST_NAME = "manifest.json"

#: the manifest format this code writes and reads
MANIFEST_SCHEMA_VERSION = 1

#: noise vector sizes of the committed generators (training/cgan/model.py, training/cvae/model.py)
DEFAULT_LATENT_DIMS = {"product_cgan": 64, "tryon_cvae": 16}

Slug = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$", description="lower-case identifier")]
Text = Annotated[str, Field(min_length=1, max_length=120)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CategoryEntry(_Frozen):
    """One category a model is conditioned on; ``index`` is its condition value."""

    index: int = Field(ge=0)
    slug: Slug = Field(description="stable identifier used in requests, e.g. t_shirt")
    label: Text = Field(description="human-readable name")
    department: Slug = Field(description="coarse catalog grouping")
    wearable: bool = Field(description="can be tried on by the try-on model")


class ColourEntry(_Frozen):
    index: int = Field(ge=0)
    name: Slug
    rgb: tuple[
        Annotated[int, Field(ge=0, le=255)],
        Annotated[int, Field(ge=0, le=255)],
        Annotated[int, Field(ge=0, le=255)],
    ]

    @property
    def hex(self) -> str:
        return "#{:02x}{:02x}{:02x}".format(*self.rgb)


class PatternEntry(_Frozen):
    index: int = Field(ge=0)
    name: Slug
    description: str = Field(default="", max_length=200)


class SizeEntry(_Frozen):
    """One row of the try-on model's size chart (the garment's dimensions, cm)."""

    index: int = Field(ge=0)
    label: Annotated[str, Field(min_length=1, max_length=8)]
    chest_cm: float = Field(gt=0)
    waist_cm: float = Field(gt=0)
    top_length_cm: float = Field(gt=0)
    dress_length_cm: float = Field(gt=0)
    inseam_cm: float = Field(gt=0)


class MeasurementEntry(_Frozen):
    """A body measurement the try-on model accepts, in the order its tensor carries them."""

    name: Slug
    unit: Annotated[str, Field(min_length=1, max_length=8)]
    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> MeasurementEntry:
        if not self.low < self.high:
            raise ValueError(f"measurement {self.name}: low {self.low} must be below high {self.high}")
        return self


class TensorEntry(_Frozen):
    name: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")]
    dtype: Literal["int32", "int64", "float32", "uint8"]
    shape: tuple[Annotated[int, Field(ge=1)], ...] = Field(description="per item, without the batch dim")
    description: str = ""


class Conditions(_Frozen):
    """The vocabularies a model is conditioned on. Indexes must run 0, 1, 2, ... in order and
    names must be unique: the index is the value the model receives."""

    categories: tuple[CategoryEntry, ...] = ()
    colours: tuple[ColourEntry, ...] = ()
    patterns: tuple[PatternEntry, ...] = ()
    sizes: tuple[SizeEntry, ...] = ()

    @model_validator(mode="after")
    def _indexed(self) -> Conditions:
        for field, entries, key in (
            ("categories", self.categories, "slug"),
            ("colours", self.colours, "name"),
            ("patterns", self.patterns, "name"),
            ("sizes", self.sizes, "label"),
        ):
            _check_vocabulary(field, entries, key)
        return self

    def category_slugs(self) -> tuple[str, ...]:
        return tuple(c.slug for c in self.categories)

    def colour_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.colours)

    def pattern_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.patterns)


class Provenance(_Frozen):
    """Where a version's training data came from and how it was trained."""

    data: str = Field(description="the data set, in words")
    images: int | None = Field(default=None, ge=0, description="training images used")
    catalog_sha256: str | None = Field(default=None, description="hash of the attributes file and images")
    skipped_rows: int = Field(default=0, ge=0, description="rows left out with --skip-invalid")
    command: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict, description="the training configuration")
    trained_at: str | None = Field(default=None, description="UTC ISO time the export was written")


class ModelManifest(_Frozen):
    """Everything a caller needs to know about one exported model version."""

    schema_version: Literal[1] = 1  #: MANIFEST_SCHEMA_VERSION
    model: Slug
    version: int = Field(ge=1)
    description: str = ""
    image_size: int = Field(ge=8, le=1024, description="side of the output image, pixels")
    latent_dim: int | None = Field(default=None, ge=1, description="noise size of a generator")
    conditions: Conditions
    measurements: tuple[MeasurementEntry, ...] = ()
    inputs: tuple[TensorEntry, ...]
    outputs: tuple[TensorEntry, ...]
    max_batch_size: int = Field(ge=1)
    provenance: Provenance

    def tensor(self, name: str) -> TensorEntry:
        """The input or output tensor ``name``; ``KeyError`` names the known ones."""
        for entry in (*self.inputs, *self.outputs):
            if entry.name == name:
                return entry
        known = ", ".join(t.name for t in (*self.inputs, *self.outputs))
        raise KeyError(f"{self.model} v{self.version} has no tensor {name!r}; known: {known}")


def _check_vocabulary(field: str, entries: Sequence[BaseModel], key: str) -> None:
    seen: set[str] = set()
    for position, entry in enumerate(entries):
        index = getattr(entry, "index")  # noqa: B009 - every vocabulary entry has one
        name = getattr(entry, key)
        if index != position:
            raise ValueError(f"{field}[{position}] ({name}) has index {index}; indexes must be 0, 1, 2, ...")
        if name in seen:
            raise ValueError(f"{field}: {key} {name!r} appears twice")
        seen.add(name)


def default_conditions() -> Conditions:
    """The committed taxonomy, palette and size chart as ``Conditions``."""
    return Conditions(
        categories=tuple(
            CategoryEntry(
                index=c.index, slug=c.slug, label=c.label, department=c.department, wearable=c.wearable
            )
            for c in CATEGORIES
        ),
        colours=tuple(ColourEntry(index=c.index, name=c.name, rgb=c.rgb) for c in PALETTE),
        sizes=tuple(
            SizeEntry(
                index=s.index,
                label=s.label,
                chest_cm=s.chest_cm,
                waist_cm=s.waist_cm,
                top_length_cm=s.top_length_cm,
                dress_length_cm=s.dress_length_cm,
                inseam_cm=s.inseam_cm,
            )
            for s in SIZE_CHART
        ),
    )


def tensor_entries(spec: ModelSpec, image_size: int | None = None) -> tuple[tuple[TensorEntry, ...], ...]:
    """``spec``'s inputs and outputs as entries; ``image_size`` replaces the side of its
    ``IMAGE`` output (a version trained at another resolution)."""

    def entries(tensors: Sequence[Any], resize: bool) -> tuple[TensorEntry, ...]:
        out = []
        for t in tensors:
            shape = t.shape
            if resize and image_size is not None and t.name == "IMAGE":
                shape = (image_size, image_size, shape[-1])
            out.append(TensorEntry(name=t.name, dtype=t.dtype, shape=shape, description=t.doc))
        return tuple(out)

    return entries(spec.inputs, False), entries(spec.outputs, True)


def default_manifest(model: str, version: int = 1) -> ModelManifest:
    """Today's constants as the manifest of ``model`` (product_cgan, tryon_cvae or quality_judge)."""
    specs = {spec.name: spec for spec in MODELS}
    if model not in specs:
        raise KeyError(f"no default manifest for model {model!r}; known: {', '.join(specs)}")
    spec = specs[model]
    everything = default_conditions()
    conditions = {
        "product_cgan": Conditions(categories=everything.categories, colours=everything.colours),
        "tryon_cvae": Conditions(categories=everything.categories, sizes=everything.sizes),
        "quality_judge": Conditions(categories=everything.categories),
    }[model]
    inputs, outputs = tensor_entries(spec)
    image = next(t for t in (*spec.outputs, *spec.inputs) if t.name in ("IMAGE",))
    measurements = tuple(
        MeasurementEntry(name=m.name, unit=m.unit, low=m.low, high=m.high) for m in MEASUREMENTS
    )
    return ModelManifest(
        model=model,
        version=version,
        description=spec.doc,
        image_size=image.shape[0],
        latent_dim=DEFAULT_LATENT_DIMS.get(model),
        conditions=conditions,
        measurements=measurements if model == "tryon_cvae" else (),
        inputs=inputs,
        outputs=outputs,
        max_batch_size=spec.max_batch_size,
        provenance=Provenance(data=DEFAULT_DATA[model]),
    )


#: the committed versions' training data, in words
DEFAULT_DATA = {
    "product_cgan": "Fashion-MNIST train split (Debian dataset-fashion-mnist), 60,000 images padded "
    "to 32 px and colourised with the palette (serving_contract/palette.py)",
    "tryon_cvae": "try-on renders (training/data/tryon_render.py) of Fashion-MNIST train garments "
    "of wearable categories in palette colours, on sampled bodies",
    "quality_judge": "Fashion-MNIST train split, colourised like the product cGAN's data",
}


def write_manifest(version_dir: Path, manifest: ModelManifest) -> Path:
    """Write ``manifest.json`` into ``version_dir`` (``triton_models/<model>/<version>/``)."""
    if version_dir.name != str(manifest.version):
        raise ValueError(f"manifest of version {manifest.version} written into folder {version_dir}")
    version_dir.mkdir(parents=True, exist_ok=True)
    path = version_dir / MANIFEST_NAME
    path.write_text(manifest.model_dump_json(indent=2) + "\n")
    return path


def read_manifest(version_dir: Path) -> ModelManifest:
    """The manifest of ``version_dir``; ``FileNotFoundError`` if it has none, pydantic's
    ``ValidationError`` (naming the field) if it is not a valid manifest."""
    path = version_dir / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: export the version with training/export.py")
    return ModelManifest.model_validate_json(path.read_text())
