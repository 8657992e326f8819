"""`nfdeploy inspect`: list the fault targets of an ONNX model, with sizes and storage."""

from __future__ import annotations

import click

from nfdeploy.cli._errors import user_errors


@click.command("inspect")
@click.argument("model_path", metavar="MODEL.onnx", type=click.Path(dir_okay=False))
@click.option(
    "--storage", default="auto", show_default=True, help="Storage to emulate (see validate)."
)
@click.option("--include-bias", is_flag=True, help="Also list Conv/Gemm biases.")
@click.option("--tensors", default=None, help="Regex: only initializers whose name matches.")
def inspect_command(model_path: str, storage: str, include_bias: bool, tensors: str | None) -> None:
    """List the weight tensors that faults go into."""
    from nfdeploy.validate.inspect import inspect_model

    with user_errors():
        click.echo(
            inspect_model(
                model_path=model_path, storage=storage, include_bias=include_bias, pattern=tensors
            )
        )
