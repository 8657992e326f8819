"""Every command has --help; the device path imports without torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from nfdeploy.cli import main


def test_group_help_lists_commands() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in main.commands:
        assert name in result.output


@pytest.mark.parametrize("name", sorted(main.commands))
def test_every_command_has_help(name: str) -> None:
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


BLOCK_TORCH = textwrap.dedent(
    """
    import importlib.abc, sys

    class BlockTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is blocked in this test")
            return None

    sys.meta_path.insert(0, BlockTorch())
    """
)


def test_device_path_imports_without_torch() -> None:
    code = BLOCK_TORCH + textwrap.dedent(
        """
        import nfdeploy.runtime, nfdeploy.validate.api, nfdeploy.validate.runner, nfdeploy.faults
        import nfdeploy.faults.onnx_weights, nfdeploy.data, nfdeploy.cli.validate_cmd
        from click.testing import CliRunner
        from nfdeploy.cli import main
        assert CliRunner().invoke(main, ["validate", "--help"]).exit_code == 0
        assert "torch" not in sys.modules
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
