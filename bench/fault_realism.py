"""Fault realism, parts 1-2: the reference's tiled map against i.i.d. cells, and nested sweeps.

Two measurements on the CIFAR-10 vendor (int8 per-tensor storage of the float model, as the
paper), each through the library function behind `nfdeploy validate`, writing into --out:

* ``ref-tiled``: PA mean and population std over --trials of ``--fault-model ref-tiled``
  against i.i.d. ``stuck-at`` at the same rates -> ref-tiled.json, ref-tiled.log
* ``nested``: a stuck-at sweep with and without ``--nested`` on the same trial seeds ->
  nested-sweep.json, nested-sweep.log, nested-sweep.png (per-trial PA against BER)
* ``ablation``: i.i.d. stuck-at, the ref-tiled maps laid out once (no 16-fold repeat within
  a map row; layers still restart at the map's start) and the reference's layout ->
  ref-tiled-ablation.json, ref-tiled-ablation.log

    python bench/fault_realism.py ref-tiled [--limit 2000] [--trials 20] [--ber 0.005 --ber 0.01]
    python bench/fault_realism.py nested [--limit 1000] [--trials 10]
    python bench/fault_realism.py ablation [--limit 2000] [--trials 20] [--ber 0.01]
        [--model bench/results/cifar10/resnet20_c1-vendor/resnet20_c1.onnx] [--data /work/shared/data/cifar10]
        [--out docs/fault-realism] [--stem NAME]

Defaults are the documented runs (--threads 1).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

import nfdeploy.faults.ref_tiled as ref_tiled_module
from nfdeploy.faults.spec import FaultModel
from nfdeploy.onnx.atomic import write_bytes_atomic
from nfdeploy.validate.report import ValidationReport
from nfdeploy.validate.runner import run_validation

ROOT = Path(__file__).resolve().parents[1]
PAPER = "ResNet18 (paper's vendor, not this one), CIFAR-10, reference '1% BER': PA 38.9 +- 12.4"
PARTS = {"ref-tiled": "ref-tiled", "nested": "nested-sweep", "ablation": "ref-tiled-ablation"}
DEFAULT_BERS = {"ref-tiled": [0.005, 0.01], "nested": [0.001, 0.002, 0.005, 0.01, 0.02]}
DEFAULT_BERS["ablation"] = [0.01]
DEFAULT_TRIALS = {"ref-tiled": 20, "nested": 10, "ablation": 20}
DEFAULT_LIMIT = {"ref-tiled": 2000, "nested": 1000, "ablation": 2000}


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("part", choices=list(PARTS))
    parser.add_argument(
        "--model",
        type=Path,
        default=ROOT / "bench" / "results" / "cifar10" / "resnet20_c1-vendor" / "resnet20_c1.onnx",
    )
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--preprocess", default=None, help="default: stored in the model")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--ber", type=float, action="append", default=None)
    parser.add_argument("--seed", type=int, default=50_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "fault-realism")
    parser.add_argument(
        "--stem", default=None, help="output file names [default: ref-tiled / nested-sweep]"
    )
    args = parser.parse_args()
    args.ber = args.ber or DEFAULT_BERS[args.part]
    args.trials = args.trials or DEFAULT_TRIALS[args.part]
    args.limit = args.limit or DEFAULT_LIMIT[args.part]
    args.stem = args.stem or PARTS[args.part]
    return args


def _run(args: argparse.Namespace, model: FaultModel, *, nested: bool = False) -> ValidationReport:
    return run_validation(
        model=args.model, data=args.data, bers=args.ber, split=args.split, limit=args.limit,
        preprocess=args.preprocess, trials=args.trials, seed=args.seed, fault_model=model,
        storage="int8-tensor", nested=nested, threads=args.threads, progress=False,
    )  # fmt: skip


def _rows(report: ValidationReport) -> list[dict[str, Any]]:
    """Per BER: PA summary, per-trial PA and bits changed (population std, as the paper)."""
    return [
        {
            "ber": row.ber,
            "pa_mean": row.pa.mean,
            "pa_std": row.pa.std,
            "pa_min": min(t.pa for t in row.trials),
            "pa_max": max(t.pa for t in row.trials),
            "pa": [t.pa for t in row.trials],
            "bits_changed": [t.bits_changed for t in row.trials],
        }
        for row in report.results
    ]


def _setup(report: ValidationReport) -> dict[str, Any]:
    header = report.header
    return {
        "vendor": header["vendor"],
        "data": header["data"],
        "seeds": header["seeds"],
        "ca": report.results[0].ca,
        "stored_bits": header["stored_bytes"] * 8,
    }


def ref_tiled(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    reports = {m.value: _run(args, m) for m in (FaultModel.STUCK_AT, FaultModel.REF_TILED)}
    first = next(iter(reports.values()))
    result = {
        **_setup(first),
        "paper": PAPER,
        "models": {
            name: {"fault": report.header["fault"], "rows": _rows(report)}
            for name, report in reports.items()
        },
    }
    lines = [f"CA {result['ca'] * 100:.1f} on {result['data']['images']} images; seeds "
             f"{result['seeds'][0]}..{result['seeds'][-1]}; {PAPER}",
             f"{'BER':>7}  {'model':<9}  {'PA mean +- std':>15}  {'min..max':>11}  bits changed"]  # fmt: skip
    for ber_index, ber in enumerate(args.ber):
        for name, entry in result["models"].items():
            row = entry["rows"][ber_index]
            lines.append(
                f"{ber:>7g}  {name:<9}  {row['pa_mean'] * 100:7.1f} +- {row['pa_std'] * 100:4.1f}  "
                f"{row['pa_min'] * 100:4.1f}..{row['pa_max'] * 100:4.1f}  "
                f"{np.mean(row['bits_changed']):,.0f}"
            )
    return result, "\n".join(lines)


def _tiled_once(cells: np.ndarray, itemsize: int) -> np.ndarray:
    """The reference's packed map laid out once (element i: row (i // k) % 8192, slot i % k),
    without its k-fold repeat along each row: an experiment, not a fault model."""
    if itemsize != 1:
        raise ValueError("the ablation lays out int8 codes only (storage int8-tensor)")
    grouped = cells.reshape(ref_tiled_module.MAP_ROWS, -1, 8).astype(np.uint8)
    return np.bitwise_or.reduce(grouped << np.arange(8, dtype=np.uint8), axis=2).reshape(-1)


def ablation(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """Which part of the tiling costs the accuracy: i.i.d. stuck-at, the same maps laid out
    once per layer (every layer still restarts at the map's start), and the reference's
    layout (each 16-code row pattern repeated 16 times)."""
    runs = {"i.i.d. stuck-at": _run(args, FaultModel.STUCK_AT)}
    with mock.patch.object(ref_tiled_module, "_period", _tiled_once):
        runs["map laid out once"] = _run(args, FaultModel.REF_TILED)
    runs["ref-tiled (reference)"] = _run(args, FaultModel.REF_TILED)
    result = {**_setup(runs["i.i.d. stuck-at"]), "paper": PAPER,
              "layouts": {name: _rows(report) for name, report in runs.items()}}  # fmt: skip
    lines = [f"CA {result['ca'] * 100:.1f} on {result['data']['images']} images; int8 codes"]
    for name, rows in result["layouts"].items():
        for row in rows:
            lines.append(f"{row['ber']:>6g}  {name:<22}  {row['pa_mean'] * 100:5.1f} +- "
                         f"{row['pa_std'] * 100:4.1f}  bits {np.mean(row['bits_changed']):,.0f}")  # fmt: skip
    return result, "\n".join(lines)


def _paired(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How a sweep reads per trial: PA rises with BER (count), spread of PA(next) - PA(this)."""
    pa = np.array([row["pa"] for row in rows])  # (bers, trials)
    steps = np.diff(pa, axis=0)
    bits = np.array([row["bits_changed"] for row in rows])
    return {
        "pa_rises": int((steps > 0).sum()),
        "steps": int(steps.size),
        "step_mean": steps.mean(axis=1).tolist(),
        "step_std": steps.std(axis=1).tolist(),
        "bits_monotone_trials": int((np.diff(bits, axis=0) >= 0).all(axis=0).sum()),
    }


def nested(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    reports = {flag: _run(args, FaultModel.STUCK_AT, nested=flag) for flag in (False, True)}
    result = {
        **_setup(reports[False]),
        "sweeps": {
            ("nested" if flag else "independent"): {
                "fault": report.header["fault"],
                "rows": _rows(report),
                "paired": _paired(_rows(report)),
            }
            for flag, report in reports.items()
        },
    }
    lines = [f"CA {result['ca'] * 100:.1f} on {result['data']['images']} images; stuck-at; "
             f"seeds {result['seeds'][0]}..{result['seeds'][-1]}"]  # fmt: skip
    for name, sweep in result["sweeps"].items():
        paired = sweep["paired"]
        pa = "  ".join(f"{r['ber']:g}: {r['pa_mean'] * 100:.1f}+-{r['pa_std'] * 100:.1f}"
                       for r in sweep["rows"])  # fmt: skip
        steps = "  ".join(f"{m * 100:+.1f}+-{s * 100:.1f}"
                          for m, s in zip(paired["step_mean"], paired["step_std"], strict=True))  # fmt: skip
        lines += [
            f"{name}: PA {pa}",
            f"  PA rises from one BER to the next in {paired['pa_rises']} of {paired['steps']} "
            f"trial steps; per-step PA change (mean +- std over trials): {steps}; bits changed "
            f"monotone in {paired['bits_monotone_trials']} of {args.trials} trials",
        ]
    _plot(result, args.out / f"{args.stem}.png")
    return result, "\n".join(lines)


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, (name, sweep) in zip(axes, result["sweeps"].items(), strict=True):
        bers = [row["ber"] for row in sweep["rows"]]
        pa = np.array([row["pa"] for row in sweep["rows"]]) * 100
        ax.plot(bers, pa, color="tab:blue", alpha=0.5, linewidth=1, marker=".")
        ax.plot(bers, pa.mean(axis=1), color="black", linewidth=2, label="mean")
        ax.set_xscale("log")
        ax.set_xlabel("stuck-at BER")
        ax.set_title(f"{name} patterns ({pa.shape[1]} trials)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("PA (%) per trial")
    axes[0].legend()
    fig.suptitle(f"{Path(result['vendor']['path']).name}, {result['data']['images']} test images")
    fig.tight_layout()
    fig.savefig(path.with_suffix(".tmp.png"), dpi=110)
    plt.close(fig)
    path.with_suffix(".tmp.png").replace(path)  # atomic, as every output


def main() -> None:
    args = _args()
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    run_part = {"ref-tiled": ref_tiled, "nested": nested, "ablation": ablation}[args.part]
    result, table = run_part(args)
    seconds = time.perf_counter() - start
    command = shlex.join(["python", *(_relative(a) for a in sys.argv)])
    result = {"command": command, "seconds": round(seconds, 1), **result}
    stem = args.stem
    data = json.dumps(result, indent=1).replace(str(ROOT) + "/", "").encode()
    print(f"json: {write_bytes_atomic(args.out / f'{stem}.json', data)}")
    log = f"$ {command}\n{table}\n({seconds:.0f} s, --threads {args.threads})\n"
    print(log)
    print(f"log: {write_bytes_atomic(args.out / f'{stem}.log', log.encode())}")


def _relative(arg: object) -> str:
    """Paths inside the repository as relative ones, so the outputs read the same anywhere."""
    return str(arg).replace(str(ROOT) + "/", "")


if __name__ == "__main__":
    main()
