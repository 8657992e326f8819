"""The EOPM objective: CE(M(F(x)), y) + (lambda / N) * sum_k CE(M_k(F(x)), y).

F(x) is computed once and G is backpropagated once: the vendor passes run on a detached copy
of F(x) whose gradient is accumulated pass by pass (each vendor graph is freed right away), and
then pushed through G in a single backward call. The vendor's weights never need gradients.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from nfdeploy.vendor import VendorModule


def _autocast(enabled: bool, device: torch.device) -> contextlib.AbstractContextManager[object]:
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def eopm_step(
    fused_input: nn.Module,
    vendor: VendorModule,
    x: torch.Tensor,
    y: torch.Tensor,
    perturbed: Iterable[dict[str, torch.Tensor]],
    *,
    lam: float,
    n_perturbed: int,
    amp: bool = False,
) -> tuple[float, float]:
    """Accumulate EOPM gradients into ``fused_input``'s parameters; returns (clean loss, total loss)."""
    with _autocast(amp, x.device):
        fused = fused_input(x)
    leaf = fused.detach().float().requires_grad_(True)
    with _autocast(amp, x.device):
        clean_loss = F.cross_entropy(vendor(leaf).float(), y)
    clean_loss.backward()
    total = clean_loss.item()
    weight = lam / n_perturbed if n_perturbed else 0.0
    for overrides in perturbed:
        with vendor.weight_overrides(overrides), _autocast(amp, x.device):
            loss = F.cross_entropy(vendor(leaf).float(), y) * weight
        loss.backward()
        total += loss.item()
    assert leaf.grad is not None  # set by the clean pass above
    fused.backward(leaf.grad.to(fused.dtype))
    return clean_loss.item(), total


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
