"""Validate the benchmark generators on the 10,000 CIFAR-10 test images; resumable.

Each configuration (fault model, BER) is one `nfdeploy validate` call with several
--generator: every trial's faulty vendor session runs once on the plain images and once per
generator, so all generators see the same fault patterns. Finished reports are kept.
Reports go to bench/results/cifar10/<run>/validate-<fault model>-<BER>.json, and those of the
vendor alone (extra points of its PA-vs-BER curve) to <vendor>-vendor/.

    python bench/cifar10/validate_suite.py [--only stuck-at:0.015] [--trials 10]
    python bench/cifar10/validate_suite.py --vendor bench/cache/cifar10/resnet20_v2.onnx --ber 0.01

The first form is the plan of the first vendor (resnet20, generators trained at 1.5%); for
any other vendor the plan follows from the training BER B of its runs (gpu_pipeline.py):
stuck-at runs <vendor>-<G>-stuck-at-B for G in ConvS/DeConvS/UNetS/UNetL and a flip run
<vendor>-UNetS-flip-B/2, each at its BER and half of it under both fault models.
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


GENERATORS = ("ConvS", "DeConvS", "UNetS", "UNetL")
VENDOR_ALONE = [("stuck-at", b) for b in (0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03)] + [
    ("flip", b) for b in (0.0025, 0.005, 0.0075, 0.01, 0.015)
]


def plan_for(vendor: str, ber: float) -> list[tuple[str, float, list[str]]]:
    if vendor == "resnet20":
        return PLAN
    stuck = [f"{vendor}-{g}-stuck-at-{ber:g}" for g in GENERATORS]
    flip = [f"{vendor}-UNetS-flip-{ber / 2:g}"]
    return [
        ("stuck-at", ber, stuck),
        ("flip", ber / 2, flip + stuck),
        ("stuck-at", ber / 2, stuck + flip),
        ("flip", ber, stuck),
        ("flip", ber / 4, flip),
        ("stuck-at", ber / 4, flip),
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
    parser.add_argument("--ber", type=float, default=0.015, help="training BER of the runs")
    parser.add_argument("--no-vendor-curve", action="store_true")
    args = parser.parse_args()
    vendor = args.vendor.stem
    plan = plan_for(vendor, args.ber)
    for model, ber, runs in plan:
        if args.only and args.only != f"{model}:{ber:g}":
            continue
        validate(args, model, ber, runs)
    covered = {(model, f"{ber:g}") for model, ber, _ in plan}
    if vendor != "resnet20" and not args.no_vendor_curve and not args.only:
        for model, ber in VENDOR_ALONE:
            if (model, f"{ber:g}") not in covered:
                validate(args, model, ber, [])


def validate(args: argparse.Namespace, model: str, ber: float, runs: list[str]) -> None:
    """One `nfdeploy validate` call for the runs whose report is missing (none: the vendor alone)."""
    alone = f"{args.vendor.stem}-vendor"
    todo = [run for run in runs if not report_path(run, model, ber).exists()]
    if (runs and not todo) or (not runs and report_path(alone, model, ber).exists()):
        return
    command = ["validate", "-q", "--model", str(args.vendor), "--data", DATA, "--ber", f"{ber:g}",
               "--fault-model", model, "--trials", str(args.trials), "--threads", str(args.threads)]  # fmt: skip
    if runs:
        command += ["--report", str(RESULTS / "{generator}" / f"validate-{model}-{ber:g}.json"),
                    "--plots", str(RESULTS / "{generator}" / f"plots-{model}-{ber:g}")]  # fmt: skip
    else:
        (RESULTS / alone).mkdir(parents=True, exist_ok=True)
        command += ["--report", str(report_path(alone, model, ber))]
    for run in todo:
        (RESULTS / run).mkdir(parents=True, exist_ok=True)
        command += ["--generator", str(CACHE / "runs" / run / "generator.onnx")]
    print("$ nfdeploy " + " ".join(command), flush=True)
    subprocess.run([sys.executable, "-m", "nfdeploy", *command], check=True)


if __name__ == "__main__":
    main()
