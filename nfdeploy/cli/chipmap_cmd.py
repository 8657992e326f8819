"""`nfdeploy chipmap`: write a persistent per-cell fault map sized for a model's stored weights."""

from __future__ import annotations

from typing import Any

import click

from nfdeploy.cli._errors import user_errors
from nfdeploy.cli._options import STORAGE_HELP, seed_option, storage_option

UNIT = click.FloatRange(0.0, 1.0)
#: CLI option -> ClusterModel field; defaults and their sources in nfdeploy.faults.chip_cluster.
CLUSTER_OPTIONS = {
    "row_share": "Share of the faults from weak rows (0 = none, default; 1 = all).",
    "col_share": "Share of the faults from weak columns (default 0).",
    "row_fault_prob": "Fault probability of a cell in a weak row (default 0.25: an ASSUMPTION, "
    "no sourced value).",
    "col_fault_prob": "Fault probability of a cell in a weak column (default 0.25: ASSUMPTION).",
    "sa1_fraction": "Share of faulty cells stuck at 1 (default 0.5, the NeuralFuse reference).",
}


def _cluster_options(fn: Any) -> Any:
    for name, help_text in reversed(CLUSTER_OPTIONS.items()):
        flag = "--" + name.replace("_", "-")
        fn = click.option(flag, name, type=UNIT, default=None, help=help_text)(fn)
    return fn


@click.command("chipmap")
@click.option(
    "--model",
    "model_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="ONNX model the map is sized for (its selected weights, as `nfdeploy inspect` lists).",
)
@click.option(
    "--bytes", "n_bytes", type=int, default=None, help="Size the map for this many stored bytes."
)
@click.option(
    "--ber",
    type=float,
    default=None,
    help="Stuck-at BER: expected fraction of faulty cells (each stuck at 0 or 1).",
)
@click.option(
    "--voltage",
    type=float,
    default=None,
    help="Supply voltage as a fraction of Vmin (e.g. 0.83): the BER comes from the voltage -> BER "
    "curve (0.83 -> 1e-2 sourced; 0.83..0.95 log-interpolated to an ASSUMED 0.95 -> 1.31e-5).",
)
@click.option(
    "--layout",
    default=None,
    help="ROWSxCOLS bit cells per bank, e.g. 512x64 (the paper's arrays; the default when "
    "clustered or --banks is given). Without it an i.i.d. map has one flat cell per weight bit.",
)
@click.option(
    "--banks",
    type=int,
    default=None,
    help="Number of banks (default: as many as the weights need).",
)
@_cluster_options
@seed_option(0, "Seed of the chip: the same seed is the same chip (faults nest as V drops).")
@storage_option(STORAGE_HELP + " The map covers this storage.")
@click.option(
    "--import",
    "import_path",
    default=None,
    type=click.Path(dir_okay=False, exists=True),
    help="Import a measured map: an .npz with bool sa0, sa1 of shape (banks, rows, cols) or "
    "(rows, cols), or packed sa0_packed/sa1_packed + shape; optional voltage, chip.",
)
@click.option(
    "--tile",
    is_flag=True,
    help="With --import: allow a map smaller than the weights and repeat it (else refused).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    help="Output .npz (format: nfdeploy.faults.chipmap, v2).",
)
def chipmap_command(**options: Any) -> None:
    """Make a chip map for `validate --fault-model chip-map --chip-map FILE`.

    Cells are laid out in storage order (cell = 8 x byte address + bit) over banks of
    ROWS x COLS; faults are independent cells plus optional weak rows and columns, calibrated
    so the expected faulty fraction is the BER. See docs/fault-model.md.
    """
    from nfdeploy.faults.chip_make import make_chip_map

    given = {k: options.pop(k) for k in CLUSTER_OPTIONS}
    cluster = {k: v for k, v in given.items() if v is not None}
    with user_errors():
        made = make_chip_map(cluster=cluster or None, **options)
    click.echo(made.summary(options["out"]))
