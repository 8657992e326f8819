"""The ``nfdeploy`` command group. Each command lives in its own module and only parses options."""

from __future__ import annotations

import click

from nfdeploy import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nfdeploy")
def main() -> None:
    """Keep a vendor ONNX classifier accurate under weight bit errors (NeuralFuse)."""


def _register() -> None:
    from nfdeploy.cli import (
        chipmap_cmd,
        demo_cmd,
        energy_cmd,
        export_cmd,
        inspect_cmd,
        train_cmd,
        validate_cmd,
    )

    commands = (
        train_cmd.train_command,
        export_cmd.export_command,
        validate_cmd.validate_command,
        inspect_cmd.inspect_command,
        energy_cmd.energy_command,
        chipmap_cmd.chipmap_command,
        demo_cmd.demo_command,
    )
    for command in commands:
        main.add_command(command)


_register()
