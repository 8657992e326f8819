"""Clustered vs uniform chip maps at one stuck-at rate, on the CIFAR-10 vendor (docs/fault-model.md).

For each scenario (independent cells, weak rows, weak columns, a mix) it makes --maps chip
maps with chip seeds --seed .. --seed + maps - 1 at the BER the voltage -> BER curve gives for
--voltage (0.83 x Vmin -> 1 % faulty cells), laid over 512 x 64 banks, and measures PA of the
vendor with each map (one map = one chip = one trial). As a cross-check it also runs the
kernel's uniform stuck-at model (validate --fault-model stuck-at) with trial seeds 50000+.
Writes, into --out: chipmap-cluster.json, chipmap-cluster.log, chipmap-cluster.png.

    python bench/chipmap_cluster.py [--model bench/results/cifar10/resnet20_c1-vendor/resnet20_c1.onnx]
        [--data /work/shared/data/cifar10] [--limit 2000] [--maps 20] [--voltage 0.83]
        [--threads 1] [--out docs/fault-realism]
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from nfdeploy.data import load_dataset
from nfdeploy.energy.voltage import ber_at_voltage
from nfdeploy.faults.chip_cluster import ClusterModel, generate
from nfdeploy.faults.chip_layout import Geometry, geometry_for
from nfdeploy.faults.chipmap import ChipMap
from nfdeploy.faults.onnx_model import FaultableModel, load_faultable
from nfdeploy.faults.spec import EVAL_SEED_START, FaultModel, FaultSpec
from nfdeploy.onnx.atomic import write_bytes_atomic
from nfdeploy.onnx.session import make_session
from nfdeploy.validate.runner import resolve_preprocess
from nfdeploy.validate.stats import summarize
from nfdeploy.validate.trial import predict

ROOT = Path(__file__).resolve().parents[1]
#: scenario -> ClusterModel parameters besides the rate (the weak-line q is the 0.25 default)
SCENARIOS: dict[str, dict[str, float]] = {
    "uniform i.i.d.": {},
    "row-clustered": {"row_share": 1.0},
    "column-clustered": {"col_share": 1.0},
    "mixed": {"row_share": 0.25, "col_share": 0.25},
}
KERNEL = "stuck-at kernel"


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cache = ROOT / "bench" / "results" / "cifar10" / "resnet20_c1-vendor" / "resnet20_c1.onnx"
    parser.add_argument("--model", type=Path, default=cache)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--preprocess", default=None, help="default: stored in the model")
    parser.add_argument("--storage", default="int8-tensor")
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--maps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="first chip seed")
    parser.add_argument("--voltage", type=float, default=0.83)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "fault-realism")
    return parser.parse_args()


class Bench:
    """The vendor, the images and the clean predictions, loaded once for every map."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.vendor: FaultableModel = load_faultable(args.model, storage=args.storage)
        data = load_dataset(args.data, split=args.split, limit=args.limit, seed=0, progress=False)
        self.pre = resolve_preprocess(args.preprocess, self.vendor, None)
        self.x, self.labels = self.pre.apply(data.images), data.labels
        self.source = data.source
        self.ca = self._accuracy(self.vendor.clean_bytes())

    def _accuracy(self, model_bytes: bytes) -> float:
        session = make_session(model_bytes, threads=self.args.threads, name=str(self.args.model))
        return float(np.mean(predict(session, self.x, 256) == self.labels))

    def trial(self, spec: FaultSpec, seed: int) -> tuple[float, int]:
        faulty, changed = self.vendor.faulty_bytes(spec, seed=seed, threads=1)
        return self._accuracy(faulty), changed


def _chip_rows(bench: Bench, ber: float, folder: Path) -> dict[str, dict[str, Any]]:
    cells = bench.vendor.stored_bytes() * 8
    geometry = geometry_for(cells=cells)  # 512 x 64 banks
    rows: dict[str, dict[str, Any]] = {}
    for name, params in SCENARIOS.items():
        model = ClusterModel(ber=ber, **params)
        seeds = list(range(bench.args.seed, bench.args.seed + bench.args.maps))
        pa, changed, fraction, msb = [], [], [], []
        for seed in seeds:
            faulty, stuck = generate(geometry=geometry, model=model, seed=seed)
            path = folder / f"{name.split()[0]}-{seed}.npz"
            ChipMap(faulty, stuck, geometry, {"seed": seed, **model.to_dict()}).save(path)
            spec = FaultSpec(FaultModel.CHIP_MAP, 0.0, bench.vendor.storage, chip_map=path)
            accuracy, bits = bench.trial(spec, 0)
            pa.append(accuracy)
            changed.append(bits)
            fraction.append(float(faulty[:cells].mean()))
            msb.append(int(faulty[:cells].reshape(-1, 8)[:, 7].sum()))  # bit 7 of each byte
        rows[name] = {**_row(model.to_dict(), seeds, pa, changed, fraction), "msb_faulty": msb}
    rows["_geometry"] = {"banks_rows_cols": geometry.to_list(), "weight_bits": cells}
    return rows


def _kernel_row(bench: Bench, ber: float) -> dict[str, Any]:
    spec = FaultSpec(FaultModel.STUCK_AT, ber, bench.vendor.storage)
    seeds = list(range(EVAL_SEED_START, EVAL_SEED_START + bench.args.maps))
    results = [bench.trial(spec, seed) for seed in seeds]
    params = {"model": "validate --fault-model stuck-at (i.i.d. cells, fresh per trial seed)"}
    return _row(params, seeds, [r[0] for r in results], [r[1] for r in results], None)


def _row(
    params: dict[str, Any], seeds: list[int], pa: list[float], changed: list[int],
    fraction: list[float] | None,
) -> dict[str, Any]:  # fmt: skip
    summary = summarize(pa)
    return {
        "params": params, "seeds": seeds, "pa": pa, "pa_mean": summary.mean,
        "pa_std": summary.std, "pa_sem": summary.std / math.sqrt(max(len(pa) - 1, 1)),
        "pa_ci95": list(summary.ci95), "pa_min": min(pa), "pa_max": max(pa), "bits_changed": changed,
        "faulty_cell_fraction": fraction,
    }  # fmt: skip


def _table(result: dict[str, Any]) -> str:
    lines = [
        f"vendor {result['vendor']['path']} ({result['vendor']['storage']}), "
        f"{result['images']} images, CA {100 * result['ca']:.1f}%",
        f"{result['voltage']:g} x Vmin -> stuck-at BER {result['ber']:g} "
        f"({'assumed' if result['ber_assumed'] else 'sourced'}); 512 x 64 banks",
        f"{'scenario':<20} {'PA mean':>8} {'std':>6} {'SE':>5} {'min':>6} {'max':>6} "
        f"{'bits changed':>13}",
    ]
    for name, row in result["scenarios"].items():
        lines.append(
            f"{name:<20} {100 * row['pa_mean']:>7.1f}% {100 * row['pa_std']:>6.1f} "
            f"{100 * row['pa_sem']:>5.1f} "
            f"{100 * row['pa_min']:>6.1f} {100 * row['pa_max']:>6.1f} "
            f"{np.mean(row['bits_changed']):>13,.0f}"
        )
    return "\n".join(lines)


def main() -> None:
    args = _args()
    start = time.perf_counter()
    point = ber_at_voltage(args.voltage)
    bench = Bench(args)
    with tempfile.TemporaryDirectory() as folder:
        rows = _chip_rows(bench, point.ber, Path(folder))
    geometry = rows.pop("_geometry")
    rows[KERNEL] = _kernel_row(bench, point.ber)
    result = {
        "vendor": {"path": _relative(str(args.model)), "sha256": bench.vendor.sha256,
                   "storage": bench.vendor.storage.value},
        "data": bench.source, "split": args.split, "images": len(bench.x), "ca": bench.ca,
        "voltage": args.voltage, "ber": point.ber, "ber_assumed": point.assumed,
        "ber_source": point.source,
        "ber_definition": "stuck-at: each cell faulty with prob. p (in expectation, spread as "
        "the scenario says), stuck at 0 or 1 with prob. 1/2; one chip map = one trial",
        "geometry": geometry, "scenarios": rows,
        "command": shlex.join(["python", *(_relative(a) for a in sys.argv)]),
        "threads": args.threads, "seconds": round(time.perf_counter() - start, 1),
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(args.out / "chipmap-cluster.json", json.dumps(result, indent=1).encode())
    log = f"$ {result['command']}\n{_table(result)}\n({result['seconds']:.0f} s, --threads {args.threads})\n"
    write_bytes_atomic(args.out / "chipmap-cluster.log", log.encode())
    print(log, end="")
    print(f"figure: {_figure(result, args.out / 'chipmap-cluster.png')}")


def _bank_image(result: dict[str, Any], name: str) -> np.ndarray:
    """Bank 0 of the first chip of scenario ``name``: 0 healthy, 1 stuck at 0, 2 stuck at 1."""
    geometry = Geometry(*result["geometry"]["banks_rows_cols"])  # the chip as measured
    row = result["scenarios"][name]
    model = ClusterModel(**{k: v for k, v in row["params"].items() if k != "kind"})
    faulty, stuck = generate(geometry=geometry, model=model, seed=row["seeds"][0])
    return (faulty * (1 + stuck)).reshape(geometry.shape)[0]


def _figure(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    names = list(SCENARIOS)
    fig = plt.figure(figsize=(12, 5.2))
    grid = fig.add_gridspec(len(names), 2, width_ratios=[1.5, 1], hspace=0.55, wspace=0.15)
    colours = ListedColormap(["white", "tab:blue", "tab:red"])
    for i, name in enumerate(names):
        ax = fig.add_subplot(grid[i, 0])
        image = _bank_image(result, name).T  # columns down, rows across
        ax.imshow(image, cmap=colours, vmin=0, vmax=2, aspect="auto", interpolation="nearest")
        ax.set_title(f"{name}: bank 0 of chip seed {result['scenarios'][name]['seeds'][0]} "
                     "(blue SA0, red SA1)", fontsize=8, loc="left")  # fmt: skip
        ax.set_yticks([0, 63])
        ax.set_ylabel("col", fontsize=7)
        ax.tick_params(labelsize=7)
    ax.set_xlabel("row (512 per bank)", fontsize=8)
    ax = fig.add_subplot(grid[:, 1])
    labels = [*names, KERNEL]
    for k, name in enumerate(labels):
        row = result["scenarios"][name]
        ax.scatter([k] * len(row["pa"]), [100 * v for v in row["pa"]], s=12, alpha=0.5)
        ax.errorbar(k, 100 * row["pa_mean"], yerr=100 * row["pa_std"], fmt="o", color="black",
                    capsize=4)  # fmt: skip
    ax.axhline(100 * result["ca"], color="grey", linestyle="--", label="clean (CA)")
    ax.set_xticks(range(len(labels)), labels, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("perturbed accuracy PA (%)")
    ax.set_title(f"stuck-at BER {result['ber']:g} ({result['voltage']:g} x Vmin), "
                 f"{len(result['scenarios'][names[0]]['pa'])} chips each, mean +- std",
                 fontsize=9)  # fmt: skip
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _relative(arg: str) -> str:
    """Paths inside the repository as relative ones, so the log reads the same anywhere."""
    return arg.replace(str(ROOT) + "/", "")


if __name__ == "__main__":
    main()
