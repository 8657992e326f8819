"""`nfdeploy demo`: the whole pipeline on built-in data (no download), in a few minutes on a CPU."""

from __future__ import annotations

import click

from nfdeploy.cli._errors import user_errors


@click.command("demo")
@click.option("--out", type=click.Path(file_okay=False), default="demo-out", show_default=True)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Generator training epochs.",
)
@click.option(
    "--vendor-epochs",
    type=click.IntRange(min=1),
    default=6,
    show_default=True,
    help="Epochs for the stand-in vendor model.",
)
@click.option(
    "--train-images",
    type=click.IntRange(min=1000),
    default=4000,
    show_default=True,
    help="Training images for the generator (at least 1000: train holds 500 out for its "
    "per-epoch check).",
)
@click.option(
    "--ber",
    type=click.FloatRange(0.0, 0.5),
    default=0.04,
    show_default=True,
    help="Main validation BER (stuck-at); the generator trains at 1.5x this.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def demo_command(
    out: str, ber: float, epochs: int, vendor_epochs: int, train_images: int, quiet: bool
) -> None:
    """Make a vendor model, train a generator, export it and validate it under bit errors."""
    from nfdeploy.cli import main
    from nfdeploy.demo.pipeline import run_demo

    with user_errors():
        run_demo(
            out=out,
            ber=ber,
            epochs=epochs,
            vendor_epochs=vendor_epochs,
            train_images=train_images,
            quiet=quiet,
            run_command=lambda args: main.main(args=args, standalone_mode=False),
        )
