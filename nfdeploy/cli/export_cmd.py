"""`nfdeploy export`: the trained generator as an ONNX file that drops in front of the vendor model."""

from __future__ import annotations

import click

from nfdeploy.cli._errors import user_errors


@click.command("export")
@click.option(
    "--run",
    required=True,
    type=click.Path(exists=True),
    help="Run folder (uses best.pt) or a .pt checkpoint.",
)
@click.option(
    "--out", type=click.Path(dir_okay=False), default=None, help="[default: RUN/generator.onnx]"
)
@click.option(
    "--model",
    type=click.Path(dir_okay=False),
    default=None,
    help="Vendor ONNX (default: the one trained against).",
)
@click.option(
    "--merge", is_flag=True, help="Also write pipeline.onnx (generator -> vendor in one graph)."
)
@click.option(
    "--quantize",
    type=click.Choice(["int8"]),
    default=None,
    help="Also write an int8 QDQ generator, accuracy-checked.",
)
def export_command(**options: object) -> None:
    """Write generator.onnx: consumes and produces exactly the vendor model's input tensor."""
    from nfdeploy.export.api import export

    with user_errors():
        export(**options)  # type: ignore[arg-type]
