"""`nfdeploy energy`: NeuralFuse energy saving ES = 1 - r - TWMA_G / TWMA_M (torch-free)."""

from __future__ import annotations

import json
import re

import click

from nfdeploy.cli._errors import user_errors


def _dims(text: str | None, what: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    parts = [p for p in re.split(r"[x×,\s]+", text.strip()) if p]
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise click.BadParameter(
            f"'{text}': expected integers like 1x3x32x32", param_hint=what
        ) from None
    if not dims or any(d <= 0 for d in dims):
        raise click.BadParameter(f"'{text}': dimensions must be positive", param_hint=what)
    return dims


def _write_json_atomic(path: str, payload: dict[str, object]) -> None:
    from nfdeploy.onnx.atomic import write_bytes_atomic

    write_bytes_atomic(path, (json.dumps(payload, indent=2) + "\n").encode())


@click.command("energy")
@click.option(
    "--model",
    "model",
    required=True,
    type=click.Path(dir_okay=False),
    help="Vendor ONNX model (M).",
)
@click.option(
    "--generator",
    type=click.Path(dir_okay=False),
    default=None,
    help="Generator ONNX model (G), run at nominal voltage.",
)
@click.option(
    "--ber", type=float, default=None, help="Weight-SRAM bit error rate (table: 0 or 0.01)."
)
@click.option(
    "--voltage", type=float, default=None, help="Supply voltage as a ratio to Vmin (0.83..1.0)."
)
@click.option(
    "--r",
    "r",
    type=float,
    default=None,
    help="Read energy at the reduced voltage relative to nominal (overrides the table).",
)
@click.option(
    "--backend",
    type=click.Choice(["analytic", "scalesim"]),
    default="analytic",
    show_default=True,
    help="TWMA counter: closed form, or SCALE-Sim's compute model (pip install scalesim).",
)
@click.option(
    "--input-shape",
    default=None,
    help="Fix the input shape, e.g. 1x3x32x32 (default: the graph's own).",
)
@click.option("--array", default="32x32", show_default=True, help="Systolic array rows x cols.")
@click.option(
    "--row-bits",
    type=int,
    default=64,
    show_default=True,
    help="Bits per weight-SRAM access (64 = 8 int8 weights; 8 = SCALE-Sim's per-word count).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the full report (per-layer rows included) as JSON here.",
)
def energy_command(
    model: str,
    generator: str | None,
    ber: float | None,
    voltage: float | None,
    r: float | None,
    backend: str,
    input_shape: str | None,
    array: str,
    row_bits: int,
    json_path: str | None,
) -> None:
    """Energy saving of the vendor model in undervolted SRAM behind a generator.

    ES = 1 - r - TWMA_G / TWMA_M, TWMA counted on a 32x32 output-stationary systolic array
    with 256 KB weight SRAM (SCALE-Sim). Default operating point: 0.83 x Vmin, 1% BER, r = 0.694.
    """
    from nfdeploy.energy import energy_report

    shape = _dims(input_shape, "--input-shape")
    arr = _dims(array, "--array")
    if arr is None or len(arr) != 2:
        raise click.BadParameter(
            f"'{array}': expected rows x cols, e.g. 32x32", param_hint="--array"
        )
    with user_errors():
        report = energy_report(
            vendor=model,
            generator=generator,
            ber=ber,
            voltage=voltage,
            r=r,
            backend=backend,
            input_shape=shape,
            array=arr,
            row_bits=row_bits,
        )
        click.echo(report.to_text())
        if json_path is not None:
            _write_json_atomic(json_path, report.to_dict())
