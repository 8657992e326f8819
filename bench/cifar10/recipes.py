"""The recipe study on CIFAR-10 against the committed CPU-trained vendor (bench/recipes.py).

The same UNetS seed, the same 12,000 training images and 500 held-out images for every
recipe, a fixed budget of 288,000 vendor passes each (images x (N + 1)), the target 1%
stuck-at; best epoch picked on 8 held-out fault patterns; test: 10 trials x 5,000 test
images (seeds 50000..50009, the same patterns for every recipe, so differences are paired).
Runs go to the ignored bench/cache; --publish copies each recipe's generator.onnx, config,
metrics and report to bench/results/cifar10/recipes/ for committing.

    python bench/cifar10/recipes.py [--jobs 2] [--recipes baseline,ber-1.5x] [--publish]
Any other bench/recipes.py option overrides these defaults.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import recipes

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "bench/results/cifar10/resnet20_c1-vendor/resnet20_c1.onnx"
WORK = ROOT / "bench/cache/cifar10/recipes"
PUBLISHED = ROOT / "bench/results/cifar10/recipes"
KEPT = ("generator.onnx", "config.json", "metrics.jsonl", "validate.json")
DEFAULTS = [
    "--model", str(VENDOR), "--data", str(ROOT.parent / "shared/data/cifar10"),
    "--train-ber", "0.01", "--images", "12000", "--holdout", "500", "--budget", "288000",
    "--lr", "1e-3", "--holdout-trials", "8", "--test-trials", "10", "--test-limit", "5000",
    "--threads", "1", "--out", str(WORK), "--plot", str(ROOT / "docs/cifar10/recipes.png"),
    "--recipes", ",".join(
        ["baseline", "ber-1.5x", "soft-t2", "ber-1.5x+soft-t2", "lambda-2", "n2", "n10",
         "ber-warmup", "augment", "worst-k2", "lr-2x", "batch-100",
         "soft-t2+n2"]
    ),
]  # fmt: skip


def publish() -> None:
    """Copy what re-checks each row (no checkpoints) into the committed results folder."""
    for run in sorted(p for p in WORK.iterdir() if (p / "validate.json").is_file()):
        target = PUBLISHED / run.name
        target.mkdir(parents=True, exist_ok=True)
        for name in KEPT:
            shutil.copy2(run / name, target / name)
    shutil.copy2(WORK / "summary.json", PUBLISHED / "summary.json")


if __name__ == "__main__":
    argv = sys.argv[1:]
    do_publish = "--publish" in argv
    argv = [a for a in argv if a != "--publish"]
    recipes.main(DEFAULTS + argv)
    if do_publish:
        publish()
