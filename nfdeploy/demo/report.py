"""REPORT.md for the demo folder: the numbers, the commands and links to every artifact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nfdeploy.onnx.atomic import write_bytes_atomic
from nfdeploy.validate.report import ValidationReport


def _load(path: Path) -> ValidationReport:
    return ValidationReport.from_dict(json.loads(path.read_text()))


def _rows(report: ValidationReport) -> list[str]:
    lines = [
        "| BER | CA | PA (mean ± std) | CA(NF) | PA(NF) (mean ± std) | RP |",
        "|---|---|---|---|---|---|",
    ]
    for row in report.results:
        pa, pa_nf = row.pa, row.pa_nf
        nf = f"{pa_nf.mean * 100:.1f} ± {pa_nf.std * 100:.1f}" if pa_nf else "-"
        ca_nf = f"{row.ca_nf * 100:.1f}" if row.ca_nf is not None else "-"
        rp = f"{row.rp * 100:+.1f}" if row.rp is not None else "-"
        lines.append(
            f"| {row.ber:g} | {row.ca * 100:.1f} | {pa.mean * 100:.1f} ± {pa.std * 100:.1f} | {ca_nf} | {nf} | {rp} |"
        )
    return lines


def _energy_lines(energy: dict[str, Any], validation_ber: float) -> list[str]:
    point = energy["operating_point"]
    ratio = energy["twma_g"] / energy["twma_m"]
    lines = [
        f"At {point['voltage_ratio']} x Vmin (BER {point['ber']}, r = {point['r']}): "
        f"TWMA_M {energy['twma_m']:,}, TWMA_G {energy['twma_g']:,}; MACs M {energy['macs_m']:,}, "
        f"G {energy['macs_g']:,}; ES = 1 - r - TWMA_G/TWMA_M = {energy['energy_saving'] * 100:.1f}%: "
        f"{energy['verdict']}.",
        "",
        f"The vendor holds {energy['params_m']:,} weights, the generator {energy['params_g']:,}; "
        f"G reads {ratio * 100:.1f}% as many weights per image as M (TWMA_G / TWMA_M), "
        f"against the {(1 - point['r']) * 100:.1f}% that undervolting M's weight memory saves.",
    ]
    if point["ber"] is not None and abs(point["ber"] - validation_ber) > 1e-12:
        lines += [
            "",
            f"ES is the paper's anchored point (BER {point['ber']:g}); the validation above runs "
            f"at BER {validation_ber:g}, a lower voltage where no measurement anchors r "
            "(docs/energy.md). If r keeps falling with the voltage (C V^2), ES there is at least "
            "this figure; it is not measured.",
        ]
    return lines


def _summary(report: ValidationReport, energy: dict[str, Any]) -> str:
    row = report.results[0]
    text = f"At BER {row.ber:g} ({report.header['fault']['fault_model']}): CA {row.ca * 100:.1f}, PA {row.pa.mean * 100:.1f}"
    if row.pa_nf is not None and row.rp is not None:
        text += (
            f"; with the generator CA(NF) {(row.ca_nf or 0.0) * 100:.1f}, "
            f"PA(NF) {row.pa_nf.mean * 100:.1f}: RP = PA(NF) - PA = {row.rp * 100:+.1f} points"
        )
    return f"{text}. Energy: ES = {energy['energy_saving'] * 100:.1f}% ({energy['verdict']})."


def write_report(out: Path, *, commands: list[str], seconds: float) -> Path:
    main = _load(out / "validate.json")
    energy = json.loads((out / "energy.json").read_text())
    sweeps = [_load(out / f"sweep-{name}.json") for name in ("stuck-at", "flip")]
    plots = out / "plots"
    extra = []
    try:
        from nfdeploy.validate.plots import accuracy_vs_ber

        accuracy_vs_ber(sweeps, plots / "accuracy_vs_ber_sweep.png")
        extra.append("![accuracy vs BER, both fault models](plots/accuracy_vs_ber_sweep.png)")
    except ImportError:
        extra.append("(install `nfdeploy[plots]` for pictures)")
    lines = [
        "# nfdeploy demo report",
        "",
        f"Built-in synthetic data ({main.header['data']['images']} test images), a VGG-style vendor "
        f"CNN (`vendor.onnx`, {energy['params_m']:,} weights), a UNetS generator "
        f"(`run/generator.onnx`, {energy['params_g']:,} weights). Total time {seconds:.0f}s.",
        "",
        _summary(main, energy),
        "",
        f"## Validation at BER {main.results[0].ber:g}, {main.header['trials']} trials (seeds {main.header['seeds'][0]}..{main.header['seeds'][-1]})",
        "",
        f"Fault model: {main.header['fault']['definition']}",
        "",
        *_rows(main),
        "",
        "![accuracy vs BER](plots/accuracy_vs_ber.png) ![per-trial](plots/trial_distribution.png)",
        "",
        "![inputs, fused inputs and predictions](plots/image_grid.png)",
        "",
        f"## BER sweep ({sweeps[0].header['trials']} trials each)",
    ]
    for sweep in sweeps:
        lines += [
            "",
            f"**{sweep.header['fault']['fault_model']}**: {sweep.header['fault']['definition']}",
            "",
            *_rows(sweep),
        ]
    lines += [
        "",
        *extra,
        "",
        "## Energy (`energy.json`)",
        "",
        *_energy_lines(energy, main.results[0].ber),
    ]
    lines += [
        "",
        "## Commands (rerun them on your own model and data)",
        "",
        "```",
        *commands,
        "```",
        "",
    ]
    lines += [
        "Files: `validate.json`, `sweep-stuck-at.json`, `sweep-flip.json`, `energy.json`, `run/` (config, metrics, checkpoints)."
    ]
    return write_bytes_atomic(out / "REPORT.md", "\n".join(lines).encode())
