"""The ``nfdeploy`` command group. Each command lives in its own module and only parses options."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from nfdeploy import __version__
from nfdeploy.cli._errors import one_line


class OneLineErrors(click.Group):
    """Usage errors as one line, ``Error: ... (see 'nfdeploy CMD --help')``, not usage + hint.

    Exit codes stay click's: 2 for a bad option value, 1 for a refused input (ClickException).
    """

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            exc.show()  # the help text itself
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            click.echo(f"Error: {one_line(exc.format_message())}{where}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"Error: {one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(
    cls=OneLineErrors,
    context_settings={"help_option_names": ["-h", "--help"]},
)
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
        sensitivity_cmd,
        train_cmd,
        validate_cmd,
    )

    commands = (
        train_cmd.train_command,
        export_cmd.export_command,
        validate_cmd.validate_command,
        sensitivity_cmd.sensitivity_command,
        inspect_cmd.inspect_command,
        energy_cmd.energy_command,
        chipmap_cmd.chipmap_command,
        demo_cmd.demo_command,
    )
    for command in commands:
        main.add_command(command)


_register()
