"""PNG pictures of a sensitivity run (matplotlib is optional: `pip install 'nfdeploy[plots]'`)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from nfdeploy.onnx.atomic import write_bytes_atomic
from nfdeploy.sensitivity.report import SensitivityReport

BAR_PLOT = "sensitivity.png"
KEEP_PLOT = "keep-k.png"


def _save(fig: plt.Figure, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return write_bytes_atomic(path, buffer.getvalue())


def _title(report: SensitivityReport) -> str:
    fault = report.header["fault"]
    return (
        f"{Path(report.header['vendor']['path']).name}: {fault['fault_model']} p = "
        f"{fault['ber']:g}, {report.header['trials']} trials"
    )


def sensitivity_bars(report: SensitivityReport, path: Path) -> Path:
    """PA drop per group (faults only there), most sensitive on top; whiskers: min-max."""
    rows = report.ranking
    drops = np.array([[report.ca - t.pa for t in r.trials] for r in rows]) * 100
    mean = drops.mean(axis=1)
    spread = np.stack([mean - drops.min(axis=1), drops.max(axis=1) - mean])
    fig, ax = plt.subplots(figsize=(7.0, 0.28 * len(rows) + 1.4))
    y = np.arange(len(rows))
    ax.barh(y, mean, xerr=spread, color="C3", alpha=0.8, capsize=2)
    ax.set_yticks(y, [f"{r.group.layer()}  [{r.group.name}]" for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(f"PA drop (points below CA {report.ca * 100:.1f})")
    ax.set_title(f"Per-tensor sensitivity, {_title(report)}", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def keep_k_curve(report: SensitivityReport, path: Path) -> Path:
    """PA (left) and ES (right) when the k most sensitive groups stay at nominal voltage."""
    k = [row.k for row in report.keep]
    pa = np.array([[t.pa for t in row.trials] for row in report.keep]) * 100
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(k, pa.mean(axis=1), "-o", color="C0", label="PA (mean; band min-max)")
    ax.fill_between(k, pa.min(axis=1), pa.max(axis=1), color="C0", alpha=0.15)
    ax.axhline(report.ca * 100, color="gray", lw=0.8, ls=":", label="CA (clean)")
    ax.set_xlabel("k = most sensitive tensors kept at nominal voltage")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_xticks(k)
    ax.grid(alpha=0.3)
    es = [row.energy_saving for row in report.keep]
    handles, labels = ax.get_legend_handles_labels()
    if all(v is not None for v in es):
        right = ax.twinx()
        right.plot(k, [100 * v for v in es if v is not None], "--s", color="C2", label="ES")
        right.set_ylabel("energy saving ES (%)")
        right.set_ylim(0, max(100 * max(v for v in es if v is not None), 1.0) * 1.15)
        more = right.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    ax.legend(handles, labels, fontsize=8, loc="lower right")
    ax.set_title(f"Keep k tensors fault-free, {_title(report)}", fontsize=9)
    return _save(fig, path)


def write_plots(report: SensitivityReport, folder: Path) -> list[Path]:
    return [
        sensitivity_bars(report, folder / BAR_PLOT),
        keep_k_curve(report, folder / KEEP_PLOT),
    ]
