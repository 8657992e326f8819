"""Validation cost, measured side by side in one run.

1. Per-trial fault emulation (perturb + write initializers + serialize + session build) as a
   fraction of that trial's inference time on the data set (target: <= 5% on 10,000 images).
2. images/s of a float vs a QDQ int8 vendor session.
3. How total time grows with trials and with images (2 sizes of each).
4. Peak RSS of a `nfdeploy validate` process.

    python bench/validate_overhead.py [--model M.onnx] [--qdq M_qdq.onnx] [--data DIR] [--preprocess cifar10]
    python bench/validate_overhead.py --quick   # fewer trials and images (for `make bench`)

Defaults use the CIFAR-10 bench models (bench/cifar10/train_vendor.py) and ../shared/data/cifar10.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

from nfdeploy.faults.spec import FaultModel
from nfdeploy.validate.runner import run_validation

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / "cache" / "cifar10"


def run(
    model: Path, data: str, pre: str, *, trials: int, limit: int | None, threads: int
) -> tuple[dict[str, float], float]:
    start = time.perf_counter()
    report = run_validation(
        model=model, data=data, bers=[0.01], trials=trials, fault_model=FaultModel.STUCK_AT,
        preprocess=pre, limit=limit, threads=threads, progress=False,
    )  # fmt: skip
    return report.timing, time.perf_counter() - start


def peak_rss_mb(model: Path, data: str, pre: str, trials: int) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(
        [sys.executable, "-m", "nfdeploy", "validate", "-q", "--model", str(model), "--data", data,
         "--preprocess", pre, "--ber", "0.01", "--trials", str(trials)],
        check=True, capture_output=True,
    )  # fmt: skip
    return max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) / 1024


def random_resnet20(folder: Path) -> tuple[Path, Path]:
    """A seeded random CIFAR ResNet-20 as ONNX, and its int8 QDQ version (timing only)."""
    import io
    import warnings

    import numpy as np
    import torch
    from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize_static

    sys.path.insert(0, str(ROOT / "bench" / "cifar10"))
    from models import resnet20

    folder.mkdir(parents=True, exist_ok=True)
    float_path, qdq_path = folder / "resnet20.onnx", folder / "resnet20_qdq.onnx"
    torch.manual_seed(0)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            resnet20().eval(), (torch.zeros(1, 3, 32, 32),), buffer, dynamo=False,
            opset_version=17, input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
        )  # fmt: skip
    float_path.write_bytes(buffer.getvalue())
    rng = np.random.default_rng(0)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(
                [{"input": rng.standard_normal((16, 3, 32, 32), dtype=np.float32)}] * 4
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_static(
            str(float_path), str(qdq_path), Reader(),
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        )  # fmt: skip
    return float_path, qdq_path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=CACHE / "resnet20.onnx")
    parser.add_argument("--qdq", type=Path, default=CACHE / "resnet20_qdq.onnx")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10"))
    parser.add_argument("--preprocess", default="cifar10")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--quick", action="store_true", help="1 trial for 1-2, grid 1/2 trials x 2000/4000 images"
    )
    args = parser.parse_args()
    if not Path(args.data).exists():
        sys.exit(f"{args.data}: no CIFAR-10 data there; pass --data DIR (the image folders)")
    trials = 1 if args.quick else 3
    grid_trials, grid_images = ((1, 2), (2000, 4000)) if args.quick else ((2, 4), (2500, 10000))
    defaults = (args.model, args.qdq) == (CACHE / "resnet20.onnx", CACHE / "resnet20_qdq.onnx")
    if defaults and not args.model.is_file():
        args.model, args.qdq = random_resnet20(ROOT / "bench" / "results" / "tmp" / "random-vendor")
        print(f"{CACHE / 'resnet20.onnx'} not built (bench/cifar10/train_vendor.py): timing a "
              "seeded random ResNet-20 instead (same shapes; accuracy figures meaningless)")  # fmt: skip
    for path in (args.model, args.qdq):
        if not path.is_file():
            sys.exit(
                f"{path}: missing; build it with bench/cifar10/train_vendor.py (see bench/cifar10/README.md)"
            )
    common = {"data": args.data, "pre": args.preprocess, "threads": args.threads}

    print(f"model {args.model.name} / {args.qdq.name}, data {args.data}, {args.threads} threads\n")
    timing, _ = run(args.model, trials=trials, limit=None, **common)
    print("1. fault emulation overhead per trial (10,000 images, stuck-at 1%)")
    print(f"   inject+session {timing['inject_s_per_trial'] * 1000:8.1f} ms | inference {timing['infer_s_per_trial']:6.2f} s "
          f"| ratio {timing['overhead_ratio'] * 100:5.2f}%  (target <= 5%: {'PASS' if timing['overhead_ratio'] <= 0.05 else 'FAIL'})")  # fmt: skip
    qdq_timing, _ = run(args.qdq, trials=trials, limit=None, **common)
    print(
        f"   QDQ model: inject+session {qdq_timing['inject_s_per_trial'] * 1000:.1f} ms, ratio {qdq_timing['overhead_ratio'] * 100:.2f}%"
    )
    print("\n2. throughput (images/s, one faulty session per trial)")
    print(
        f"   float {timing['images_per_s']:8.0f} | QDQ int8 {qdq_timing['images_per_s']:8.0f} | "
        f"QDQ / float {qdq_timing['images_per_s'] / timing['images_per_s']:.2f}x"
    )
    print("\n3. total validate time vs trials and images (float model)")
    grid = {
        (t, n): run(args.model, trials=t, limit=n, **common)[1]
        for t in grid_trials
        for n in grid_images
    }
    for (t, n), seconds in grid.items():
        print(f"   trials {t}, images {n:>5}: {seconds:6.2f} s")
    (t1, t2), (n1, n2) = grid_trials, grid_images
    print(f"   trials x{t2 // t1} -> time x{grid[(t2, n2)] / grid[(t1, n2)]:.2f};  images x{n2 // n1} -> time x{grid[(t1, n2)] / grid[(t1, n1)]:.2f}"
          " (fixed costs: data decode cache, model load, clean pass)")  # fmt: skip
    rss = peak_rss_mb(args.model, args.data, args.preprocess, trials)
    print(f"\n4. peak RSS of `nfdeploy validate` ({trials} trials, 10,000 images): {rss:.0f} MB")


if __name__ == "__main__":
    main()
