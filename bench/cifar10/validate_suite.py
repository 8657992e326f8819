"""Validate the benchmark generators on the 10,000 CIFAR-10 test images; resumable.

Each configuration (fault model, BER) is one `nfdeploy validate` call with several
--generator: every trial's faulty vendor session runs once on the plain images and once per
generator, so all generators see the same fault patterns. Finished reports are kept.
Reports go to bench/results/cifar10/<run>/validate-<fault model>-<BER>.json.

    python bench/cifar10/validate_suite.py [--only stuck-at:0.015] [--trials 10]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = str(ROOT.parent / "shared" / "data" / "cifar10")
CACHE = ROOT / "bench" / "cache" / "cifar10"
RESULTS = ROOT / "bench" / "results" / "cifar10"

STUCK = [f"resnet20-{g}-stuck-at-0.015" for g in ("ConvS", "DeConvS", "UNetS", "UNetL")]
FLIP = ["resnet20-UNetS-flip-0.0075"]
FLIP_HALF = ["resnet20-UNetS-flip-0.005"]  # the 0.5% flip, trained on the CPU
# (fault model, BER, runs): trained BER and half of it, under both fault models, and 1% stuck-at;
# in this order (the most informative first).
PLAN = [
    ("stuck-at", 0.015, STUCK),
    ("stuck-at", 0.01, STUCK),  # the reference BER (the training BER was 1.5%)
    ("flip", 0.0075, FLIP + STUCK),
    ("stuck-at", 0.0075, STUCK + FLIP),
    ("flip", 0.00375, FLIP),
    ("stuck-at", 0.00375, FLIP),
    ("flip", 0.015, STUCK),
    ("flip", 0.005, FLIP_HALF),
    ("flip", 0.0025, FLIP_HALF),
    ("stuck-at", 0.005, FLIP_HALF),
    ("stuck-at", 0.0025, FLIP_HALF),
]


def report_path(run: str, model: str, ber: float) -> Path:
    return RESULTS / run / f"validate-{model}-{ber:g}.json"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vendor", type=Path, default=CACHE / "resnet20.onnx")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--only", default=None, help="one configuration, e.g. stuck-at:0.015")
    args = parser.parse_args()
    for model, ber, runs in PLAN:
        if args.only and args.only != f"{model}:{ber:g}":
            continue
        todo = [run for run in runs if not report_path(run, model, ber).exists()]
        if not todo:
            continue
        command = ["validate", "-q", "--model", str(args.vendor), "--data", DATA, "--ber", f"{ber:g}",
                   "--fault-model", model, "--trials", str(args.trials), "--threads", str(args.threads),
                   "--report", str(RESULTS / "{generator}" / f"validate-{model}-{ber:g}.json"),
                   "--plots", str(RESULTS / "{generator}" / f"plots-{model}-{ber:g}")]  # fmt: skip
        for run in todo:
            (RESULTS / run).mkdir(parents=True, exist_ok=True)
            command += ["--generator", str(CACHE / "runs" / run / "generator.onnx")]
        print("$ nfdeploy " + " ".join(command), flush=True)
        subprocess.run([sys.executable, "-m", "nfdeploy", *command], check=True)


if __name__ == "__main__":
    main()
