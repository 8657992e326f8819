"""validate throughput vs --workers K, as ratios measured side by side in one run.

Each K runs the same sweep (the same BERs, trials and images; seeds 50000+) in turn, K = 1
first, and the reports are checked equal apart from timing. Threads per worker: cores / K.

    python bench/validate_scaling.py [--model M.onnx] [--data DIR] [--workers 1,2] [--trials 4]
    python bench/validate_scaling.py --ray 2      # adds a local Ray with 2 actors (nfdeploy[ray])

Without --model: a seeded random ResNet-20 (timing only; see validate_overhead.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from validate_overhead import random_resnet20

from nfdeploy.faults.spec import FaultModel
from nfdeploy.runtime.session import available_cores
from nfdeploy.validate.config import ValidateConfig
from nfdeploy.validate.pool import Backend
from nfdeploy.validate.runner import run_validations

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10"))
    parser.add_argument("--preprocess", default="cifar10")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--ray", type=int, default=0, help="also run --backend ray with K actors")
    args = parser.parse_args()
    if args.model is None:
        args.model = random_resnet20(ROOT / "bench" / "results" / "tmp" / "random-vendor")[0]
    cores = available_cores()
    print(f"model {args.model.name}, {args.limit} images, BERs 0.005/0.01, {args.trials} trials "
          f"each, stuck-at; {cores} cores")  # fmt: skip
    reports: dict[str, str] = {}
    seconds: dict[str, float] = {}
    runs = [(Backend.LOCAL, int(w)) for w in args.workers.split(",")]
    runs += [(Backend.RAY, args.ray)] if args.ray else []
    for backend, workers in runs:
        k = f"{workers}" if backend is Backend.LOCAL else f"{workers} --backend ray"
        start = time.perf_counter()
        (report,) = run_validations(
            ValidateConfig(
                model=args.model, data=args.data, bers=(0.005, 0.01), trials=args.trials,
                fault_model=FaultModel.STUCK_AT, preprocess=args.preprocess, limit=args.limit,
                workers=workers, backend=backend, progress=False,
            )
        )  # fmt: skip
        seconds[k] = time.perf_counter() - start
        data = report.to_dict()
        reports[k] = json.dumps(
            {key: v for key, v in data.items() if key != "timing"}, sort_keys=True
        )
        trials = 2 * args.trials
        print(f"  --workers {k}: {seconds[k]:6.2f} s  {trials / seconds[k]:5.2f} trials/s  "
              f"({seconds['1'] / seconds[k]:.2f}x K=1){'' if reports[k] == reports['1'] else '  REPORT DIFFERS'}")  # fmt: skip
    same = len(set(reports.values())) == 1
    print(f"reports identical apart from timing: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
