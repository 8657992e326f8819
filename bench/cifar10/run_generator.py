"""Train, export and validate one generator against a CIFAR-10 vendor model; resumable.

Every step is the real CLI. Re-running continues where it stopped: training resumes from the
run folder, finished validations are kept. Results (JSON reports) go to bench/results/cifar10/.

    python bench/cifar10/run_generator.py --generator UNetS --ber 0.01 --fault-model stuck-at \
        [--vendor bench/cache/cifar10/resnet20.onnx] [--epochs 2] [--limit 10000] [--n-perturbed 5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = str(ROOT.parent / "shared" / "data" / "cifar10")


def nfdeploy(*args: str) -> None:
    command = [sys.executable, "-m", "nfdeploy", *args]
    print("$ nfdeploy " + " ".join(args), flush=True)
    subprocess.run(command, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--vendor", type=Path, default=ROOT / "bench" / "cache" / "cifar10" / "resnet20.onnx"
    )
    parser.add_argument("--surrogate", type=Path, default=None)
    parser.add_argument("--generator", default="UNetS")
    parser.add_argument("--ber", type=float, default=0.01)
    parser.add_argument("--fault-model", default="stuck-at")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--limit", type=int, default=10000)
    parser.add_argument("--n-perturbed", type=int, default=5)
    parser.add_argument("--lr", default="5e-3")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--fault-models", default="stuck-at,flip", help="validate under these")
    parser.add_argument(
        "--half-ber",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also validate at BER/2",
    )
    args = parser.parse_args()
    tag = f"{args.vendor.stem}-{args.generator}-{args.fault_model}-{args.ber:g}"
    if args.surrogate:
        tag += f"-via-{args.surrogate.stem}"
    run = ROOT / "bench" / "cache" / "cifar10" / "runs" / tag
    results = ROOT / "bench" / "results" / "cifar10" / tag
    results.mkdir(parents=True, exist_ok=True)
    if (run / "last.pt").exists():
        nfdeploy("train", "--resume", str(run))
    else:
        train = ["train", "--model", str(args.vendor), "--data", DATA, "--out", str(run),
                 "--generator", args.generator, "--epochs", str(args.epochs), "--limit", str(args.limit),
                 "--n-perturbed", str(args.n_perturbed), "--train-ber", f"{args.ber:g}", "--lr", args.lr,
                 "--fault-model", args.fault_model, "--holdout", "500"]  # fmt: skip
        if args.surrogate:
            train += ["--surrogate", str(args.surrogate)]
        nfdeploy(*train)
    generator = run / "generator.onnx"
    nfdeploy("export", "--run", str(run), "--out", str(generator))
    (results / "metrics.jsonl").write_bytes((run / "metrics.jsonl").read_bytes())
    bers = [f"{args.ber:g}"] + ([f"{args.ber / 2:g}"] if args.half_ber else [])
    for model in args.fault_models.split(","):
        report = results / f"validate-{model}.json"
        if report.exists():
            continue
        nfdeploy("validate", "-q", "--model", str(args.vendor), "--generator", str(generator), "--data", DATA,
                 *[a for b in bers for a in ("--ber", b)], "--fault-model", model,
                 "--trials", str(args.trials), "--report", str(report), "--plots", str(results / f"plots-{model}"))  # fmt: skip


if __name__ == "__main__":
    main()
