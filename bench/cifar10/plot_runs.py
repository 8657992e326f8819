"""Training curves of committed CIFAR-10 runs against vendor passes, with their test results.

    python bench/cifar10/plot_runs.py --out docs/cifar10/full-runs.png \\
        bench/results/cifar10/resnet20_c1-UNetS-soft-t2-e5 \\
        bench/results/cifar10/resnet20_c1-UNetS-soft-t2-n2-e10 \\
        bench/results/cifar10/resnet20_c1-UNetS-soft-t2-lambda1-e5 \\
        bench/results/cifar10/resnet20_c1-UNetS-soft-t2-lambda2-e5 \\
        bench/results/cifar10/resnet20_c1-UNetS-lambda2-warm-lambda1-e2:resnet20_c1-UNetS-soft-t2-lambda2-e5 \\
        bench/results/cifar10/resnet20_c1-UNetL-stuck-0.015-e5 \\
        bench/results/cifar10/resnet20_c1-UNetL-e5-warm-soft-t2-e3:resnet20_c1-UNetL-stuck-0.015-e5 \\
        bench/results/cifar10/resnet20_c1-UNetL-warm2-soft-t2-lambda3-e2:resnet20_c1-UNetL-e5-warm-soft-t2-e3 \\
        bench/results/cifar10/resnet20_c1-UNetL-warm2-soft-t2-lambda2-e2:resnet20_c1-UNetL-e5-warm-soft-t2-e3

Restricted-access runs (trained with ``--surrogate``) against the target of their issue, RP
>= +10 on the real vendor (their held-out curves are the surrogates' mean, not the vendor):

    python bench/cifar10/plot_runs.py --targets restricted --out docs/cifar10/restricted-access.png \\
        bench/results/cifar10/resnet20_c1-UNetS-soft-t2-stuck-0.015-e4-via-vgg_small_c1 \\
        "bench/results/cifar10/resnet20_c1-UNetS-soft-t2-stuck-0.015-e4-via-vgg_small_c1+resnet20_s1" \\
        "bench/results/cifar10/resnet20_c1-UNetS-soft-t2-stuck-0.015-e8-via-vgg_small_c1+resnet20_s1" \\
        "bench/results/cifar10/resnet20_c1-UNetS-soft-t2-n2-stuck-0.015-e16-via-vgg_small_c1+resnet20_s1" \\
        "bench/results/cifar10/resnet20_c1-UNetS-soft-t2-stuck-0.01-e8-via-vgg_small_c1+resnet20_s1" \\
        bench/results/cifar10/resnet20_c1-UNetS-soft-t2-stuck-0.015-e8-via-vgg_small_c1

Each folder holds config.json, metrics.jsonl and validate.json (from `nfdeploy train`,
`nfdeploy validate --report`). ``NEW:OLD`` draws a warm-started run (``--init-from``) as the
continuation of OLD (a folder named in the same call), so its x axis starts where OLD ended.
Left: held-out PA(NF) at each run's training BER; middle: held-out CA(NF); right: test
PA(NF) (+- std over trials) and CA(NF) at the validated BER.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

TRAIN_IMAGES = 50_000


def load_run(folder: Path) -> dict[str, Any]:
    config = json.loads((folder / "config.json").read_text())["config"]
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    report = json.loads((folder / "validate.json").read_text())["results"][0]
    images = config.get("limit") or TRAIN_IMAGES
    per_epoch = (images - config["holdout"]) * (config["n_perturbed"] + 1)
    epochs = [r for r in rows if r["epoch"] > 0]
    return {
        "name": folder.name,
        "label": f"{folder.name.removeprefix('resnet20_c1-')} (train BER {config['train_ber']:g})",
        "passes": [r["epoch"] * per_epoch for r in epochs],
        "pa_nf": [100 * r["pa_nf"] for r in epochs],
        "ca_nf": [100 * r["ca_nf"] for r in epochs],
        "test": report,
    }


def chain(runs: dict[str, dict[str, Any]], links: dict[str, str]) -> None:
    """Shift each continued run by the passes of the run it started from."""
    for new, old in links.items():
        if old not in runs:
            raise SystemExit(f"{new}:{old}: give {old} as a folder in the same call.")
        offset = runs[old]["passes"][-1]
        runs[new]["passes"] = [offset + p for p in runs[new]["passes"]]
        runs[new]["label"] += f", from {old.removeprefix('resnet20_c1-')}"


def plot(runs: list[dict[str, Any]], path: Path, targets: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 6.6), gridspec_kw={"width_ratios": [3, 3, 2]})
    for n, run in enumerate(runs):
        style = {"marker": "o", "color": f"C{n}", "label": run["label"]}
        axes[0].plot(run["passes"], run["pa_nf"], **style)
        axes[1].plot(run["passes"], run["ca_nf"], **style)
    for ax, title in zip(axes[:2], ("held-out PA(NF)", "held-out CA(NF)"), strict=True):
        ax.set_xlabel("vendor passes (images x (N + 1))")
        ax.set_ylabel("%")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    if targets == "restricted":
        axes[0].set_title("held-out PA(NF), the surrogates' mean")
        axes[1].set_title("held-out CA(NF), the surrogates' mean")
    _test_panel(axes[2], runs, targets)
    for ax, where in ((axes[0], (0.02, 0.0)), (axes[2], (0.68, 0.0))):
        handles, labels = ax.get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower left", bbox_to_anchor=where, ncol=2, fontsize=7)
    fig.tight_layout(rect=(0, 0.2, 1, 1))
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(path)


def _test_panel(ax: Any, runs: list[dict[str, Any]], targets: str) -> None:
    ys = list(range(len(runs)))
    tests = [r["test"] for r in runs]
    pa = [100 * t["pa_nf"]["mean"] for t in tests]
    errors = [100 * t["pa_nf"]["std"] for t in tests]
    ax.barh(ys, pa, xerr=errors, color=[f"C{n}" for n in ys], alpha=0.8)
    ax.plot([100 * t["ca_nf"] for t in tests], ys, "k|", markersize=12, label="CA(NF)")
    ax.axvline(100 * tests[0]["pa"]["mean"], color="grey", ls="--", label="PA, vendor alone")
    ax.axvline(100 * tests[0]["ca"], color="black", ls=":", label="CA, vendor alone")
    _target_lines(ax, tests[0], targets)
    ax.set_xlim(max(0.0, 100 * tests[0]["pa"]["mean"] - 15), 100)
    ax.set_yticks(ys, [r["name"].removeprefix("resnet20_c1-") for r in runs], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("%")
    ax.set_title(f"test, BER {tests[0]['ber']:g}: PA(NF) bars, CA(NF) ticks")
    ax.grid(alpha=0.3, axis="x")


def _target_lines(ax: Any, test: dict[str, Any], targets: str) -> None:
    ca, pa = 100 * test["ca"], 100 * test["pa"]["mean"]
    if targets == "restricted":
        ax.axvline(pa + 10, color="red", ls="-.", lw=0.8, label="PA + 10 (restricted-access RP)")
        return
    ax.axvline(0.70 * ca, color="orange", ls="-.", lw=0.8, label="0.70 x CA (small G target)")
    ax.axvline(0.85 * ca, color="red", ls="-.", lw=0.8, label="0.85 x CA (large G target)")
    ax.axvline(ca - 3, color="purple", ls="-.", lw=0.8, label="CA - 3 (CA(NF) target)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", help="result folder, or NEW:OLD for a warm start")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument(
        "--targets",
        choices=("recovery", "restricted"),
        default="recovery",
        help="target lines: the recovery targets (x CA), or RP >= +10 for surrogate runs",
    )
    args = parser.parse_args(argv)
    runs, links = {}, {}
    for spec in args.runs:
        folder, _, old = spec.partition(":")
        path = Path(folder)
        if not (path / "validate.json").is_file():
            raise SystemExit(f"{path}: no validate.json; validate the run with --report first.")
        runs[path.name] = load_run(path)
        if old:
            links[path.name] = old
    chain(runs, links)
    plot(list(runs.values()), args.out, args.targets)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
