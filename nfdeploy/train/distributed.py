"""Rank awareness under torchrun: DDP with gloo on CPU (nccl on GPU); only rank 0 writes."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from nfdeploy.errors import NfdeployError


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> DistContext:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        if torch.cuda.is_available():  # one GPU per rank on a multi-GPU node: "cuda" = this one
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return cls(rank=dist.get_rank(), world=dist.get_world_size())

    def wrap(self, module: nn.Module) -> nn.Module:
        return nn.parallel.DistributedDataParallel(module) if self.world > 1 else module

    def shard(self, indices: np.ndarray) -> np.ndarray:
        """This rank's equal share of an epoch's (already permuted) indices."""
        per_rank = len(indices) // self.world
        return indices[self.rank :: self.world][:per_rank]

    def mean(self, value: float) -> float:
        if self.world <= 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.world

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def check_resume_world(*, trained_with: int, now: int, run: str) -> None:
    """Resume only with the world size a run started with.

    Each rank shards the epoch's data and draws its fault seeds from (seed, epoch, rank), and
    the optimizer's step count and global batch (--batch-size x world) were set by it; another
    world size would continue a different run under the same name.
    """
    if trained_with != now:
        raise NfdeployError(
            f"--resume {run}: trained with {trained_with} process(es) (torchrun world size), "
            f"now {now}; resume with the same world size (e.g. torchrun --nnodes N "
            f"--nproc-per-node M, N x M = {trained_with}), or start a new run with --out."
        )
