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


def _energy_lines(energy: dict[str, Any]) -> list[str]:
    point = energy["operating_point"]
    return [
        f"At {point['voltage_ratio']} x Vmin (BER {point['ber']}, r = {point['r']}): "
        f"TWMA_M {energy['twma_m']:,}, TWMA_G {energy['twma_g']:,}; MACs M {energy['macs_m']:,}, "
        f"G {energy['macs_g']:,}; ES = 1 - r - TWMA_G/TWMA_M = {energy['energy_saving'] * 100:.1f}%: "
        f"{energy['verdict']}.",
        "",
        "The demo's vendor model is tiny (0.16M weights), so even UNetS reads about as many weights as "
        "it does; in front of a ResNet18-sized vendor the same generator saves energy (docs/energy.md).",
    ]


def write_report(out: Path, *, commands: list[str], seconds: float) -> Path:
    main = _load(out / "validate.json")
    sweeps = [_load(out / f"sweep-{name}.json") for name in ("stuck-at", "flip")]
    plots = out / "plots"
    extra = []
    try:
        from nfdeploy.validate.plots import accuracy_vs_ber

        accuracy_vs_ber(sweeps, plots / "accuracy_vs_ber_sweep.png")
        extra.append("![accuracy vs BER, both fault models](plots/accuracy_vs_ber_sweep.png)")
    except ImportError:
        extra.append("(install `nfdeploy[plots]` for pictures)")
    energy = json.loads((out / "energy.json").read_text())
    lines = [
        "# nfdeploy demo report",
        "",
        f"Built-in synthetic data ({main.header['data']['images']} test images), a small vendor CNN "
        f"(`vendor.onnx`), a UNetS generator (`run/generator.onnx`). Total time {seconds:.0f}s.",
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
        "## BER sweep (5 trials each)",
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
        *_energy_lines(energy),
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
