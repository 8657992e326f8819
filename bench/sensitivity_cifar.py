"""Per-tensor sensitivity of the CIFAR-10 vendor, and the keep-k curve, for docs/fault-model.md.

Runs `nfdeploy sensitivity` (the library function) once and writes, into --out:
sensitivity.json (the report), sensitivity.log (command and table), sensitivity.png and
keep-k.png.

    python bench/sensitivity_cifar.py [--model bench/results/cifar10/resnet20_c1-vendor/resnet20_c1.onnx]
        [--data /work/shared/data/cifar10] [--limit 1000] [--trials 5]
        [--fault-model stuck-at] [--ber 0.01] [--keep-max 8] [--out docs/fault-realism]

The defaults are the documented run (int8 per-tensor storage, --threads 1).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from nfdeploy.onnx.atomic import write_bytes_atomic
from nfdeploy.sensitivity.api import sensitivity

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=ROOT / "bench" / "results" / "cifar10" / "resnet20_c1-vendor" / "resnet20_c1.onnx",
    )
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--preprocess", default=None, help="default: stored in the model")
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--fault-model", default="stuck-at")
    parser.add_argument("--ber", type=float, default=0.01)
    parser.add_argument("--keep-max", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "fault-realism")
    args = parser.parse_args()
    report = args.out / "sensitivity.json"
    result = sensitivity(
        model=_relative(str(args.model.resolve())), data=args.data, split=args.split, limit=args.limit,
        preprocess=args.preprocess, ber=args.ber, trials=args.trials,
        fault_model=args.fault_model, storage="int8-tensor", keep_max=args.keep_max,
        threads=args.threads, report=str(report), plot=str(args.out), quiet=True,
    )  # fmt: skip
    command = shlex.join(["python", *(_relative(a) for a in sys.argv)])
    seconds = result.timing["seconds"]
    log = f"$ {command}\n{result.table()}\n({seconds:.0f} s, --threads {args.threads})\n"
    print(f"log: {write_bytes_atomic(args.out / 'sensitivity.log', log.encode())}")


def _relative(arg: str) -> str:
    """Paths inside the repository as relative ones, so the log reads the same anywhere."""
    return arg.replace(str(ROOT) + "/", "") if Path.cwd() == ROOT else arg


if __name__ == "__main__":
    main()
