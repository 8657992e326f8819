"""The EOPM objective: CE(M(F(x)), y) + (lambda / N) * sum_k CE(M_k(F(x)), y).

F(x) is computed once and G is backpropagated once: the vendor passes run on a detached copy
of F(x) whose gradient is accumulated chunk by chunk (each vendor graph is freed right away),
and then pushed through G in a single backward call. The vendor's weights never need
gradients.

The N + 1 weight sets (clean first) come in chunks. A chunk of one set runs the vendor once
with that set swapped in; a chunk of k stacked sets runs all k models as one batched
computation (``torch.func.vmap`` over the stacked weights: one grouped kernel per layer).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import vmap

from nfdeploy.train.precision import Precision
from nfdeploy.vendor import VendorModule


@dataclass(frozen=True)
class WeightChunk:
    """Weight sets that run as one vendor call, and the loss weight of each set."""

    weights: Mapping[str, torch.Tensor]  # one set, or len(loss_weights) sets stacked on dim 0
    loss_weights: tuple[float, ...]

    @property
    def stacked(self) -> bool:
        return len(self.loss_weights) > 1


def autocast(
    precision: Precision, device: torch.device
) -> contextlib.AbstractContextManager[object]:
    """A fresh autocast context for one forward (a no-op in fp32)."""
    if precision is Precision.FP32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def loss_weights(n_perturbed: int, lam: float) -> list[float]:
    """1 for the clean model, lambda / N for each perturbed one."""
    return [1.0] + [lam / n_perturbed] * n_perturbed


def chunk_weight_sets(
    sets: Sequence[Mapping[str, torch.Tensor]], weights: Sequence[float], chunk: int
) -> list[WeightChunk]:
    """Group weight sets into chunks of at most ``chunk``; a chunk of several is stacked."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    chunks = []
    for start in range(0, len(sets), chunk):
        group, group_weights = sets[start : start + chunk], tuple(weights[start : start + chunk])
        if len(group) == 1:
            chunks.append(WeightChunk(group[0], group_weights))
        else:
            stacked = {name: torch.stack([s[name] for s in group]) for name in group[0]}
            chunks.append(WeightChunk(stacked, group_weights))
    return chunks


def eopm_step(
    fused_input: nn.Module,
    vendor: VendorModule,
    x: torch.Tensor,
    y: torch.Tensor,
    chunks: Iterable[WeightChunk],
    *,
    precision: Precision = Precision.FP32,
) -> float:
    """Accumulate EOPM gradients into ``fused_input``'s parameters; returns the total loss.

    ``precision`` applies to the vendor passes. G always runs in fp32: it is a few percent of
    the step, and bf16 in its BatchNorm caused most of the bf16 gradient error (cosine to
    fp32 0.97 -> 0.999 on the test vendors).
    """
    fused = fused_input(x)
    leaf = fused.detach().requires_grad_(True)
    total = torch.zeros((), device=x.device)
    for chunk in chunks:
        with autocast(precision, x.device):
            loss = _chunk_loss(vendor, leaf, y, chunk)
        loss.backward()
        total += loss.detach()
    if leaf.grad is not None:
        fused.backward(leaf.grad)
    return float(total.item())


def _chunk_loss(
    vendor: VendorModule, inputs: torch.Tensor, y: torch.Tensor, chunk: WeightChunk
) -> torch.Tensor:
    if not chunk.stacked:
        logits = vendor(inputs, vendor.prepare_overrides(chunk.weights))
        return F.cross_entropy(logits.float(), y) * chunk.loss_weights[0]

    def run(weights: Mapping[str, torch.Tensor], batch: torch.Tensor) -> torch.Tensor:
        with vendor.weight_overrides(weights):
            return vendor(batch)

    logits = vmap(run, in_dims=(0, None))(dict(chunk.weights), inputs)  # [k, B, classes]
    k = logits.shape[0]
    per_model = F.cross_entropy(logits.float().flatten(0, 1), y.repeat(k), reduction="none").view(
        k, -1
    )
    scale = torch.tensor(chunk.loss_weights, device=inputs.device)
    return (per_model.mean(1) * scale).sum()


def eopm_loss_naive(
    fused_input: nn.Module,
    vendor: VendorModule,
    x: torch.Tensor,
    y: torch.Tensor,
    perturbed: list[dict[str, torch.Tensor]],
    *,
    lam: float,
) -> torch.Tensor:
    """The loss written out directly (one graph, G shared); the test oracle for :func:`eopm_step`."""
    fused = fused_input(x)
    loss = F.cross_entropy(vendor(fused), y)
    for overrides in perturbed:
        with vendor.weight_overrides(overrides):
            loss = loss + lam / len(perturbed) * F.cross_entropy(vendor(fused), y)
    return loss
