"""The demo's vendor is sized so that UNetS in front of it saves energy (ES > 0)."""

from __future__ import annotations

from pathlib import Path

import torch

from nfdeploy.data import Preprocess
from nfdeploy.demo.vendor_model import DEMO_PREPROCESS, demo_cnn, export_vendor
from nfdeploy.energy import energy_report
from nfdeploy.generators.registry import build_generator


def test_demo_vendor_outweighs_unets_in_weight_reads(tmp_path: Path) -> None:
    """Untrained weights give the same TWMA, MACs and counts as trained ones (shapes only)."""
    torch.manual_seed(0)
    pre = Preprocess.parse(DEMO_PREPROCESS)
    vendor = export_vendor(demo_cnn(pre.channels, 10).eval(), pre, tmp_path / "vendor.onnx")
    generator = export_vendor(build_generator("UNetS").eval(), pre, tmp_path / "g.onnx")
    report = energy_report(vendor=vendor, generator=generator)  # the paper's 1% point
    assert report.params_m > 10 * report.params_g
    assert report.macs_m < 1.5 * report.macs_g  # cheap enough to train against in the demo
    assert report.energy_saving > 0.05, report.to_text()
    assert report.verdict.startswith("saves ")
