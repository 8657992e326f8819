"""The sensitivity report: groups ranked by PA drop, the keep-k curve, table and JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nfdeploy.onnx.atomic import write_bytes_atomic
from nfdeploy.sensitivity.groups import Group
from nfdeploy.sensitivity.measure import Trial
from nfdeploy.validate.stats import Summary, summarize

SCHEMA = "nfdeploy-sensitivity-1"


@dataclass(frozen=True)
class GroupResult:
    """PA with faults only in this group's tensors."""

    group: Group
    trials: list[Trial]
    stored_bytes: int
    access_share: float | None  # of M's weight-SRAM accesses; None: energy not estimated

    def pa(self) -> Summary:
        return summarize([t.pa for t in self.trials])

    def to_dict(self, rank: int, ca: float) -> dict[str, Any]:
        return {
            "rank": rank,
            "group": self.group.name,
            "tensors": list(self.group.tensors),
            "nodes": list(self.group.nodes),
            "stored_bytes": self.stored_bytes,
            "access_share": self.access_share,
            "pa": self.pa().to_dict(),
            "pa_drop": ca - self.pa().mean,
            **_trials_dict(self.trials),
        }


@dataclass(frozen=True)
class KeepResult:
    """The k most sensitive groups kept fault-free (nominal voltage), all others undervolted."""

    k: int
    kept: tuple[str, ...]  # group names, most sensitive first
    trials: list[Trial]
    undervolted_byte_share: float
    undervolted_access_share: float | None
    energy_saving: float | None

    def pa(self) -> Summary:
        return summarize([t.pa for t in self.trials])

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "kept": list(self.kept),
            "pa": self.pa().to_dict(),
            "undervolted_byte_share": self.undervolted_byte_share,
            "undervolted_access_share": self.undervolted_access_share,
            "energy_saving": self.energy_saving,
            **_trials_dict(self.trials),
        }


def _trials_dict(trials: list[Trial]) -> dict[str, Any]:
    return {
        "seeds": [t.seed for t in trials],
        "pa_trials": [t.pa for t in trials],
        "bits_changed": [t.bits_changed for t in trials],
    }


def rank_groups(results: list[GroupResult], ca: float) -> list[GroupResult]:
    """Largest PA drop first; equal drops keep graph order."""
    return sorted(results, key=lambda r: ca - r.pa().mean, reverse=True)


@dataclass
class SensitivityReport:
    header: dict[str, Any]
    ca: float
    ranking: list[GroupResult]  # most sensitive first
    keep: list[KeepResult]  # k = 0, 1, ..., K
    energy: dict[str, Any]
    timing: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            **self.header,
            "ca": self.ca,
            "ranking": [r.to_dict(i + 1, self.ca) for i, r in enumerate(self.ranking)],
            "keep_k": [k.to_dict() for k in self.keep],
            "energy": self.energy,
            "timing": self.timing,
        }

    def write_json(self, path: str | Path) -> Path:
        text = json.dumps(self.to_dict(), indent=2)
        return write_bytes_atomic(path, (text + "\n").encode())

    def table(self, top: int | None = None) -> str:
        h = self.header
        lines = [
            f"vendor: {h['vendor']['path']}   data: {h['data']['source']} "
            f"({h['data']['images']} images)",
            f"fault model: {h['fault']['definition']}",
            f"trials: {h['trials']} per group, seeds {h['seeds'][0]}..{h['seeds'][-1]}; "
            f"{len(h['tensors'])} tensors in {len(self.ranking)} groups; CA {self.ca * 100:.1f}",
            "",
            "per-group sensitivity (faults only in that group):",
            f"{'rank':>4}  {'group':<24} {'layer (node)':<32} {'bytes':>9} {'access':>7} "
            f"{'PA (mean ± std)':>16} {'drop':>6}",
        ]
        for i, row in enumerate(self.ranking[:top]):
            lines.append(
                f"{i + 1:>4}  {row.group.name:<24} {_cut(row.group.layer(), 32):<32} "
                f"{row.stored_bytes:>9,} "
                f"{_pct(row.access_share):>7} {row.pa().text():>16} "
                f"{(self.ca - row.pa().mean) * 100:>6.1f}"
            )
        if top is not None and len(self.ranking) > top:
            lines.append(f"      ... {len(self.ranking) - top} more in the JSON report")
        lines += [
            "",
            "keep-k: the k most sensitive groups fault-free (nominal voltage), the rest faulty:",
            f"{'k':>4}  {'kept at nominal (added)':<32} {'undervolted':>11} "
            f"{'PA (mean ± std)':>16} {'ES':>6}",
        ]
        for keep in self.keep:
            added = keep.kept[-1] if keep.kept else "-"
            lines.append(
                f"{keep.k:>4}  {added:<32} {_pct(keep.undervolted_access_share):>11} "
                f"{keep.pa().text():>16} {_pct(keep.energy_saving):>6}"
            )
        lines.append(f"ES: {self.energy.get('formula', '')}; r = {self.energy.get('r', '?')}")
        if "error" in self.energy:
            lines.append(f"energy: not estimated ({self.energy['error']})")
        return "\n".join(lines)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else "..." + text[-(width - 3) :]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"
