"""Tables and the accuracy-vs-BER plot for docs/benchmarks.md from the committed CIFAR-10 reports.

Reads bench/results/cifar10/<run>/validate-<fault model>-<BER>.json (bench/cifar10/validate_suite.py)
and <run>/metrics.jsonl; prints markdown; writes docs/cifar10/accuracy_vs_ber.png.

    python bench/cifar10/summarize.py [--plot docs/cifar10/accuracy_vs_ber.png]
    python bench/cifar10/summarize.py --vendor resnet20_v2   # runs named resnet20_v2-*
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results" / "cifar10"
RUNS = ROOT / "bench" / "cache" / "cifar10" / "runs"
NAME = re.compile(r"validate-(stuck-at|flip)-([0-9.e-]+)\.json$")


def load_reports(vendor: str) -> dict[str, dict[tuple[str, float], dict[str, Any]]]:
    out: dict[str, dict[tuple[str, float], dict[str, Any]]] = {}
    for path in sorted(RESULTS.glob(f"{vendor}-*/validate-*-*.json")):
        match = NAME.search(path.name)
        if match:
            key = (match.group(1), float(match.group(2)))
            out.setdefault(path.parent.name, {})[key] = json.loads(path.read_text())
    return out


def trained(run: str, report: dict[str, Any]) -> tuple[str, float]:
    meta = report["generator"]["metadata"]
    return meta["nfdeploy.fault_model"], float(meta["nfdeploy.train_ber"])


def onnx_params(run: str) -> int | None:
    path = RUNS / run / "generator.onnx"
    if not path.exists():
        return None
    model = onnx.load(str(path))
    return sum(
        int(np.prod(t.dims))
        for t in model.graph.initializer
        if len(t.dims) >= 1 and t.data_type == 1
    )


def pct(value: float) -> str:
    return f"{value * 100:.1f}"


def row_cells(row: dict[str, Any]) -> list[str]:
    pa, pa_nf = row["pa"], row["pa_nf"]
    return [pct(row["ca"]), f"{pct(pa['mean'])} ± {pct(pa['std'])}", pct(row["ca_nf"]),
            f"{pct(pa_nf['mean'])} ± {pct(pa_nf['std'])}", f"{row['rp'] * 100:+.1f}"]  # fmt: skip


def main_table(reports: dict[str, dict[tuple[str, float], dict[str, Any]]]) -> list[str]:
    lines = ["| generator | trained at | CA | PA ± std | CA(NF) | PA(NF) ± std | RP | PA(NF)/CA | params | MACs | ES |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for run, by_config in reports.items():
        any_report = next(iter(by_config.values()))
        if any_report.get("generator") is None:
            continue
        model, ber = trained(run, any_report)
        report = by_config.get((model, ber))
        if report is None:
            continue
        row, energy = report["results"][0], report["energy"]
        arch = report["generator"]["metadata"]["nfdeploy.generator_arch"]
        params = onnx_params(run)
        lines.append("| " + " | ".join([
            arch, f"{model} {ber:g}", *row_cells(row), f"{row['pa_nf']['mean'] / row['ca']:.2f}",
            f"{params:,}" if params else "?", f"{energy['macs_g'] / 1e6:.1f}M",
            f"{energy['energy_saving'] * 100:.1f}%",
        ]) + " |")  # fmt: skip
    return lines


def all_configs_table(reports: dict[str, dict[tuple[str, float], dict[str, Any]]]) -> list[str]:
    lines = ["| generator (trained at) | validated at | CA | PA ± std | CA(NF) | PA(NF) ± std | RP | PA(NF) > PA in |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for run, by_config in reports.items():
        for (model, ber), report in sorted(by_config.items()):
            if report.get("generator") is None:
                continue
            row = report["results"][0]
            wins = sum(t["pa_nf"] > t["pa"] for t in row["trials"])
            arch = report["generator"]["metadata"]["nfdeploy.generator_arch"]
            t_model, t_ber = trained(run, report)
            lines.append("| " + " | ".join([
                f"{arch} ({t_model} {t_ber:g})", f"{model} {ber:g}", *row_cells(row),
                f"{wins}/{len(row['trials'])}",
            ]) + " |")  # fmt: skip
    return lines


def vendor_curve(reports: dict[str, dict[tuple[str, float], dict[str, Any]]]) -> list[str]:
    """The vendor alone: PA vs BER (every report of a configuration holds the same PA trials)."""
    points: dict[tuple[str, float], dict[str, Any]] = {}
    for by_config in reports.values():
        for key, report in by_config.items():
            points.setdefault(key, report["results"][0])
    lines = ["| fault model | BER | CA | PA ± std | PA / CA |", "|---|---|---|---|---|"]
    for (model, ber), row in sorted(points.items()):
        pa = row["pa"]
        lines.append(f"| {model} | {ber:g} | {pct(row['ca'])} | {pct(pa['mean'])} ± {pct(pa['std'])} | "
                     f"{pa['mean'] / row['ca']:.2f} |")  # fmt: skip
    return lines


def training_table(vendor: str) -> list[str]:
    lines = [
        "| run | epochs | held-out PA at epoch 0 | best held-out CA(NF) / PA(NF) (epoch) |",
        "|---|---|---|---|",
    ]
    for path in sorted(RESULTS.glob(f"{vendor}-*/metrics.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        epochs = [r for r in rows if r["epoch"] >= 1]
        if not epochs:
            continue
        best = max(epochs, key=lambda r: r["pa_nf"])
        lines.append(f"| {path.parent.name} | {len(epochs)} | {pct(rows[0]['pa'])} (CA {pct(rows[0]['ca'])}) | "
                     f"{pct(best['ca_nf'])} / {pct(best['pa_nf'])} ({best['epoch']}) |")  # fmt: skip
    return lines


def plot(
    reports: dict[str, dict[tuple[str, float], dict[str, Any]]], out: Path, title: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    colours = {run: f"C{k}" for k, run in enumerate(sorted(reports))}
    for ax, model in zip(axes, ("stuck-at", "flip"), strict=True):
        vendor: dict[float, tuple[float, float]] = {}
        for run, by_config in reports.items():
            points = sorted(
                (ber, r) for (m, ber), r in by_config.items() if m == model and r.get("generator")
            )
            if not points:
                continue
            arch = points[0][1]["generator"]["metadata"]["nfdeploy.generator_arch"]
            t_model, t_ber = trained(run, points[0][1])
            bers = [b for b, _ in points]
            means = np.array([r["results"][0]["pa_nf"]["mean"] for _, r in points]) * 100
            stds = np.array([r["results"][0]["pa_nf"]["std"] for _, r in points]) * 100
            ax.errorbar(
                bers,
                means,
                yerr=stds,
                marker="o",
                color=colours[run],
                capsize=3,
                label=f"PA(NF) {arch} ({t_model} {t_ber:g})",
            )
            for b, r in points:
                vendor[b] = (
                    r["results"][0]["pa"]["mean"] * 100,
                    r["results"][0]["pa"]["std"] * 100,
                )
        for by_config in reports.values():  # the vendor alone too
            for (m, ber), r in by_config.items():
                row = r["results"][0]
                if m == model:
                    vendor.setdefault(ber, (row["pa"]["mean"] * 100, row["pa"]["std"] * 100))
                    ca = row["ca"] * 100
        if vendor:
            bers = sorted(vendor)
            ax.errorbar(bers, [vendor[b][0] for b in bers], yerr=[vendor[b][1] for b in bers], color="black",
                        linestyle="--", marker="s", capsize=3, label="PA (vendor alone)")  # fmt: skip
            ax.axhline(ca, color="gray", linewidth=0.8, label=f"CA {ca:.1f}")
        ax.set_xscale("log")
        if vendor:
            ax.set_xticks(sorted(vendor), [f"{b * 100:g}%" for b in sorted(vendor)])
            ax.minorticks_off()
        ax.set_title(f"{model} (10 trials x 10,000 test images)")
        ax.set_xlabel("BER")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("accuracy (%), mean ± std over trials")
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(out)
    print(f"plot: {out}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vendor", default="resnet20", help="run-name prefix (the vendor's stem)")
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()
    suffix = "" if args.vendor == "resnet20" else f"_{args.vendor}"
    args.plot = args.plot or ROOT / "docs" / "cifar10" / f"accuracy_vs_ber{suffix}.png"
    reports = load_reports(args.vendor)
    print("\n".join(["### The vendor alone (operating point)", "", *vendor_curve(reports), "",
                     "### At the training BER", "", *main_table(reports), "",
                     "### At the training BER, half of it and 1% stuck-at, under both fault models", "", *all_configs_table(reports), "",
                     "### Training (held-out 500 images, 3 seeds at the training BER)", "", *training_table(args.vendor)]))  # fmt: skip
    title = f"CIFAR-10, {args.vendor} vendor (int8 weights): accuracy vs BER without and with the generator"
    plot(reports, args.plot, title)


if __name__ == "__main__":
    main()
