"""`nfdeploy chipmap`: write a persistent per-cell fault map sized for a model's stored weights."""

from __future__ import annotations

import click

from nfdeploy.cli._errors import user_errors
from nfdeploy.cli._options import STORAGE_HELP, seed_option, storage_option


@click.command("chipmap")
@click.option(
    "--model",
    "model_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="ONNX model the map is sized for.",
)
@click.option(
    "--ber",
    type=float,
    required=True,
    help="Probability that a cell is faulty (stuck at 0 or 1, 1/2 each).",
)
@seed_option(0, "Seed of the cell map.")
@storage_option(STORAGE_HELP + " The map covers this storage.")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    help="Output .npz (format: nfdeploy.faults.chipmap).",
)
def chipmap_command(model_path: str, ber: float, seed: int, storage: str, out: str) -> None:
    """Make a chip map for `validate --fault-model chip-map --chip-map FILE`."""
    from nfdeploy.faults.chipmap import make_chip_map_for_model

    with user_errors():
        cells, faulty = make_chip_map_for_model(
            model_path=model_path, ber=ber, seed=seed, storage=storage, out=out
        )
    click.echo(f"wrote {out}: {cells:,} cells, {faulty:,} faulty (seed {seed})")
