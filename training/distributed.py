"""Training on several processes or machines with PyTorch's DDP, started by ``torchrun``.

``torchrun --nproc-per-node N -m training.cli train-cgan ... --distributed`` starts N processes
with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address in their environment
(``--nnodes`` and ``--rdzv-endpoint`` spread them over machines). Each process trains on its
share of the data (``DistributedSampler``); gradients are averaged after every backward. Gloo
on CPU, NCCL on GPUs. Only rank 0 writes checkpoints, sample grids, metrics and the export.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

#: the environment torchrun sets in every process it starts
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Distributed:
    """Where this process stands in the run; the default is a single process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def enabled(self) -> bool:
        return self.world_size > 1 or dist.is_initialized()

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` averaged over every process (unchanged on one)."""
        if not self.enabled:
            return values
        total = values.clone().to(self.device)
        dist.all_reduce(total)
        return (total / self.world_size).cpu()


def start(*, distributed: bool) -> Distributed:
    """Join the process group torchrun set up (``distributed``), else run as one process."""
    if not distributed:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise RuntimeError(
                "started by torchrun with several processes but without --distributed: each would "
                "train alone and write the same files; add --distributed"
            )
        return Distributed()
    missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
    if missing:
        raise RuntimeError(
            f"--distributed needs torchrun's environment ({', '.join(missing)} unset): start it with "
            "`torchrun --nproc-per-node N -m training.cli train-cgan ... --distributed`"
        )
    local_rank = int(os.environ["LOCAL_RANK"])
    if torch.cuda.is_available():
        backend, device = "nccl", torch.device(f"cuda:{local_rank}")
        torch.cuda.set_device(device)
    else:
        backend, device = "gloo", torch.device("cpu")
    dist.init_process_group(backend)
    return Distributed(dist.get_rank(), dist.get_world_size(), local_rank, device)


def stop(run: Distributed) -> None:
    if run.enabled and dist.is_initialized():
        dist.destroy_process_group()
