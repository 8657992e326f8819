"""Peak resident memory of `nfdeploy train` on the CIFAR-10 bench model (ResNet-20 vendor).

Each generator is trained for one short epoch in its own process (N = 10, batch 25, the
training defaults), and the process's peak RSS is read from getrusage. The data set is
loaded whole (the decoded images), so --limit only shortens the epoch.

    python bench/train_rss.py [--generators UNetS,UNetL] [--limit 1000]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / "cache" / "cifar10"


def peak_rss_mb(command: list[str]) -> tuple[float, float]:
    """Run one child process; its peak RSS (MB) and wall time (s)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = process.communicate()
    if process.returncode:
        sys.exit(err.decode(errors="replace")[-2000:])
    return resource.getrusage(
        resource.RUSAGE_CHILDREN
    ).ru_maxrss / 1024, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=CACHE / "resnet20.onnx")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10"))
    parser.add_argument("--generators", default="UNetS,UNetL")
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if not Path(args.data).exists():
        sys.exit(f"{args.data}: no CIFAR-10 data there; pass --data DIR (the image folders)")
    if not args.model.is_file():
        sys.exit(f"{args.model}: missing; build it with bench/cifar10/train_vendor.py")
    print(
        f"nfdeploy train on {args.model.name}: 1 epoch, {args.limit} images, N=10, batch 25, {args.threads} threads"
    )
    for name in args.generators.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            command = [sys.executable, "-m", "nfdeploy", "train", "-q", "--model", str(args.model),
                       "--data", args.data, "--out", str(Path(tmp) / "run"), "--generator", name,
                       "--epochs", "1", "--limit", str(args.limit), "--holdout", "100",
                       "--threads", str(args.threads)]  # fmt: skip
            # RUSAGE_CHILDREN keeps the maximum over all children, so run the smaller one first
            rss, seconds = peak_rss_mb(command)
        print(f"  {name:<6} peak RSS {rss:6.0f} MB   ({seconds:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
