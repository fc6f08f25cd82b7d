"""Memory layout: the models train and run ``channels_last`` on CPU.

Convolutions (transposed ones above all) take a fast path in that layout here, about 3x the
NCHW speed on this 2-core CPU.
"""

from __future__ import annotations

from typing import TypeVar

import torch
from torch import nn

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def channels_last(module: ModuleT) -> ModuleT:
    return module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
