"""Turning trial outcomes into reports: one slot per generator, rows, samples, header."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nfdeploy import __version__
from nfdeploy.data import Dataset, Preprocess
from nfdeploy.faults.onnx_model import FaultableModel
from nfdeploy.faults.spec import FaultSpec
from nfdeploy.validate.report import BerResult, Samples
from nfdeploy.validate.trial import Fuser


@dataclass
class Slot:
    """One report: its generator's fuser (no generator: the vendor alone) and its results."""

    fuser: Fuser
    ca_nf: float | None
    rows: list[BerResult] = field(default_factory=list)
    samples: Samples | None = None


def timing_summary(results: list[BerResult], n_images: int) -> dict[str, float]:
    trials = [t for row in results for t in row.trials]
    infer = sum(t.infer_s for t in trials)
    inject = sum(t.inject_s for t in trials)
    passes = sum(1 if t.pa_nf is None else 2 for t in trials)
    return {
        "images_per_s": passes * n_images / infer if infer else 0.0,
        "inject_s_per_trial": inject / len(trials),
        "infer_s_per_trial": infer / len(trials),
        "overhead_ratio": inject / infer if infer else 0.0,
    }


SAMPLE_COUNT = 8


def sample_index(labels: np.ndarray, count: int = SAMPLE_COUNT) -> np.ndarray:
    """The first image of each class (data sets are often sorted by class), then the next ones."""
    classes = np.unique(labels)
    firsts = [int(np.flatnonzero(labels == c)[0]) for c in classes][:count]
    taken = set(firsts)
    rest = [i for i in range(min(len(labels), 2 * count)) if i not in taken]
    return np.array(sorted(firsts + rest[: count - len(firsts)]), dtype=np.int64)


def sample_predictions(
    dataset: Dataset, pre: Preprocess, fused: np.ndarray | None, clean: np.ndarray,
    perturbed: np.ndarray, perturbed_nf: np.ndarray | None, ber: float, seed: int,
) -> Samples:  # fmt: skip
    idx = sample_index(dataset.labels)
    predictions = {"clean": clean[idx], "perturbed": perturbed[idx]}
    if perturbed_nf is not None:
        predictions["perturbed+NF"] = perturbed_nf[idx]
    fused_pixels = None if fused is None else to_pixels(fused[idx], pre)
    return Samples(
        dataset.images[idx],
        fused_pixels,
        dataset.labels[idx],
        list(dataset.class_names),
        predictions,
        ber,
        seed,
    )


def to_pixels(x: np.ndarray, pre: Preprocess) -> np.ndarray:
    """Model-input floats (N,C,H,W) back to uint8 pixels (N,H,W,C)."""
    values = x * pre.std_array().reshape(1, -1, 1, 1) + pre.mean_array().reshape(1, -1, 1, 1)
    return np.clip(np.rint(values / pre.scale), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def report_header(
    vendor: FaultableModel,
    gen: FaultableModel | None,
    source: str,
    n_images: int,
    pre: Preprocess,
    spec: FaultSpec,
    seeds: list[int],
    faulty_generator: bool,
) -> dict[str, Any]:
    fault = spec.to_dict()
    fault.pop("ber")
    fault["definition"] = spec.describe().replace(f"p = {spec.ber:g}", "p = BER")
    return {
        "tool": f"nfdeploy {__version__}",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "vendor": {
            "path": str(vendor.path),
            "sha256": vendor.sha256,
            "batch": vendor.batch_note,
            "storage": vendor.storage.value,
        },
        "generator": None
        if gen is None
        else {
            "path": str(gen.path),
            "sha256": gen.sha256,
            "faulty": faulty_generator,
            "metadata": gen.metadata,
        },
        "data": {"source": source, "images": n_images},
        "preprocess": pre.to_dict(),
        "fault": fault,
        "trials": len(seeds),
        "seeds": seeds,
        "seed_scheme": "trial k uses seed (--seed + k); tensor stream = FNV-1a-64(name); see nfdeploy.faults.kernel",
        "tensors": [t.to_dict() for t in vendor.targets],
        "stored_bytes": vendor.stored_bytes(),
    }
