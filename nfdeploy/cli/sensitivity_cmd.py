"""`nfdeploy sensitivity`: PA with faults in one weight tensor at a time, and keep-k (torch-free)."""

from __future__ import annotations

import click

from nfdeploy.cli._errors import user_errors
from nfdeploy.cli._options import (
    batch_size_option,
    fault_options,
    limit_option,
    report_option,
    seed_option,
    split_option,
    threads_option,
    trials_option,
)


@click.command("sensitivity")
@click.option("--model", required=True, type=click.Path(dir_okay=False), help="Vendor ONNX model.")
@click.option("--data", required=True, help="Data: a folder, CIFAR/IDX/npz path, or 'synthetic'.")
@split_option()
@limit_option()
@click.option(
    "--preprocess", default=None, help="e.g. 'cifar10' or 'unit'. Default: stored in the model."
)
@click.option("--ber", type=float, required=True, help="Bit error rate (one).")
@trials_option(5, "Seeded fault patterns per group (and per k).")
@seed_option(50_000, "First trial seed (trial k uses seed+k), as in validate.")
@fault_options()
@click.option(
    "--group",
    multiple=True,
    metavar="NAME=REGEX",
    help="Fault these tensors together as one group (first match wins; repeatable). "
    "Other tensors are groups of their own.",
)
@click.option(
    "--keep-max",
    type=click.IntRange(min=0),
    default=None,
    help="Keep-k curve up to this k  [default: 5, or all groups if fewer].",
)
@threads_option("onnxruntime threads (0 = all cores).")
@batch_size_option(256)
@report_option()
@click.option(
    "--plot",
    type=click.Path(file_okay=False),
    default=None,
    help="Write sensitivity.png and keep-k.png into this folder.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def sensitivity_command(**options: object) -> None:
    """Rank weight tensors by the PA drop that faults in them alone cause, at one BER, and
    show PA and energy saving when the k most sensitive stay at nominal voltage."""
    from nfdeploy.sensitivity.api import sensitivity

    with user_errors():
        sensitivity(**options)  # type: ignore[arg-type]
