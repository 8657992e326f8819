"""Validation report: per-BER rows with per-trial detail; JSON (versioned) and a human table."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nfdeploy.onnx.atomic import write_bytes_atomic
from nfdeploy.validate.stats import Summary, summarize

# 2: wall-clock fields (the creation time, per-trial inject_s/infer_s) live under "timing"
# only, so two identical runs give the same JSON apart from "timing". from_dict reads 1 too.
SCHEMA_VERSION = 2
TIMING_FIELDS = ("inject_s", "infer_s")


@dataclass(frozen=True)
class TrialResult:
    trial: int
    seed: int
    bits_changed: int
    pa: float
    pa_nf: float | None
    inject_s: float  # perturb + write + serialize + session build
    infer_s: float  # inference over the data set for this trial
    generator_bits_changed: int = 0  # with --faulty-generator

    def to_dict(self) -> dict[str, Any]:
        """The results of the trial; its timing is in :meth:`timing_dict`."""
        return {k: v for k, v in self.__dict__.items() if k not in TIMING_FIELDS}

    def timing_dict(self) -> dict[str, float]:
        return {k: float(getattr(self, k)) for k in TIMING_FIELDS}


@dataclass
class BerResult:
    ber: float
    ca: float
    ca_nf: float | None
    trials: list[TrialResult] = field(default_factory=list)

    @property
    def pa(self) -> Summary:
        return summarize([t.pa for t in self.trials])

    @property
    def pa_nf(self) -> Summary | None:
        values = [t.pa_nf for t in self.trials if t.pa_nf is not None]
        return summarize(values) if values else None

    @property
    def rp(self) -> float | None:
        pa_nf = self.pa_nf
        return None if pa_nf is None else pa_nf.mean - self.pa.mean

    def to_dict(self) -> dict[str, Any]:
        pa_nf = self.pa_nf
        return {
            "ber": self.ber,
            "ca": self.ca,
            "pa": self.pa.to_dict(),
            "ca_nf": self.ca_nf,
            "pa_nf": pa_nf.to_dict() if pa_nf else None,
            "rp": self.rp,
            "trials": [t.to_dict() for t in self.trials],
        }


@dataclass
class Samples:
    """A few inputs for the image grid: pixels, fused pixels and predictions (not in the JSON)."""

    images: np.ndarray  # uint8 NHWC originals
    fused: np.ndarray | None  # uint8 NHWC of F(x), mapped back to pixels
    labels: np.ndarray
    class_names: list[str]
    predictions: dict[str, np.ndarray]  # "clean", "perturbed", "perturbed+NF"
    ber: float
    seed: int


@dataclass
class ValidationReport:
    header: dict[str, Any]  # vendor, generator, data, preprocess, fault model, seeds, tensors
    results: list[BerResult]
    timing: dict[str, float]
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. energy
    samples: Samples | None = None

    def to_dict(self) -> dict[str, Any]:
        """Everything that depends on the clock is under "timing" (see SCHEMA_VERSION)."""
        header = {k: v for k, v in self.header.items() if k != "created"}
        timing = {
            **self.timing,
            "created": self.header.get("created"),
            "trials": [[t.timing_dict() for t in row.trials] for row in self.results],
        }
        return {
            "schema_version": SCHEMA_VERSION,
            **header,
            "results": [r.to_dict() for r in self.results],
            "timing": timing,
            **self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationReport:
        """Rebuild from :meth:`to_dict` output (for plots and reports across runs)."""
        timing = dict(data["timing"])
        per_trial = timing.pop("trials", None)  # schema 2; schema 1 kept them in each trial
        created = timing.pop("created", data.get("created"))
        results = [
            BerResult(
                ber=row["ber"], ca=row["ca"], ca_nf=row["ca_nf"],
                trials=[
                    TrialResult(**{**trial, **(per_trial[i][j] if per_trial else {})})
                    for j, trial in enumerate(row["trials"])
                ],
            )
            for i, row in enumerate(data["results"])
        ]  # fmt: skip
        header = {k: v for k, v in data.items() if k not in ("results", "timing", "schema_version")}
        if created is not None:
            header["created"] = created
        return cls(header=header, results=results, timing=timing)

    def write_json(self, path: str | Path) -> Path:
        text = json.dumps(self.to_dict(), indent=2, sort_keys=False)
        return write_bytes_atomic(path, (text + "\n").encode())

    def table(self) -> str:
        fault = self.header["fault"]
        has_nf = any(r.ca_nf is not None for r in self.results)
        lines = [
            f"vendor: {self.header['vendor']['path']}   data: {self.header['data']['source']}",
            f"fault model: {fault['definition']}",
            f"trials: {self.header['trials']}, seeds {self.header['seeds'][0]}..{self.header['seeds'][-1]}; "
            f"{len(self.header['tensors'])} tensors, {self.header['stored_bytes']:,} stored bytes",
        ]
        head = f"{'BER':>8} {'CA':>6} {'PA (mean ± std)':>16} {'95% CI':>13}"
        if has_nf:
            head += f" {'CA(NF)':>7} {'PA(NF) (mean ± std)':>20} {'RP':>6}"
        lines += [head, "-" * len(head)]
        for row in self.results:
            pa = row.pa
            line = f"{row.ber:>8g} {row.ca * 100:6.1f} {pa.text():>16} {pa.ci95[0] * 100:6.1f}-{pa.ci95[1] * 100:<5.1f}"
            pa_nf = row.pa_nf
            if has_nf and pa_nf is not None and row.ca_nf is not None and row.rp is not None:
                line += f" {row.ca_nf * 100:7.1f} {pa_nf.text():>20} {row.rp * 100:+6.1f}"
            lines.append(line)
        t = self.timing
        lines.append(
            f"{t['images_per_s']:,.0f} images/s; fault emulation overhead {t['overhead_ratio'] * 100:.2f}% "
            "of inference time per trial"
        )
        return "\n".join(lines)
