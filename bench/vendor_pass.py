"""One EOPM vendor pass (forward + backward to the input) by memory layout of inputs and weights.

CIFAR ResNet18 (random weights: timing only), batch 25, stuck-at 1% weights from the training
path (`PerturbedWeights`), against a native torch forward + full backward. Mean of 4 after 1 warm-up.

    python bench/vendor_pass.py [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_step import random_resnet18_vendor

from nfdeploy.train.perturbed import PerturbedWeights


def mean_time(fn: Callable[[], object], repeats: int = 4) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base, vendor, faultable, spec = random_resnet18_vendor()
    x, y = torch.randn(25, 3, 32, 32), torch.randint(0, 10, (25,))
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def vendor_pass(inputs: torch.Tensor, weights: dict[str, torch.Tensor]) -> None:
        leaf = inputs.detach().requires_grad_(True)
        with vendor.weight_overrides(weights):
            F.cross_entropy(vendor(leaf), y).backward()

    def native_pass() -> None:
        base.zero_grad()
        F.cross_entropy(base(x), y).backward()

    plain = PerturbedWeights(faultable, spec).for_seed(1)
    nhwc = PerturbedWeights(faultable, spec, channels_last=True).for_seed(1)
    print(f"CIFAR ResNet18, batch 25, {args.threads} threads; seconds per pass")
    print(f"  inputs NCHW, weights NCHW : {mean_time(lambda: vendor_pass(x, plain)):.3f}")
    print(f"  inputs NHWC, weights NCHW : {mean_time(lambda: vendor_pass(x_cl, plain)):.3f}")
    print(
        f"  inputs NHWC, weights NHWC : {mean_time(lambda: vendor_pass(x_cl, nhwc)):.3f}  (as nfdeploy train runs)"
    )
    print(f"  native forward + full backward (weight grads too): {mean_time(native_pass):.3f}")


if __name__ == "__main__":
    main()
