"""Training-recipe study at a fixed compute budget, counted in vendor passes (images x (N + 1)).

Each recipe trains the same generator from the same seed through `nfdeploy train` on the
same --images training images and the same held-out slice (--limit is the same for all), for
as many epochs as its budget allows at its N (rounded down, so the passes actually spent are
reported), then `nfdeploy validate` scores the exported (best held-out epoch) generator on
the test split (--test-trials, seeds 50000..). Printed and written: held-out PA(NF) per epoch
(the training-time figure, --holdout-trials patterns) against vendor passes, the test
PA(NF), and the held-out vs test gap; `--plot` draws PA(NF) and CA(NF) against vendor passes.

Default: the demo's stand-in vendor on the built-in synthetic data at 2% stuck-at (minutes).
On CIFAR-10 against the committed vendor: bench/cifar10/recipes.py (its defaults).

    python bench/recipes.py [--recipes baseline,soft-t2] [--budget 96000] [--images 2000]
                            [--out DIR] [--plot P.png]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from precision_check import ensure_demo_vendor

from nfdeploy.demo.pipeline import DEMO_BER

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Recipe:
    n: int = 5
    ber_scale: float = 1.0  # training BER = ber_scale x --train-ber (the target)
    lr_scale: float = 1.0
    args: tuple[str, ...] = ()


RECIPES: dict[str, Recipe] = {
    "baseline": Recipe(),
    "n2": Recipe(n=2),
    "n10": Recipe(n=10),
    "soft-t2": Recipe(args=("--soft-targets", "2")),
    "worst-k2": Recipe(args=("--worst-k", "2")),
    "ber-warmup": Recipe(args=("--ber-warmup", "0.3")),
    "ber-1.5x": Recipe(ber_scale=1.5),
    "augment": Recipe(args=("--augment", "crop-flip")),
    "label-free": Recipe(args=("--labels", "vendor")),
    "lr-2x": Recipe(lr_scale=2.0),
    "lambda-2": Recipe(args=("--lambda", "2")),
    "batch-100": Recipe(lr_scale=2.0, args=("--batch-size", "100")),  # sqrt(batch) lr rule
    "ber-1.5x+soft-t2": Recipe(ber_scale=1.5, args=("--soft-targets", "2")),
    "soft-t2+n2": Recipe(n=2, args=("--soft-targets", "2")),
    "ber-1.5x+soft-t2+lambda-2": Recipe(
        ber_scale=1.5, args=("--soft-targets", "2", "--lambda", "2")
    ),
}


def nfdeploy(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "nfdeploy", *args], check=True)


def run_recipe(args: argparse.Namespace, name: str) -> dict[str, object]:
    recipe = RECIPES[name]
    n, images = recipe.n, args.images
    epochs = max(args.budget // (images * (n + 1)), 1)
    ber, lr = recipe.ber_scale * args.train_ber, recipe.lr_scale * args.lr
    run = args.out / name
    if not (run / "generator.onnx").exists():
        nfdeploy("train", "-q", "--model", str(args.model), "--data", args.data,
                 "--out", str(run), "--force", "--generator", args.generator,
                 "--epochs", str(epochs), "--limit", str(images + args.holdout),
                 "--holdout", str(args.holdout), "--holdout-trials", str(args.holdout_trials),
                 "--n-perturbed", str(n), "--train-ber", f"{ber:g}", "--lr", f"{lr:g}",
                 "--fault-model", "stuck-at", "--seed", str(args.seed),
                 "--threads", str(args.threads),
                 *([] if "--soft-targets" in recipe.args else ["--soft-targets", "0"]),
                 *([] if args.preprocess is None else ["--preprocess", args.preprocess]),
                 *recipe.args)  # fmt: skip
        nfdeploy("export", "--run", str(run), "--out", str(run / "generator.onnx"))
    report = run / "validate.json"
    if not report.exists():
        limit = [] if args.test_limit is None else ["--limit", str(args.test_limit)]
        nfdeploy("validate", "-q", "--model", str(args.model), "--generator",
                 str(run / "generator.onnx"), "--data", args.data, "--ber", f"{args.train_ber:g}",
                 "--fault-model", "stuck-at", "--trials", str(args.test_trials), *limit,
                 "--threads", str(args.threads), "--report", str(report))  # fmt: skip
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    test = json.loads(report.read_text())["results"][0]
    best = max(metrics[1:], key=lambda m: m["pa_nf"])
    return {
        "recipe": name, "n": n, "train_ber": ber, "lr": lr, "args": list(recipe.args),
        "passes_per_epoch": images * (n + 1), "epochs": epochs,
        "passes": epochs * images * (n + 1),
        "curve": [
            {"passes": m["epoch"] * images * (n + 1), "pa_nf": m.get("pa_nf", m.get("pa")),
             "ca_nf": m.get("ca_nf", m.get("ca"))}
            for m in metrics
        ],
        "train_seconds": sum(m.get("seconds", 0.0) for m in metrics),
        "best_epoch": best["epoch"], "holdout_pa_nf": best["pa_nf"],
        "holdout_ca_nf": best["ca_nf"], "test_ca": test["ca"], "test_pa": test["pa"]["mean"],
        "test_ca_nf": test["ca_nf"], "test_pa_nf": test["pa_nf"]["mean"],
        "test_pa_nf_std": test["pa_nf"]["std"],
        "test_trials": [t["pa_nf"] for t in test["trials"]],
    }  # fmt: skip


def paired(row: dict, base: dict) -> tuple[float, float, int]:  # type: ignore[type-arg]
    """Mean and standard error of the per-trial PA(NF) difference (same seeds), and wins."""
    diffs = [a - b for a, b in zip(row["test_trials"], base["test_trials"], strict=True)]
    mean = sum(diffs) / len(diffs)
    var = sum((d - mean) ** 2 for d in diffs) / max(len(diffs) - 1, 1)
    return mean, (var / len(diffs)) ** 0.5, sum(d > 0 for d in diffs)


def plot(rows: list[dict], path: Path) -> None:  # type: ignore[type-arg]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8), gridspec_kw={"width_ratios": [3, 3, 2]})
    colours = plt.get_cmap("tab20").colors
    colour = [colours[(2 * n) % 20 + (2 * n) // 20] for n in range(len(rows))]
    for n, row in enumerate(rows):
        xs = [p["passes"] for p in row["curve"]]
        style = {"marker": "o", "color": colour[n], "label": row["recipe"]}
        axes[0].plot(xs, [100 * p["pa_nf"] for p in row["curve"]], **style)
        axes[1].plot(xs, [100 * p["ca_nf"] for p in row["curve"]], **style)
    titles = ("held-out PA(NF), at each recipe's training BER", "held-out CA(NF)")
    for ax, title in zip(axes[:2], titles, strict=True):
        ax.set_xlabel("vendor passes (images x (N + 1))")
        ax.set_ylabel("%")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    _test_panel(axes[2], rows, colour)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(path)


def _test_panel(ax: Any, rows: list[dict], colour: list[Any]) -> None:  # type: ignore[type-arg]
    """Test PA(NF) (bar, +- std over trials) and CA(NF) (tick) per recipe, at the target BER."""
    ys = range(len(rows))
    pa = [100 * r["test_pa_nf"] for r in rows]
    ax.barh(ys, pa, xerr=[100 * r["test_pa_nf_std"] for r in rows], color=colour, alpha=0.8)
    ax.plot([100 * r["test_ca_nf"] for r in rows], ys, "k|", markersize=12, label="CA(NF)")
    ax.axvline(100 * rows[0]["test_pa"], color="grey", ls="--", label="PA, vendor alone")
    ax.axvline(100 * rows[0]["test_ca"], color="black", ls=":", label="CA, vendor alone")
    ax.set_xlim(max(0.0, min([*pa, 100 * rows[0]["test_pa"]]) - 15), 100)
    ax.set_yticks(list(ys), [r["recipe"] for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("%")
    ax.set_title("test split, target BER: PA(NF) bars, CA(NF) ticks")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3, axis="x")


def main(argv: list[str] | None = None) -> None:
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
    parser.add_argument(
        "--holdout-trials",
        type=int,
        default=3,
        help="fault patterns per held-out PA(NF) (best-epoch selection)",
    )
    parser.add_argument("--test-trials", type=int, default=10)
    parser.add_argument("--test-limit", type=int, default=None, help="test images (default: all)")
    parser.add_argument("--threads", type=int, default=0, help="torch/onnxruntime threads per run")
    parser.add_argument("--jobs", type=int, default=1, help="recipes trained side by side")
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/tmp/recipes")
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.model is None:
        args.model = ensure_demo_vendor(args.out / "vendor.onnx")
    names = args.recipes.split(",")
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        sys.exit(f"--recipes: unknown {unknown}; known: {', '.join(RECIPES)}")
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(lambda name: run_recipe(args, name), names))
    tmp = args.out / "summary.json.tmp"
    tmp.write_text(json.dumps(rows, indent=2))
    tmp.replace(args.out / "summary.json")
    limit = "all" if args.test_limit is None else f"{args.test_limit:,}"
    print(f"\nvendor {args.model}, data {args.data}, {args.generator}, budget {args.budget:,} "
          f"vendor passes, {args.images:,} training images, seed {args.seed}; held-out: "
          f"{args.holdout} images x {args.holdout_trials} patterns at the recipe's training BER "
          f"(best epoch); test: {args.test_trials} trials x {limit} images at {args.train_ber:g} "
          f"stuck-at, seeds 50000..{50000 + args.test_trials - 1}")  # fmt: skip
    print(f"{'recipe':<26} {'N':>3} {'epochs':>6} {'passes':>9} {'train s':>8} {'best':>4} "
          f"{'held-out PA(NF)':>15} {'test CA(NF)':>11} {'test PA(NF)':>16} {'gap':>6} "
          f"{'vs ' + names[0] + ' (paired)':>24}")  # fmt: skip
    base_pa = rows[0]["test_pa"]
    for r in rows:
        diff, se, wins = paired(r, rows[0])
        print(f"{r['recipe']:<26} {r['n']:>3} {r['epochs']:>6} {r['passes']:>9,} "
              f"{r['train_seconds']:>8.0f} {r['best_epoch']:>4} {100 * r['holdout_pa_nf']:15.1f} "
              f"{100 * r['test_ca_nf']:11.1f} {100 * r['test_pa_nf']:9.1f} +- {100 * r['test_pa_nf_std']:4.1f} "
              f"{100 * (r['holdout_pa_nf'] - r['test_pa_nf']):+6.1f} "
              f"{100 * diff:+9.1f} +- {100 * se:3.1f} ({wins}/{len(r['test_trials'])})")  # fmt: skip
    print(
        f"(vendor alone on the test split: CA {100 * rows[0]['test_ca']:.1f}, PA {100 * base_pa:.1f})"
    )
    if args.plot:
        plot(rows, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
