"""Does an item get the same bytes whatever batch it is served in? The check behind Atelier's seed
contract (docs/determinism.md), run on the committed backends' own ``forward``.

Each of ``ITEMS`` distinct items (its own seed and conditions) is served alone, then among others:
in batches of several sizes, at shifted positions. An item whose bytes differ from its bytes alone
is a *placement failure*. Strategies are the serving options measured in ``bench.determinism``:

- ``fixed``: what the backends do, every forward on exactly ``forward_batch`` rows
- ``fixed-N``: the same with chunks of N rows (``fixed-1`` is one item per forward)
- ``multiple-4``: one forward per batch, padded to a multiple of 4 rows (Atelier before issue 12)
- ``multiple-4-step-8``: the same, the pixels then rounded to a step of 8 levels
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from serving_contract.tensors import PRODUCT_GENERATOR, TRYON_GENERATOR

#: the models checked
MODELS = (PRODUCT_GENERATOR.name, TRYON_GENERATOR.name)
#: distinct items checked per model
ITEMS = 64
#: sizes of the batches the items are served in, besides alone
BATCH_SIZES = (2, 3, 5, 8, 13, 24, 64)
#: positions move by this many items from one batch to the next (not a divisor of any chunk size)
STRIDE = 7

#: one forward's images for the items ``indices`` of model ``name``
Serve = Callable[[list[int]], torch.Tensor]


def conditions(name: str, indices: list[int]) -> list[torch.Tensor]:
    """The request tensors of items ``indices``: each item has its own category, colour or body."""
    index = torch.tensor(indices)
    if name == PRODUCT_GENERATOR.name:
        return [index % 10, index % 12]
    body = torch.tensor([[172.0, 70.0, 96.0, 82.0, 98.0]]) + (index.view(-1, 1) % 13).float() * 0.7
    garments = (index.view(-1, 1, 1, 1) * 37 % 251).to(torch.uint8).expand(-1, 32, 32, 3).contiguous()
    wearable = torch.tensor([0, 1, 2, 3, 4, 6])
    return [body, index % 4, wearable[index % 6], garments]


def seeds(indices: list[int]) -> np.ndarray:
    return np.asarray([1000 + 7919 * i for i in indices], dtype=np.int64)


def strategy(backend: Any, name: str, kind: str) -> Serve:
    """The serving function of strategy ``kind`` over ``backend`` (see the module doc)."""
    if kind == "fixed" or kind.startswith("fixed-"):
        rows = backend.forward_batch if kind == "fixed" else int(kind.removeprefix("fixed-"))

        def fixed(indices: list[int]) -> torch.Tensor:
            backend.forward_batch, saved = rows, backend.forward_batch
            try:
                return backend.forward(*conditions(name, indices), seeds=seeds(indices))
            finally:
                backend.forward_batch = saved

        return fixed
    if kind.startswith("multiple-4"):
        step = 8 if kind.endswith("step-8") else 1
        module = sys.modules[type(backend).__module__]

        def padded_to_multiple(indices: list[int]) -> torch.Tensor:
            rows = len(indices) + (-len(indices) % 4)
            inputs = [module.noise(seeds(indices), backend.latent_dim), *conditions(name, indices)]
            with torch.inference_mode():
                images = backend.model(*[module.padded(t, rows) for t in inputs])[: len(indices)]
            return images // step * step

        return padded_to_multiple
    raise ValueError(f"unknown strategy {kind!r}")


def placements(items: int = ITEMS) -> Iterator[list[int]]:
    """Batches of items: every size of ``BATCH_SIZES``, starting at shifted positions."""
    for size in BATCH_SIZES:
        for start in range(0, items, STRIDE * max(1, size // 8)):
            yield [(start + k) % items for k in range(min(size, items))]


@dataclass(frozen=True)
class Placement:
    """One item served in one batch with other bytes than alone."""

    item: int
    batch: tuple[int, ...]
    pixels: int  #: pixel values that differ from the item alone
    levels: int  #: the largest difference, in levels of 255


def failures(serve: Serve, *, items: int = ITEMS) -> tuple[list[Placement], int, np.ndarray]:
    """Placement failures of ``serve``, how many placements were checked, and the items alone."""
    alone = np.stack([serve([i]).numpy()[0] for i in range(items)])
    found, checked = [], 0
    for batch in placements(items):
        images = serve(batch).numpy()
        for position, item in enumerate(batch):
            checked += 1
            differ = images[position].astype(np.int16) - alone[item]
            if differ.any():
                levels = int(np.abs(differ).max())
                found.append(Placement(item, tuple(batch), int(np.count_nonzero(differ)), levels))
    return found, checked, alone
