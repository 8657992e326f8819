"""PNG pictures of a validation run (matplotlib is optional: `pip install 'nfdeploy[plots]'`)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from nfdeploy.onnx.atomic import write_bytes_atomic
from nfdeploy.validate.report import Samples, ValidationReport


def _save(fig: plt.Figure, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return write_bytes_atomic(path, buffer.getvalue())


def accuracy_vs_ber(reports: Sequence[ValidationReport], path: Path) -> Path:
    """PA and PA(NF) against BER: mean line, band = min..max over trials; one pair per fault model."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for index, report in enumerate(reports):
        model = report.header["fault"]["fault_model"]
        rows = sorted(report.results, key=lambda r: r.ber)
        bers = np.array([r.ber for r in rows])
        color = f"C{index}"
        for key, style, label in (("pa", "-", "without G"), ("pa_nf", "--", "with G")):
            per_trial = [[getattr(t, key) for t in r.trials] for r in rows]
            if any(v is None for trial in per_trial for v in trial):
                continue
            values = np.array(per_trial, dtype=float) * 100
            ax.plot(bers, values.mean(1), style, color=color, marker="o", label=f"{model}: {label}")
            ax.fill_between(bers, values.min(1), values.max(1), color=color, alpha=0.15)
        ax.axhline(
            rows[0].ca * 100,
            color="gray",
            lw=0.8,
            ls=":",
            label="CA (clean)" if index == 0 else None,
        )
    all_bers = sorted({row.ber for report in reports for row in report.results})
    ax.set_xscale("symlog", linthresh=min([b for b in all_bers if b > 0], default=1e-3))
    ax.set_xticks(all_bers, [f"{b:g}" for b in all_bers])
    if len(all_bers) == 1:  # one point: give the axis a width
        ax.set_xlim(all_bers[0] * 0.5 - 1e-4, all_bers[0] * 1.5 + 1e-4)
    ax.minorticks_off()
    ax.set_xlabel("bit error rate (BER)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Accuracy under weight bit errors (band: min-max over trials)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def trial_distribution(report: ValidationReport, path: Path) -> Path:
    """Per-trial PA and PA(NF) at each BER, as points over a box."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    groups, labels = [], []
    for row in report.results:
        groups.append([t.pa * 100 for t in row.trials])
        labels.append(f"PA\n{row.ber:g}")
        if row.pa_nf is not None:
            groups.append([(t.pa_nf or 0) * 100 for t in row.trials])
            labels.append(f"PA(NF)\n{row.ber:g}")
    ax.boxplot(groups, tick_labels=labels, widths=0.5)
    rng = np.random.default_rng(0)
    for i, values in enumerate(groups, start=1):
        ax.scatter(
            i + rng.uniform(-0.12, 0.12, len(values)), values, s=12, alpha=0.7, color=f"C{i % 2}"
        )
    ax.set_ylabel("accuracy (%)")
    ax.set_title(
        f"Per-trial accuracy ({report.header['trials']} trials, seeds {report.header['seeds'][0]}+)"
    )
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def image_grid(samples: Samples, path: Path, *, gain: float = 5.0) -> Path:
    """Original, fused F(x) and amplified |F(x) - x|, with labels from clean / perturbed / +NF."""
    rows = 3 if samples.fused is not None else 1
    k = len(samples.images)
    fig, axes = plt.subplots(rows, k, figsize=(1.6 * k, 1.9 * rows), squeeze=False)
    names = samples.class_names

    def name(index: int) -> str:  # a model may predict classes the data set never names
        return names[index] if 0 <= index < len(names) else f"class {index}"

    for j in range(k):
        lines = [f"true {name(samples.labels[j])}"] + [
            f"{key}: {name(pred[j])}" for key, pred in samples.predictions.items()
        ]
        _show(axes[0][j], samples.images[j], "\n".join(lines))
        if samples.fused is not None:
            _show(axes[1][j], samples.fused[j], "F(x)")
            diff = np.abs(samples.fused[j].astype(float) - samples.images[j].astype(float)) * gain
            _show(axes[2][j], np.clip(diff, 0, 255).astype(np.uint8), f"|F(x)-x| x{gain:g}")
    fig.suptitle(f"Predictions at BER {samples.ber:g} (trial seed {samples.seed})", fontsize=9)
    return _save(fig, path)


def _show(ax: plt.Axes, image: np.ndarray, title: str) -> None:
    ax.imshow(
        image.squeeze(), cmap="gray" if image.shape[-1] == 1 else None, interpolation="nearest"
    )
    ax.set_title(title, fontsize=6)
    ax.axis("off")


def write_validation_plots(report: ValidationReport, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = [
        accuracy_vs_ber([report], folder / "accuracy_vs_ber.png"),
        trial_distribution(report, folder / "trial_distribution.png"),
    ]
    if report.samples is not None:
        written.append(image_grid(report.samples, folder / "image_grid.png"))
    return written
