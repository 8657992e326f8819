"""Map library errors to one-line CLI errors at the command boundary."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import click

from nfdeploy.errors import NfdeployError


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn NfdeployError (and unreadable files) into click errors: one line, exit code 1."""
    try:
        yield
    except NfdeployError as exc:
        raise click.ClickException(one_line(str(exc))) from None
    except (FileNotFoundError, IsADirectoryError, PermissionError, NotADirectoryError) as exc:
        raise click.ClickException(f"{exc.filename}: {exc.strerror}") from None


def one_line(text: str) -> str:
    """Messages are one line: a multi-line text (e.g. from a library) joined with '; '."""
    return "; ".join(part.strip() for part in text.strip().splitlines() if part.strip())
