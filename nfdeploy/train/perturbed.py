"""Perturbed vendor weights for training, from the same stored codes and kernel that validate uses."""

from __future__ import annotations

import numpy as np
import torch

from nfdeploy.faults.onnx_model import FaultableModel
from nfdeploy.faults.spec import TRAIN_SEED_RANGE, FaultSpec
from nfdeploy.faults.storage import perturb


class PerturbedWeights:
    """Seed -> {ONNX initializer name: float tensor}, exactly as validate writes them."""

    def __init__(
        self,
        model: FaultableModel,
        spec: FaultSpec,
        *,
        threads: int = 1,
        channels_last: bool = False,
    ) -> None:
        self.model, self.spec, self.threads = model, spec, threads
        self.channels_last = channels_last  # 4-D weights in NHWC strides: faster convs on CPU

    def _tensor(self, values: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(values))
        if self.channels_last and tensor.dim() == 4:
            return tensor.contiguous(memory_format=torch.channels_last)
        return tensor

    def clean(self) -> dict[str, torch.Tensor]:
        """Stored (e.g. int8-quantized) weights without faults: the 'M' of the EOPM loss."""
        return {
            t.name: self._tensor(w.dequantize())
            for t, w in zip(self.model.targets, self.model.stored, strict=True)
        }

    def for_seed(self, seed: int) -> dict[str, torch.Tensor]:
        faulty = perturb(
            self.model.stored,
            self.spec,
            seed=seed,
            threads=self.threads,
            namespace=self.model.namespace,
        )
        return {
            t.name: self._tensor(w.dequantize(codes))
            for t, w, (codes, _) in zip(self.model.targets, self.model.stored, faulty, strict=True)
        }


def draw_train_seeds(rng: np.random.Generator, count: int) -> list[int]:
    """Fault-pattern seeds from the training range (disjoint from evaluation seeds)."""
    low, high = TRAIN_SEED_RANGE
    return [int(s) for s in rng.integers(low, high, size=count)]
