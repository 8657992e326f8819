"""`nfdeploy inspect`: list the fault targets of an ONNX model, with sizes and storage."""

from __future__ import annotations

import click

from nfdeploy.cli._errors import user_errors
from nfdeploy.cli._options import STORAGE_HELP, storage_option, tensors_option


@click.command("inspect")
@click.argument("model_path", metavar="MODEL.onnx", type=click.Path(dir_okay=False))
@storage_option(STORAGE_HELP)
@click.option("--include-bias", is_flag=True, help="Also list Conv/Gemm biases.")
@tensors_option()
def inspect_command(model_path: str, storage: str, include_bias: bool, tensors: str | None) -> None:
    """List the weight tensors that faults go into."""
    from nfdeploy.validate.inspect import inspect_model

    with user_errors():
        click.echo(
            inspect_model(
                model_path=model_path, storage=storage, include_bias=include_bias, pattern=tensors
            )
        )
