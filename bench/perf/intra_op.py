"""The torch intra-op threads of the committed backends: ``intra_op_threads`` in each model's
``config.pbtxt`` (written by ``training/export.py``), read as ``bench.backends`` reads it.

The in-process alternative runs torch with these (``bench.perf.inprocess``), so its model runs
with the threads each Triton instance gets, not torch's default of one per core. Torch-free: the
benchmark's driver reads it to set the workers' ``OMP_NUM_THREADS``.
"""

from __future__ import annotations

from pathlib import Path

from bench.backends import config_parameters
from embedded.triton import DEFAULT_REPOSITORY
from serving_contract.tensors import PRODUCT_GENERATOR, QUALITY_JUDGE, TRYON_GENERATOR

#: the models the in-process worker loads (``bench.perf.torch_inference``)
MODELS = (PRODUCT_GENERATOR.name, TRYON_GENERATOR.name, QUALITY_JUDGE.name)
#: the parameter every backend's ``initialize`` passes to ``torch.set_num_threads``
PARAMETER = "intra_op_threads"


def intra_op_threads(repository: Path = DEFAULT_REPOSITORY) -> int:
    """The one ``intra_op_threads`` every model in ``repository`` sets; a clear error when a
    config lacks it, it is not a positive integer, or the models disagree."""
    found: dict[str, int] = {}
    for name in MODELS:
        config = repository / name / "config.pbtxt"
        value = config_parameters(repository / name).get(PARAMETER)
        if value is None:
            raise ValueError(f"{config}: parameter {PARAMETER} is missing (training/export.py writes it)")
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{config}: parameter {PARAMETER} must be a positive integer, got {value!r}")
        found[name] = int(value)
    if len(set(found.values())) != 1:
        raise ValueError(f"{PARAMETER} must be the same for every model in {repository}, got {found}")
    return found[MODELS[0]]
