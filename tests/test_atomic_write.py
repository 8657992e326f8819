"""Atomic writes leave files with the permissions a plain open() would give."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from nfdeploy.onnx.atomic import write_bytes_atomic


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_default_mode_follows_the_umask(tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        written = write_bytes_atomic(tmp_path / "generator.onnx", b"x")
        plain = tmp_path / "plain.bin"
        plain.write_bytes(b"x")
    finally:
        os.umask(previous)
    mode = stat.S_IMODE(written.stat().st_mode)
    assert mode == 0o666 & ~umask
    assert mode == stat.S_IMODE(plain.stat().st_mode)


def test_explicit_mode_wins(tmp_path: Path) -> None:
    written = write_bytes_atomic(tmp_path / "cache.bin", b"x", mode=0o640)
    assert stat.S_IMODE(written.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["cache.bin"]
