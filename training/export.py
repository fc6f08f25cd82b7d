"""Export trained models into the Triton model repository.

A model folder is what Triton's python_backend examples show: ``config.pbtxt`` beside version
folders holding ``model.py`` (the backend, copied from ``training/serving_backends/``) and
``model.pt`` (the serving module as TorchScript, so serving needs none of the training code).

The config is generated from the ``ModelSpec`` in ``serving_contract.tensors``: tensor names,
dtypes and shapes cannot drift from what the worker sends. Everything ``model.py`` needs to
know (latent size, index ranges, measurement limits) travels as config ``parameters``, because
production runs ``model.py`` in NVIDIA's Triton container, where this project is not installed.

Every version folder also gets ``manifest.json`` (``serving_contract.manifest``): the version's
conditions and vocabularies, image size, tensors and training data. A version trained on another
catalog carries its own there, and its ``model.py`` takes its limits from it.
"""

from __future__ import annotations

import json
import re
import shutil
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import torch
from torch import nn

from serving_contract import priorities
from serving_contract.manifest import (
    Conditions,
    ModelManifest,
    PatternEntry,
    TensorEntry,
    default_manifest,
    write_manifest,
)
from serving_contract.palette import NUM_COLOURS
from serving_contract.patterns import NUM_PATTERNS, PATTERNS
from serving_contract.sizing import MEASUREMENTS, NUM_SIZES
from serving_contract.taxonomy import NUM_CATEGORIES, wearable_categories
from serving_contract.tensors import (
    JUDGE_FEATURE_DIM,
    PRODUCT_GENERATOR,
    PRODUCT_IMAGE_SIZE,
    QUALITY_JUDGE,
    TRITON_DTYPES,
    TRYON_GENERATOR,
    ModelSpec,
)
from training.cgan.model import LATENT_DIM as PRODUCT_LATENT_DIM
from training.cgan.model import Generator
from training.checkpoints import CHECKPOINT_NAME
from training.cvae.model import LATENT_DIM as TRYON_LATENT_DIM
from training.cvae.model import TryOnVAE
from training.cvae.serving import TryOnServing

#: the source files copied into each version folder as ``model.py``, one per model name
BACKENDS_DIR = Path(__file__).parent / "serving_backends"

#: the committed judge classifier (training/evaluate/classifier.py), served as ``quality_judge``
JUDGE_WEIGHTS = Path(__file__).parent / "evaluate" / "weights" / "judge.pt"

#: torch 2.13 warns that TorchScript is deprecated in favour of torch.export; TorchScript is still
#: what Triton's pytorch (libtorch) backend loads, so a ``model.pt`` keeps that door open too
TORCHSCRIPT_DEPRECATION = r"`torch\.jit\.\w+` is deprecated"

#: every forward of a backend runs on exactly this many rows, the last chunk of a batch padded
#: with zero rows. MKL and oneDNN choose kernels by shape and by CPU, and another kernel may round
#: an item one level differently: padding to a multiple of 4 left items of small batches differing
#: on Intel (and under MKL_CBWR=COMPATIBLE on AMD). With one shape, an item's bytes do not depend on
#: its batch on any kernel path tested (docs/determinism.md, bench/determinism). 4 rows, a listing
#: job's request (4 variants): from one worker's 8 jobs in flight the batcher forms mostly batches
#: of 4 (a mean of 5.4 to 6.8), which 8 rows padded to twice their work, and a try-on sends batches
#: of 1. At 4 rows the ``product_cgan`` stub's CPU per pipeline image fell from 2.7 to 2.2 ms
#: (bench/perf pipeline, A/B interleaved); with ``keep_freed_memory`` in the backends, Triton's
#: compute per try-on request from 27 to 14 ms (``product_cgan``) and 37 to 17 ms (``tryon_cvae``)
#: and the backlog ratio stayed 1.03 to 1.09 (bench/perf backlog). One forward of 8 rows costs 12%
#: more as two of 4. On this AMD EPYC items get the same bytes at 4 rows as at 8
FORWARD_BATCH = 4

#: torch intra-op threads of each model instance (``torch.set_num_threads`` in the backend). One:
#: with torch's default of one per core, the OpenMP workers of three model instances (and the
#: processes beside them) spin against each other on shared cores: on 2 busy cores a batch-1
#: try-on call took 390 ms in Triton against 66 ms with one thread (bench/perf backlog's
#: ``breakdown``). A CPU deployment scales with more instances, not more threads each
INTRA_OP_THREADS = 1

# --- instances (issue 15: try-on p95 under a listing backlog) ---
#: model instances (``instance_group`` count) per model, one where unlisted. ``product_cgan`` serves
#: both a try-on's garment and the listing backfill: with one instance, Triton 2.51's batcher left
#: an interactive request that came while a bulk batch ran queued for its 500 ms idle wait (3 to 6
#: try-ons in 120 under a backlog; with a free second instance, none: bench/perf/backlog.py).
#: Measured again with 4-row forwards: one instance formed larger batches (a mean of 8.9 against
#: 5.5) for the same stub CPU per image (2.1 ms) and fewer images/s (62 against 87), so two stay
INSTANCE_COUNTS: Mapping[str, int] = {PRODUCT_GENERATOR.name: 2}


def instance_count_of(spec: ModelSpec) -> int:
    """How many instances of ``spec`` a generated config asks for (:data:`INSTANCE_COUNTS`)."""
    return INSTANCE_COUNTS.get(spec.name, 1)


# --- end instances ---

InstanceKind = Literal["KIND_CPU", "KIND_GPU"]
M = TypeVar("M", bound=nn.Module)


def to_uint8_hwc(images: torch.Tensor) -> torch.Tensor:
    """``[N, 3, H, W]`` in [-1, 1] -> uint8 ``[N, H, W, 3]``: ``rint((x + 1) * 127.5)``, clipped."""
    pixels = torch.clamp(torch.round((images + 1.0) * 127.5), 0.0, 255.0).to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).contiguous()


def channels_last(module: M) -> M:
    """``module.to(memory_format=torch.channels_last)``, which torch's type stubs lack."""
    return module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]


class ProductServing(nn.Module):
    """The product generator as served: ``(z, category, colour[, pattern]) -> uint8 [N, 32, 32, 3]``.

    ``z`` is float32 ``[N, LATENT_DIM]``, ``category``, ``colour`` and ``pattern`` int64 ``[N]``;
    ``pattern`` is given exactly when the generator was trained with patterns. The
    generator is switched in place to eval mode (batch norm uses its running statistics, so an
    item's image does not depend on the rest of the batch) and to channels_last.

    ``noise_scale`` < 1 is the truncation trick (Brock et al. 2019): noise nearer the mode of the
    prior gives more typical images of the requested category. It is baked into the exported
    file, so every consumer of ``model.pt`` (Triton, the evaluation) samples the same way.
    """

    def __init__(self, generator: nn.Module, noise_scale: float = 1.0) -> None:
        super().__init__()
        self.noise_scale = noise_scale
        # channels_last: the convolutions ran ~6x faster at batch 64 on the 2-core CPU; the
        # traced TorchScript keeps the weights' memory format
        self.generator = channels_last(generator.eval())

    @property
    def num_patterns(self) -> int:
        """How many patterns the generator is conditioned on (0: category and colour only)."""
        embedding = getattr(self.generator, "pattern", None)
        return 0 if embedding is None else int(embedding.num_embeddings)

    def example_inputs(self, categories: list[int], colours: list[int]) -> tuple[torch.Tensor, ...]:
        """Forward arguments to trace with, plus plain-fabric patterns if the generator takes them."""
        conditions = [torch.tensor(categories), torch.tensor(colours)]
        if self.num_patterns:
            conditions.append(torch.zeros(len(categories), dtype=torch.int64))
        return (torch.randn(len(categories), PRODUCT_LATENT_DIM), *conditions)

    def forward(
        self,
        z: torch.Tensor,
        category: torch.Tensor,
        colour: torch.Tensor,
        pattern: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return to_uint8_hwc(self.generator(z * self.noise_scale, category, colour, pattern))


class JudgeServing(nn.Module):
    """The judge classifier as served: uint8 ``[N, 32, 32, 3]`` -> (probabilities ``[N, 10]``,
    features ``[N, 128]``), both float32.

    It takes the images exactly as ``product_cgan`` returns them, so the worker can hand the
    generated batch over unchanged; the scaling to [-1, 1] it was trained on happens here, in the
    TorchScript, and cannot drift from the evaluation's (``to_unit_range``).
    """

    def __init__(self, judge: nn.Module) -> None:
        super().__init__()
        self.judge = channels_last(judge.eval())

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = images.permute(0, 3, 1, 2).float() / 127.5 - 1.0
        logits, features = self.judge(x.contiguous(memory_format=torch.channels_last))
        return torch.softmax(logits, dim=1), features


@dataclass(frozen=True)
class DynamicBatching:
    """Triton's dynamic batcher settings for a model.

    - ``preferred_batch_sizes`` (default 8, 16, 32, 64): batch sizes the batcher sends at once
      rather than waiting for more requests
    - ``max_queue_delay_us`` (default 2000): how long a request may wait for others to join; one
      value for every priority level (``priority_queue_policy`` sets a level's timeout and queue
      size, not its delay). 8000 for ``product_cgan`` and ``quality_judge`` formed pipeline
      batches of 6.0 against 5.5, for no less stub CPU (4-row forwards cost the same per image in
      any batch), and a lone try-on garment request would wait up to 6 ms longer: not kept
    - ``priority_levels`` (default ``priorities.LEVELS``, 0: none): the queue keeps one level per
      request priority and takes level 1 first, so a try-on's request overtakes queued backfill
    - ``default_priority_level`` (default ``priorities.BULK``): the level of a request that names
      none, so only a request that asks to be interactive is
    """

    preferred_batch_sizes: tuple[int, ...] = (8, 16, 32, 64)
    max_queue_delay_us: int = 2000
    priority_levels: int = priorities.LEVELS
    default_priority_level: int = priorities.BULK

    def __post_init__(self) -> None:
        if self.priority_levels < 0:
            raise ValueError(f"priority_levels must be 0 (none) or more, got {self.priority_levels}")
        if self.priority_levels and not 1 <= self.default_priority_level <= self.priority_levels:
            raise ValueError(
                f"default_priority_level must be within 1..priority_levels ({self.priority_levels}), "
                f"got {self.default_priority_level}"
            )

    def render(self, max_batch_size: int) -> list[str]:
        """The ``dynamic_batching { ... }`` block; preferred sizes above ``max_batch_size`` left out."""
        sizes = [s for s in self.preferred_batch_sizes if s <= max_batch_size]
        lines = [
            "dynamic_batching {",
            f"  preferred_batch_size: [ {', '.join(str(s) for s in sizes)} ]",
            f"  max_queue_delay_microseconds: {self.max_queue_delay_us}",
        ]
        if self.priority_levels:
            lines += [
                f"  priority_levels: {self.priority_levels}",
                f"  default_priority_level: {self.default_priority_level}",
            ]
        return [*lines, "}"]


def backend_parameters(
    spec: ModelSpec, *, latent_dim: int | None = None, manifest: ModelManifest | None = None
) -> dict[str, str]:
    """The config ``parameters`` the model's ``model.py`` reads: latent size (generators only),
    forward batch, intra-op threads and request limits (the vocabulary sizes of ``manifest`` if
    given)."""
    num_categories = len(manifest.conditions.categories) if manifest else NUM_CATEGORIES
    parameters = {} if latent_dim is None else {"latent_dim": str(latent_dim)}
    parameters |= {
        "forward_batch": str(FORWARD_BATCH),
        "intra_op_threads": str(INTRA_OP_THREADS),
        "num_categories": str(num_categories),
    }
    if spec.name == PRODUCT_GENERATOR.name:
        parameters["num_colours"] = str(len(manifest.conditions.colours) if manifest else NUM_COLOURS)
    elif spec.name == TRYON_GENERATOR.name:
        parameters["num_sizes"] = str(NUM_SIZES)
        parameters["wearable_categories"] = json.dumps([c.index for c in wearable_categories()])
        parameters["measurement_names"] = json.dumps([f"{m.name} {m.unit}" for m in MEASUREMENTS])
        parameters["measurement_low"] = json.dumps([m.low for m in MEASUREMENTS])
        parameters["measurement_high"] = json.dumps([m.high for m in MEASUREMENTS])
    elif spec.name != QUALITY_JUDGE.name:  # the judge takes images only, checked by Triton's shapes
        raise ValueError(f"no serving backend for model {spec.name!r}")
    return parameters


def render_config(
    spec: ModelSpec,
    *,
    parameters: Mapping[str, str],
    instance_kind: InstanceKind = "KIND_CPU",
    instance_count: int = 1,
    dynamic_batching: DynamicBatching | None = DynamicBatching(),
) -> str:
    """``config.pbtxt`` text for ``spec``: python backend, tensors, batcher, instances, parameters."""

    def tensors(kind: str, specs: tuple, optional: tuple = ()) -> list[str]:
        entries = [
            f'  {{\n    name: "{t.name}"\n    data_type: {TRITON_DTYPES[t.dtype]}\n'
            f"    dims: [ {', '.join(str(d) for d in t.shape)} ]\n"
            + ("    optional: true\n" if t in optional else "")
            + "  }"
            for t in (*specs, *optional)
        ]
        return [f"{kind} [", ",\n".join(entries), "]"]

    lines = [
        "# Generated by training/export.py from serving_contract/tensors.py: do not edit by hand.",
        f'name: "{spec.name}"',
        'backend: "python"',
        f"max_batch_size: {spec.max_batch_size}",
        *tensors("input", spec.inputs, spec.optional_inputs),
        *tensors("output", spec.outputs),
    ]
    if dynamic_batching is not None:
        lines += dynamic_batching.render(spec.max_batch_size)
    lines += ["instance_group [", f"  {{\n    count: {instance_count}\n    kind: {instance_kind}\n  }}", "]"]
    for key, value in parameters.items():
        lines.append(
            f"parameters: {{\n  key: {json.dumps(key)}\n  value: {{ string_value: {json.dumps(value)} }}\n}}"
        )
    return "\n".join(lines) + "\n"


def write_config(
    spec: ModelSpec,
    repository: Path,
    *,
    latent_dim: int | None = None,
    instance_kind: InstanceKind = "KIND_CPU",
    instance_count: int | None = None,
    dynamic_batching: DynamicBatching | None = DynamicBatching(),
    manifest: ModelManifest | None = None,
) -> Path:
    """Write ``repository/<spec.name>/config.pbtxt``; ``KIND_GPU`` for production and device runs;
    ``instance_count`` default :func:`instance_count_of`."""
    model_dir = repository / spec.name
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / "config.pbtxt"
    path.write_text(
        render_config(
            spec,
            parameters=backend_parameters(spec, latent_dim=latent_dim, manifest=manifest),
            instance_kind=instance_kind,
            instance_count=instance_count if instance_count is not None else instance_count_of(spec),
            dynamic_batching=dynamic_batching,
        )
    )
    return path


def to_torchscript(serving_module: nn.Module, example_inputs: tuple) -> torch.jit.ScriptModule:
    """Trace ``serving_module`` in eval mode (a ScriptModule is taken as it is)."""
    if isinstance(serving_module, torch.jit.ScriptModule):
        return serving_module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=TORCHSCRIPT_DEPRECATION)
        traced = torch.jit.trace(serving_module.eval(), example_inputs)
    return traced


def save_torchscript(module: torch.jit.ScriptModule, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=TORCHSCRIPT_DEPRECATION)
        torch.jit.save(module, str(path))


def export_model(
    spec: ModelSpec,
    serving_module: nn.Module,
    repository: Path,
    version: int = 1,
    *,
    latent_dim: int | None = None,
    example_inputs: tuple,
    instance_kind: InstanceKind = "KIND_CPU",
    instance_count: int | None = None,
    dynamic_batching: DynamicBatching | None = DynamicBatching(),
    manifest: ModelManifest | None = None,
    write_model_config: bool = True,
) -> Path:
    """Write ``config.pbtxt``, ``<version>/model.pt``, ``<version>/model.py`` and
    ``<version>/manifest.json``; returns the model dir.

    ``example_inputs`` are the serving module's forward arguments for tracing (any batch size).
    An existing version folder of the same number is replaced; other versions are kept.
    ``manifest`` defaults to ``default_manifest`` (the committed vocabularies) for this version.
    ``write_model_config=False`` keeps the model folder's ``config.pbtxt`` (shared by its versions).
    """
    if manifest is None:
        manifest = default_manifest(spec.name, version).model_copy(update={"latent_dim": latent_dim})
    if (manifest.model, manifest.version) != (spec.name, version):
        raise ValueError(f"manifest of {manifest.model} v{manifest.version} given for {spec.name} v{version}")
    if isinstance(serving_module, ProductServing):
        check_patterns(serving_module, manifest)
    backend = BACKENDS_DIR / f"{spec.name}.py"
    if not backend.exists():
        raise ValueError(f"no serving backend {backend} for model {spec.name!r}")
    scripted = to_torchscript(serving_module, example_inputs)
    if write_model_config:
        write_config(
            spec,
            repository,
            latent_dim=latent_dim,
            instance_kind=instance_kind,
            instance_count=instance_count,
            dynamic_batching=dynamic_batching,
            manifest=manifest,
        )
    version_dir = repository / spec.name / str(version)
    if version_dir.exists():
        shutil.rmtree(version_dir)
    version_dir.mkdir(parents=True)
    save_torchscript(scripted, version_dir / "model.pt")
    shutil.copyfile(backend, version_dir / "model.py")
    write_manifest(version_dir, manifest)
    return repository / spec.name


def export_product_generator(
    generator: nn.Module, repository: Path, version: int = 1, *, noise_scale: float = 1.0, **settings: Any
) -> Path:
    """Export a product ``Generator`` as ``product_cgan`` (``settings``: see ``export_model``).

    A generator trained with patterns gets, unless ``settings`` carries a manifest, the default
    manifest with ``serving_contract.patterns`` listed (``patterned_manifest``).
    """
    serving = ProductServing(generator, noise_scale)
    manifest = settings.pop("manifest", None)
    if manifest is None:
        manifest = default_manifest(PRODUCT_GENERATOR.name, version).model_copy(
            update={"latent_dim": PRODUCT_LATENT_DIM}
        )
        if serving.num_patterns:
            manifest = patterned_manifest(manifest, default_patterns())
    return export_model(
        PRODUCT_GENERATOR,
        serving,
        repository,
        version,
        latent_dim=PRODUCT_LATENT_DIM,
        example_inputs=serving.example_inputs([0, 1], [0, 1]),
        manifest=manifest,
        **settings,
    )


def default_patterns() -> tuple[PatternEntry, ...]:
    """``serving_contract.patterns`` (the Fashion-MNIST texturing) as manifest entries."""
    return tuple(PatternEntry(index=p.index, name=p.name, description=p.description) for p in PATTERNS)


def patterned_manifest(manifest: ModelManifest, patterns: Sequence[PatternEntry]) -> ModelManifest:
    """``manifest`` of a product version conditioned on ``patterns`` as well: it lists them, and
    its inputs the ``PATTERN`` tensor that its ``model.py`` then requires (after ``COLOUR``)."""
    spec = PRODUCT_GENERATOR.input("PATTERN")
    entry = TensorEntry(
        name=spec.name,
        dtype="int32",
        shape=spec.shape,
        description=f"pattern index in [0, {len(patterns)}), required by this version",
    )
    inputs = [t for t in manifest.inputs if t.name != spec.name]
    at = next((i + 1 for i, t in enumerate(inputs) if t.name == "COLOUR"), len(inputs))
    conditions = Conditions.model_validate(  # validated: pattern indexes must run 0, 1, 2, ...
        manifest.conditions.model_dump() | {"patterns": [p.model_dump() for p in patterns]}
    )
    return manifest.model_copy(
        update={"conditions": conditions, "inputs": (*inputs[:at], entry, *inputs[at:])}
    )


def check_patterns(serving: ProductServing, manifest: ModelManifest) -> None:
    """Refuse a manifest whose patterns (and ``PATTERN`` input) disagree with the generator's:
    the backend trusts the manifest, so a mismatch would serve requests the model cannot take."""
    listed = len(manifest.conditions.patterns)
    has_input = any(t.name == "PATTERN" for t in manifest.inputs)
    if listed != serving.num_patterns or has_input != bool(listed):
        raise ValueError(
            f"{manifest.model} v{manifest.version}: the generator takes {serving.num_patterns} patterns; "
            f"the manifest lists {listed} and {'has' if has_input else 'lacks'} a PATTERN input"
        )


def export_tryon_vae(vae: TryOnVAE, repository: Path, version: int = 1, **settings: Any) -> Path:
    """Export a trained ``TryOnVAE``'s decoder side as ``tryon_cvae`` (``settings``: see ``export_model``)."""
    serving = channels_last(TryOnServing(vae).eval())
    middle = [(m.low + m.high) / 2 for m in MEASUREMENTS]
    example = (
        torch.randn(2, TRYON_LATENT_DIM),
        torch.tensor([middle, middle]),
        torch.tensor([0, 1]),
        torch.tensor([0, 1]),
        torch.zeros(2, PRODUCT_IMAGE_SIZE, PRODUCT_IMAGE_SIZE, 3, dtype=torch.uint8),
    )
    return export_model(
        TRYON_GENERATOR,
        serving,
        repository,
        version,
        latent_dim=TRYON_LATENT_DIM,
        example_inputs=example,
        **settings,
    )


def export_quality_judge(
    repository: Path, version: int = 1, *, weights: Path = JUDGE_WEIGHTS, **settings: Any
) -> Path:
    """Export the judge classifier saved at ``weights`` as ``quality_judge`` (``settings``: see
    ``export_model``)."""
    from training.evaluate.classifier import FEATURE_DIM, load_judge  # pulls in the data modules

    if FEATURE_DIM != JUDGE_FEATURE_DIM:
        raise ValueError(f"the judge has {FEATURE_DIM} features, the serving contract {JUDGE_FEATURE_DIM}")
    judge, _ = load_judge(weights)
    example = (torch.zeros(2, PRODUCT_IMAGE_SIZE, PRODUCT_IMAGE_SIZE, 3, dtype=torch.uint8),)
    return export_model(
        QUALITY_JUDGE, JudgeServing(judge), repository, version, example_inputs=example, **settings
    )


def export_trained(
    cgan_run: Path,
    cvae_run: Path,
    repository: Path,
    version: int = 1,
    *,
    noise_scale: float = 1.0,
    judge_weights: Path = JUDGE_WEIGHTS,
    **settings: Any,
) -> None:
    """Export the EMA generator of ``cgan_run``, the try-on VAE of ``cvae_run`` (last checkpoints)
    and the judge classifier at ``judge_weights``."""
    from training.cgan.train import CganConfig  # pulls in the training data modules

    cgan = _last_checkpoint(cgan_run)
    config = CganConfig(**cgan["config"])
    generator = Generator(config.generator_width, num_patterns=NUM_PATTERNS if config.patterns else 0)
    generator.load_state_dict(cgan["ema"])
    export_product_generator(generator, repository, version, noise_scale=noise_scale, **settings)
    vae = TryOnVAE()
    vae.load_state_dict(_last_checkpoint(cvae_run)["model"])
    export_tryon_vae(vae, repository, version, **settings)
    export_quality_judge(repository, version, weights=judge_weights, **settings)


def _last_checkpoint(run_dir: Path) -> dict[str, Any]:
    path = run_dir / CHECKPOINT_NAME
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}: train first")
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    return state


_INSTANCE_KIND = re.compile(r"\bkind: KIND_CPU\b")


def gpu_repository(source: Path, target: Path) -> Path:
    """Copy the model repository ``source`` to ``target`` with every instance group on ``KIND_GPU``.

    For a GPU run of the same weights; ``target`` is replaced if it exists.
    """
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, symlinks=True)
    for config in target.glob("*/config.pbtxt"):
        config.write_text(_INSTANCE_KIND.sub("kind: KIND_GPU", config.read_text()))
    return target
