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

from nfdeploy.torchify import VendorModule
from nfdeploy.train.precision import Precision


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
    return [1.0] + ([lam / n_perturbed] * n_perturbed if n_perturbed else [])


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
    targets: torch.Tensor,
    chunks: Iterable[WeightChunk],
    *,
    precision: Precision = Precision.FP32,
    temperature: float = 1.0,
    worst_k: int = 0,
) -> float:
    """Accumulate EOPM gradients into ``fused_input``'s parameters; returns the total loss.

    ``targets``: class indices [B], or class probabilities [B, classes] (soft targets, e.g.
    the clean vendor's softmax at ``temperature``; the loss is then CE at that temperature
    times T^2, which has the gradient of the distillation KL). ``worst_k`` > 0 keeps only
    the k largest perturbed losses of the step (weight lambda / k each): all N are first
    scored without gradients, then only those k run backward.

    ``precision`` applies to the vendor passes. G always runs in fp32: it is a few percent of
    the step, and bf16 in its BatchNorm caused most of the bf16 gradient error (cosine to
    fp32 0.97 -> 0.999 on the test vendors).
    """
    fused = fused_input(x)
    leaf = fused.detach().requires_grad_(True)
    if worst_k:
        chunks = _worst(vendor, leaf, targets, list(chunks), precision, temperature, worst_k)
    total = torch.zeros((), device=x.device)
    for chunk in chunks:
        with autocast(precision, x.device):
            loss = _chunk_loss(vendor, leaf, targets, chunk, temperature)
        loss.backward()
        total += loss.detach()
    if leaf.grad is not None:
        fused.backward(leaf.grad)
    return float(total.item())


def _worst(
    vendor: VendorModule,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    chunks: list[WeightChunk],
    precision: Precision,
    temperature: float,
    k: int,
) -> list[WeightChunk]:
    """The clean chunk and the k perturbed chunks with the largest loss, reweighted to sum alike."""
    clean, perturbed = chunks[0], chunks[1:]
    if any(c.stacked for c in chunks):
        raise ValueError("worst-k needs one weight set per chunk (the per-model loop)")
    with torch.no_grad(), autocast(precision, inputs.device):
        scores = [float(_chunk_loss(vendor, inputs, targets, c, temperature)) for c in perturbed]
    keep = sorted(range(len(perturbed)), key=scores.__getitem__, reverse=True)[:k]
    scale = len(perturbed) / k
    return [clean] + [
        WeightChunk(perturbed[i].weights, (perturbed[i].loss_weights[0] * scale,)) for i in keep
    ]


def _loss(logits: torch.Tensor, targets: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per-image loss: CE for class indices; for probabilities, CE at T, times T^2."""
    if targets.is_floating_point():
        t = temperature
        return F.cross_entropy(logits.float() / t, targets, reduction="none") * (t * t)
    return F.cross_entropy(logits.float(), targets, reduction="none")


def _chunk_loss(
    vendor: VendorModule,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    chunk: WeightChunk,
    temperature: float,
) -> torch.Tensor:
    if not chunk.stacked:
        logits = vendor(inputs, vendor.prepare_overrides(chunk.weights))
        return _loss(logits, targets, temperature).mean() * chunk.loss_weights[0]

    def run(weights: Mapping[str, torch.Tensor], batch: torch.Tensor) -> torch.Tensor:
        with vendor.weight_overrides(weights):
            return vendor(batch)

    logits = vmap(run, in_dims=(0, None))(dict(chunk.weights), inputs)  # [k, B, classes]
    k = logits.shape[0]
    repeated = targets.repeat(k, *([1] * (targets.dim() - 1)))
    per_model = _loss(logits.flatten(0, 1), repeated, temperature).view(k, -1)
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
