"""Options shared by several commands (fault model and tensor selection)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from nfdeploy.faults.spec import FaultModel, Storage

STORAGE_CHOICES = ["auto", *[s.value for s in Storage]]


def fault_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--fault-model",
            type=click.Choice([m.value for m in FaultModel]),
            default=FaultModel.FLIP.value,
            show_default=True,
            help="flip: each bit flips with prob. BER. stuck-at: each cell faulty with prob. BER, "
            "stuck at 0/1 (reference '1%' = ~0.5% flips). chip-map: fixed map from --chip-map.",
        ),
        click.option(
            "--storage",
            type=click.Choice(STORAGE_CHOICES),
            default="auto",
            show_default=True,
            help="How weights are stored: auto = qdq for a QDQ model, else int8-tensor (paper).",
        ),
        click.option(
            "--bits", default=None, help="Only these bit positions fail, e.g. '7' or '6-7'."
        ),
        click.option(
            "--chip-map",
            type=click.Path(dir_okay=False, exists=True),
            default=None,
            help="Persistent cell map (.npz) for --fault-model chip-map; see `nfdeploy chipmap`.",
        ),
        click.option("--include-bias", is_flag=True, help="Also inject into Conv/Gemm biases."),
        click.option(
            "--tensors", default=None, help="Regex: only initializers whose name matches."
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn
