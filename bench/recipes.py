"""Training-recipe study at a fixed compute budget, counted in vendor passes (images x (N + 1)).

Each recipe trains the same generator from the same seed through `nfdeploy train` on the
same --images training images and the same held-out slice (--limit is the same for all), for
as many epochs as its budget allows at its N (rounded down, so the passes actually spent are
reported), then `nfdeploy validate` scores it on the test split (10 trials, seeds 50000..50009). Printed and written: held-out
PA(NF) per epoch (the training-time figure, 3 seeds) against vendor passes, the test PA(NF),
and the held-out vs test gap; `--plot` draws PA(NF) and CA(NF) against vendor passes.

Default: the demo's stand-in vendor on the built-in synthetic data at 2% stuck-at (minutes).
On CIFAR-10 (bench/cifar10/README.md builds the vendor):

    python bench/recipes.py --model bench/cache/cifar10/resnet20_v6.onnx \\
        --data ../shared/data/cifar10 --preprocess cifar10 --train-ber 0.01 \\
        --images 20000 --budget 3000000

    python bench/recipes.py [--recipes baseline,soft-t2] [--budget 96000] [--images 2000]
                            [--out DIR] [--plot P.png]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from precision_check import ensure_demo_vendor

from nfdeploy.demo.pipeline import DEMO_BER

ROOT = Path(__file__).resolve().parents[1]
# name -> (N, extra `nfdeploy train` arguments); the BER multiplier is applied in main()
RECIPES: dict[str, tuple[int, list[str]]] = {
    "baseline": (5, []),
    "n2": (2, []),
    "n10": (10, []),
    "soft-t2": (5, ["--soft-targets", "2"]),
    "worst-k2": (5, ["--worst-k", "2"]),
    "ber-warmup": (5, ["--ber-warmup", "0.3"]),
    "ber-1.5x": (5, ["BER*1.5"]),
    "augment": (5, ["--augment", "crop-flip"]),
    "label-free": (5, ["--labels", "vendor"]),
    "lr-2x": (5, ["--lr", "1e-2"]),
    "ber-1.5x+soft-t2": (5, ["BER*1.5", "--soft-targets", "2"]),
}


def nfdeploy(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "nfdeploy", *args], check=True)


def run_recipe(args: argparse.Namespace, name: str) -> dict[str, object]:
    n, extra = RECIPES[name]
    images = args.images
    epochs = max(args.budget // (images * (n + 1)), 1)
    ber = args.train_ber
    if "BER*1.5" in extra:
        extra, ber = [e for e in extra if e != "BER*1.5"], 1.5 * args.train_ber
    if "--lr" not in extra:
        extra = [*extra, "--lr", str(args.lr)]
    run = args.out / name
    if not (run / "generator.onnx").exists():
        nfdeploy("train", "-q", "--model", str(args.model), "--data", args.data,
                 "--out", str(run), "--force", "--generator", args.generator,
                 "--epochs", str(epochs), "--limit", str(images + args.holdout),
                 "--holdout", str(args.holdout), "--n-perturbed", str(n),
                 "--train-ber", f"{ber:g}", "--fault-model", "stuck-at", "--seed", str(args.seed),
                 *([] if args.preprocess is None else ["--preprocess", args.preprocess]),
                 *extra)  # fmt: skip
        nfdeploy("export", "--run", str(run), "--out", str(run / "generator.onnx"))
    report = run / "validate.json"
    if not report.exists():
        nfdeploy("validate", "-q", "--model", str(args.model), "--generator",
                 str(run / "generator.onnx"), "--data", args.data, "--ber", f"{args.train_ber:g}",
                 "--fault-model", "stuck-at", "--trials", "10", "--report", str(report))  # fmt: skip
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    test = json.loads(report.read_text())["results"][0]
    last = metrics[-1]
    return {
        "recipe": name, "n": n, "train_ber": ber, "args": extra,
        "passes_per_epoch": images * (n + 1), "epochs": epochs,
        "passes": epochs * images * (n + 1),
        "curve": [
            {"passes": m["epoch"] * images * (n + 1), "pa_nf": m.get("pa_nf", m.get("pa")),
             "ca_nf": m.get("ca_nf", m.get("ca"))}
            for m in metrics
        ],
        "holdout_pa_nf": last["pa_nf"], "test_ca": test["ca"], "test_pa": test["pa"]["mean"],
        "test_ca_nf": test["ca_nf"], "test_pa_nf": test["pa_nf"]["mean"],
        "test_pa_nf_std": test["pa_nf"]["std"],
    }  # fmt: skip


def plot(rows: list[dict], path: Path) -> None:  # type: ignore[type-arg]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    colours = plt.get_cmap("tab20").colors
    for n, row in enumerate(rows):
        xs = [p["passes"] for p in row["curve"]]
        style = {
            "marker": "o",
            "color": colours[(2 * n) % 20 + (2 * n) // 20],
            "label": row["recipe"],
        }
        axes[0].plot(xs, [100 * p["pa_nf"] for p in row["curve"]], **style)
        axes[1].plot(xs, [100 * p["ca_nf"] for p in row["curve"]], **style)
    titles = ("held-out PA(NF), at each recipe's training BER", "held-out CA(NF)")
    for ax, title in zip(axes, titles, strict=True):
        ax.set_xlabel("vendor passes (images x (N + 1))")
        ax.set_ylabel("%")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=None, help="default: the demo vendor")
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--preprocess", default=None)
    parser.add_argument("--generator", default="UNetS")
    parser.add_argument("--train-ber", type=float, default=DEMO_BER)
    parser.add_argument("--budget", type=int, default=96_000, help="vendor passes per recipe")
    parser.add_argument("--images", type=int, default=2000, help="training images (all recipes)")
    parser.add_argument("--holdout", type=int, default=500)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/tmp/recipes")
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.model is None:
        args.model = ensure_demo_vendor(args.out / "vendor.onnx")
    names = args.recipes.split(",")
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        sys.exit(f"--recipes: unknown {unknown}; known: {', '.join(RECIPES)}")
    rows = [run_recipe(args, name) for name in names]
    (args.out / "summary.json").write_text(json.dumps(rows, indent=2))
    print(f"\nvendor {args.model}, data {args.data}, {args.generator}, budget {args.budget:,} "
          f"vendor passes, {args.images} training images, seed {args.seed}; test: 10 trials at "
          f"{args.train_ber:g} stuck-at, seeds 50000..50009")  # fmt: skip
    print(f"{'recipe':<17} {'N':>3} {'epochs':>6} {'passes':>8} {'held-out PA(NF)':>16} "
          f"{'test CA(NF)':>12} {'test PA(NF)':>16} {'gap':>6}")  # fmt: skip
    base_pa = rows[0]["test_pa"]
    for r in rows:
        print(f"{r['recipe']:<17} {r['n']:>3} {r['epochs']:>6} {r['passes']:>8,} {100 * r['holdout_pa_nf']:16.1f} "
              f"{100 * r['test_ca_nf']:12.1f} {100 * r['test_pa_nf']:9.1f} +- {100 * r['test_pa_nf_std']:4.1f} "
              f"{100 * (r['holdout_pa_nf'] - r['test_pa_nf']):+6.1f}")  # fmt: skip
    print(
        f"(vendor alone on the test split: CA {100 * rows[0]['test_ca']:.1f}, PA {100 * base_pa:.1f})"
    )
    if args.plot:
        plot(rows, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
