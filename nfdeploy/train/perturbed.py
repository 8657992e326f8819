"""Perturbed vendor weights for training, from the same stored codes and kernel that validate uses."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import torch

from nfdeploy.faults.onnx_model import FaultableModel
from nfdeploy.faults.spec import TRAIN_SEED_RANGE, FaultSpec
from nfdeploy.faults.storage import perturb
from nfdeploy.train.eopm import WeightChunk, chunk_weight_sets, loss_weights

T = TypeVar("T")
R = TypeVar("R")


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

    def for_seed(self, seed: int, ber: float | None = None) -> dict[str, torch.Tensor]:
        """The weights for ``seed``, at ``ber`` instead of the spec's rate if given."""
        spec = self.spec if ber is None else dataclasses.replace(self.spec, ber=ber)
        faulty = perturb(
            self.model.stored,
            spec,
            seed=seed,
            threads=self.threads,
            namespace=self.model.namespace,
        )
        return {
            t.name: self._tensor(w.dequantize(codes))
            for t, w, (codes, _) in zip(self.model.targets, self.model.stored, faulty, strict=True)
        }


# seeds (None = clean), loss weights, BER (None = the spec's)
ChunkJob = tuple[tuple[int | None, ...], tuple[float, ...], float | None]


class StepWeights:
    """Builds the weight chunks of EOPM steps (clean set first) on the training device.

    :meth:`plan` splits one step's sets into chunk jobs; :meth:`build` makes one chunk. Jobs
    are small, so a whole epoch can be planned up front and built one chunk ahead
    (:func:`prefetched`), keeping about two chunks of weights in memory.
    """

    def __init__(
        self,
        weights: PerturbedWeights,
        *,
        lam: float,
        n_perturbed: int,
        chunk: int,
        device: torch.device,
    ) -> None:
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        self.weights, self.chunk, self.device = weights, chunk, device
        self.loss_weights = loss_weights(n_perturbed, lam)
        self.clean = self._moved(weights.clean())

    def _moved(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.device.type == "cpu":
            return tensors
        return {k: v.pin_memory().to(self.device, non_blocking=True) for k, v in tensors.items()}

    def plan(self, seeds: Sequence[int], ber: float | None = None) -> list[ChunkJob]:
        sets: list[int | None] = [None, *seeds]
        return [
            (tuple(sets[i : i + self.chunk]), tuple(self.loss_weights[i : i + self.chunk]), ber)
            for i in range(0, len(sets), self.chunk)
        ]

    def build(self, job: ChunkJob) -> WeightChunk:
        seeds, weights, ber = job
        sets = [
            self.clean if s is None else self._moved(self.weights.for_seed(s, ber)) for s in seeds
        ]
        (chunk,) = chunk_weight_sets(sets, weights, len(sets))
        return chunk


def prefetched(build: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
    """``build(item)`` for each item, the next one built in a background thread meanwhile.

    The fault kernel releases the GIL, so the next step's patterns are drawn while the
    current step computes. Results come in order, so seeds map to patterns as without it.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="nfdeploy-faults") as pool:
        pending = None
        for item in items:
            future = pool.submit(build, item)
            if pending is not None:
                yield pending.result()
            pending = future
        if pending is not None:
            yield pending.result()


def draw_train_seeds(rng: np.random.Generator, count: int) -> list[int]:
    """Fault-pattern seeds from the training range (disjoint from evaluation seeds)."""
    low, high = TRAIN_SEED_RANGE
    return [int(s) for s in rng.integers(low, high, size=count)]
