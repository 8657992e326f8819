"""`nfdeploy validate`: device-like accuracy check under weight bit errors (torch-free)."""

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


@click.command("validate")
@click.option(
    "--model", "model", required=True, type=click.Path(dir_okay=False), help="Vendor ONNX model."
)
@click.option(
    "--generator",
    type=click.Path(dir_okay=False),
    multiple=True,
    help="generator.onnx from `nfdeploy export`; repeat to compare several on the same fault "
    "patterns (then --report/--plots need '{generator}' in the path).",
)
@click.option("--data", required=True, help="Data: a folder, CIFAR/IDX/npz path, or 'synthetic'.")
@split_option()
@limit_option()
@click.option(
    "--preprocess",
    default=None,
    help="e.g. 'cifar10', 'unit' or 'mean=.5/.5/.5,std=.5/.5/.5'. Default: stored with the generator.",
)
@click.option(
    "--ber",
    "bers",
    type=float,
    multiple=True,
    help="Bit error rate; repeat for a sweep. Give --ber or --voltage (with --fault-model "
    "chip-map, neither: the rate the map was made at).",
)
@click.option(
    "--voltage",
    "voltages",
    type=float,
    multiple=True,
    help="Supply voltage as a fraction of Vmin (e.g. 0.83), instead of --ber: the stuck-at BER "
    "comes from the voltage -> BER curve (0.83 -> 1e-2 sourced, 0.83..0.95 ASSUMED log-linear; "
    "see docs/fault-model.md); repeat for a sweep. Needs --fault-model stuck-at or ref-tiled.",
)
@trials_option(10, "Seeded fault patterns per BER.")
@seed_option(50_000, "First trial seed (trial k uses seed+k).")
@fault_options()
@click.option(
    "--nested",
    is_flag=True,
    help="Nested patterns: for each trial seed the faulty cells at a lower --ber are a subset "
    "of those at a higher one (each rate still exactly i.i.d.; stuck values do not change with "
    "the rate), so a sweep is paired per trial. flip and stuck-at; ref-tiled is always nested. "
    "Default: independent patterns per rate.",
)
@click.option(
    "--faulty-generator", is_flag=True, help="Inject faults into the generator's weights too."
)
@threads_option("onnxruntime threads (0 = all cores).")
@batch_size_option(256)
@click.option(
    "--provider",
    type=click.Choice(["cpu", "cuda", "tensorrt", "auto"]),
    default="cpu",
    show_default=True,
    help="onnxruntime execution provider; auto = the first of tensorrt, cuda, cpu that this "
    "onnxruntime has. The report records it.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Run the trials in this many processes or Ray actors (each with cores / K "
    "onnxruntime threads unless --threads says otherwise); the results are the same as with 1.",
)
@click.option(
    "--backend",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Where the --workers run: local processes, or Ray actors (pip install "
    "'nfdeploy[ray]'; RAY_ADDRESS or --ray-address, else a local Ray). Same results.",
)
@click.option(
    "--ray-address",
    default=None,
    help="Ray cluster to join, e.g. ray://head:10001 (default: RAY_ADDRESS, else a local Ray).",
)
@report_option()
@click.option(
    "--plots",
    type=click.Path(file_okay=False),
    default=None,
    help="Write PNG plots into this folder.",
)
@click.option(
    "--fail-under",
    type=float,
    default=None,
    help="Exit 1 if PA(NF) (or PA) falls below this accuracy (0-1 or %).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def validate_command(**options: object) -> None:
    """Accuracy of the vendor model without and with the generator, over seeded bit-error trials."""
    from nfdeploy.validate.api import config_from_cli, validate

    with user_errors():
        config, outputs = config_from_cli(options)
        ok = validate(config=config, outputs=outputs)
    if not ok:
        raise click.exceptions.Exit(1)
