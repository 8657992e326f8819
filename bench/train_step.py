"""EOPM step time: nfdeploy's step vs a naive loop in the reference code's structure.

Same vendor (CIFAR ResNet18, random weights: timing only), same generator, same N, same
batch, measured side by side in one run. The naive loop recomputes G(x) for every
perturbed model, builds each perturbed model as a deep copy with its own parameters, and
computes gradients for the base model's weights, as the reference implementation does.

    python bench/train_step.py [--n 10] [--batch 25] [--generator ConvL] [--steps 3] [--amp] [--no-sweep]
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from energy_paper import CifarResNet18, export

from nfdeploy.faults.onnx_model import FaultableModel, load_faultable
from nfdeploy.faults.spec import FaultModel, FaultSpec
from nfdeploy.faults.storage import StoredWeight, perturb
from nfdeploy.generators import FusedInput, build_generator
from nfdeploy.train.eopm import eopm_step
from nfdeploy.train.perturbed import PerturbedWeights
from nfdeploy.vendor import load_vendor
from nfdeploy.vendor.module import VendorModule


def fused_input(name: str) -> FusedInput:
    torch.manual_seed(0)
    return FusedInput(build_generator(name), [-1.0], [1.0])


def naive_step(fused, base, stored, spec, x, y, n, lam, seeds, optimizer) -> None:  # type: ignore[no-untyped-def]
    """Reference structure: G recomputed per model, perturbed deep copies, base weights get grads."""
    loss = F.cross_entropy(base(fused(x)), y)
    for seed in seeds[:n]:
        model = copy.deepcopy(base)
        faulty = perturb(stored, spec, seed=seed)
        with torch.no_grad():
            for (_name, param), weight, (codes, _) in zip(
                _weights(model), stored, faulty, strict=True
            ):
                param.copy_(torch.from_numpy(weight.dequantize(codes)))
        loss = loss + lam / n * F.cross_entropy(model(fused(x)), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def random_resnet18_vendor() -> tuple[CifarResNet18, VendorModule, FaultableModel, FaultSpec]:
    """A seeded random CIFAR ResNet18 (timing only) loaded through ONNX as `nfdeploy train`
    loads a vendor, with the 1% stuck-at spec for its stored weights."""
    torch.manual_seed(0)
    base = CifarResNet18().eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "resnet18.onnx"
        onnx.save(export(base), str(path))
        vendor, faultable = load_vendor(path), load_faultable(path)
    return base, vendor, faultable, FaultSpec(FaultModel.STUCK_AT, 0.01, faultable.storage)


def _weights(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.dim() > 1]


def ours_step(fused, vendor, weights, x, y, n, lam, seeds, optimizer, amp: bool) -> None:  # type: ignore[no-untyped-def]
    perturbed = (weights.for_seed(s) for s in seeds[:n])
    eopm_step(fused, vendor, x, y, perturbed, lam=lam, n_perturbed=n, amp=amp)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def timed(fn, steps: int) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--generator", default="ConvL")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-sweep", action="store_true", help="skip the step time vs N part")
    parser.add_argument(
        "--amp", action="store_true", help="also time bf16 autocast (slow without bf16 hardware)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base, vendor, faultable, spec = random_resnet18_vendor()
    weights = PerturbedWeights(faultable, spec, channels_last=True)  # as `nfdeploy train` runs it
    stored = [
        StoredWeight.from_float(n, p.detach().numpy(), spec.storage) for n, p in _weights(base)
    ]
    seeds = list(range(args.n))
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.uniform(-1, 1, (args.batch, 3, 32, 32)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 10, args.batch))
    lam = 5.0

    x_cl = x.contiguous(memory_format=torch.channels_last)
    base_cl = copy.deepcopy(base).to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def run_naive(model: torch.nn.Module = base, inputs: torch.Tensor = x) -> None:
        fused = fused_input(args.generator)
        optimizer = torch.optim.Adam(fused.parameters(), lr=1e-3)
        naive_step(fused, model, stored, spec, inputs, y, args.n, lam, seeds, optimizer)

    def run_ours(n: int, amp: bool = False) -> float:
        # as `nfdeploy train` runs it: generator and inputs in channels_last
        fused = fused_input(args.generator).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        optimizer = torch.optim.Adam(fused.parameters(), lr=1e-3)
        with vendor.weight_overrides(weights.clean()):
            return timed(
                lambda: ours_step(fused, vendor, weights, x_cl, y, n, lam, seeds, optimizer, amp),
                args.steps,
            )

    print(f"vendor CIFAR ResNet18, generator {args.generator}, N={args.n}, batch {args.batch}, "
          f"{args.threads} threads, {args.steps} timed steps after 1 warm-up", flush=True)  # fmt: skip
    naive = timed(run_naive, args.steps)
    naive_cl = timed(lambda: run_naive(base_cl, x_cl), args.steps)
    ours = run_ours(args.n)
    print(f"naive reference-structured step : {naive:7.2f} s")
    print(
        f"  the same in channels_last     : {naive_cl:7.2f} s  (layout alone: {naive / naive_cl:.2f}x)"
    )
    print(f"nfdeploy eopm_step              : {ours:7.2f} s")
    print(
        f"speed-up                        : {naive / ours:7.2f}x  (target >= 2x: {'PASS' if naive / ours >= 2 else 'FAIL'})"
    )
    print(f"structure alone (naive in channels_last / ours): {naive_cl / ours:.2f}x")
    if args.amp:
        amp = run_ours(args.n, amp=True)
        print(f"nfdeploy eopm_step, bf16 autocast: {amp:7.2f} s  ({ours / amp:.2f}x vs fp32)")
    if args.no_sweep:
        return
    print("\nstep time vs N (nfdeploy, fp32):")
    times = {n: run_ours(n) for n in (1, 5, 10)}
    for n, t in times.items():
        print(f"  N={n:<2d}: {t:6.2f} s   ({t / times[1]:.2f}x of N=1)")
    slope = (times[10] - times[5]) / 5
    print(f"  marginal cost per perturbed model: {slope:.2f} s; linear prediction for N=10 from N=1,5: "
          f"{times[5] + 5 * (times[5] - times[1]) / 4:.2f} s (measured {times[10]:.2f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
