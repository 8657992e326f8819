"""bf16 vs fp32 training fidelity: the same short run twice, PA(NF) compared (target: within 1 point).

The demo's vendor CNN (demo_cnn, rebuilt unless --out already holds one) on the built-in
synthetic data, a UNetS trained for 3 epochs on 4,000 images, N = 5, stuck-at at the demo's
BER (DEMO_BER; 2% when docs/training.md's figures were taken, with the old 0.16M-weight
vendor kept in bench/results/demo-setting/vendor.onnx), seed 0. Each run goes through the real
CLI (`nfdeploy train --precision ...`, `export`, `validate`). Reported: held-out PA(NF) of
the last epoch (500 images x 3 seeds, from metrics.jsonl), and test PA(NF) from `validate`
(2,000 images x 10 trials, seeds 50000..50009).

    python bench/precision_check.py [--out bench/results/tmp/precision] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from nfdeploy.data import Preprocess, load_dataset
from nfdeploy.demo.pipeline import DEMO_BER
from nfdeploy.demo.vendor_model import DEMO_PREPROCESS, export_vendor, train_vendor

ROOT = Path(__file__).resolve().parents[1]


def nfdeploy(*args: str) -> None:
    command = [sys.executable, "-m", "nfdeploy", *args]
    print("$ nfdeploy " + " ".join(args), flush=True)
    subprocess.run(command, check=True)


def ensure_demo_vendor(path: Path) -> Path:
    """The demo's stand-in vendor (6 epochs on the synthetic data, seed 0), built once."""
    if not path.exists():
        pre = Preprocess.parse(DEMO_PREPROCESS)
        model, _ = train_vendor(load_dataset("synthetic", split="train"), pre=pre, epochs=6, seed=0)
        export_vendor(model, pre, path)
    return path


def one_run(vendor: Path, out: Path, precision: str, epochs: int) -> dict[str, float]:
    run = out / f"run-{precision}"
    start = time.perf_counter()
    nfdeploy("train", "-q", "--model", str(vendor), "--data", "synthetic", "--out", str(run), "--force",
             "--generator", "UNetS", "--epochs", str(epochs), "--limit", "4000",
             "--batch-size", "25", "--n-perturbed", "5", "--train-ber", f"{DEMO_BER:g}",
             "--lr", "5e-3", "--fault-model", "stuck-at", "--seed", "0",
             "--precision", precision)  # fmt: skip
    seconds = time.perf_counter() - start
    nfdeploy("export", "--run", str(run), "--out", str(run / "generator.onnx"))
    report = run / "validate.json"
    nfdeploy("validate", "-q", "--model", str(vendor), "--generator", str(run / "generator.onnx"),
             "--data", "synthetic", "--ber", f"{DEMO_BER:g}", "--fault-model", "stuck-at",
             "--trials", "10", "--report", str(report))  # fmt: skip
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    row = json.loads(report.read_text())["results"][0]
    return {
        "train_seconds": seconds,
        "holdout_pa_nf": 100 * last["pa_nf"],
        "holdout_ca_nf": 100 * last["ca_nf"],
        "test": row,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/tmp/precision")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    vendor = ensure_demo_vendor(args.out / "vendor.onnx")
    results = {p: one_run(vendor, args.out, p, args.epochs) for p in ("fp32", "bf16")}
    (args.out / "summary.json").write_text(json.dumps(results, indent=2))
    print(f"\n{'precision':<10} {'train s':>8} {'held-out CA(NF)':>16} {'held-out PA(NF)':>16}")
    for name, r in results.items():
        print(f"{name:<10} {r['train_seconds']:8.0f} {r['holdout_ca_nf']:16.1f} "
              f"{r['holdout_pa_nf']:16.1f}")  # fmt: skip
    gap = results["bf16"]["holdout_pa_nf"] - results["fp32"]["holdout_pa_nf"]
    verdict = "PASS" if abs(gap) <= 1.0 else "FAIL"
    print(f"held-out PA(NF) bf16 - fp32: {gap:+.2f} points (target within 1: {verdict})")
    print(f"training time fp32 / bf16: "
          f"{results['fp32']['train_seconds'] / results['bf16']['train_seconds']:.2f}x")  # fmt: skip
    print(f"test-set rows (validate, seeds 50000..50009): see {args.out / 'summary.json'}")


if __name__ == "__main__":
    main()
