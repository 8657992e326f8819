"""`train --init-from`: a new run starts from another run's generator weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from nfdeploy.cli import main
from tests.test_train import _train_args, data_path, vendor_path  # noqa: F401 (fixtures)

pytestmark = [
    pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export"),
    pytest.mark.usefixtures("one_torch_thread"),
]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["generator"]  # type: ignore[no-any-return]


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Over the learned weights (BatchNorm statistics move with the data, whatever the lr)."""
    learned = [k for k in a if "running_" not in k and "num_batches" not in k]
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in learned)


@pytest.fixture
def source_run(vendor_path: Path, data_path: Path, tmp_path: Path) -> Path:  # noqa: F811
    run = tmp_path / "source"
    result = CliRunner().invoke(main, [*_train_args(vendor_path, data_path, run), "--epochs", "1"])
    assert result.exit_code == 0, result.output
    return run


def test_warm_start_begins_at_the_source_weights(
    vendor_path: Path,  # noqa: F811
    data_path: Path,  # noqa: F811
    source_run: Path,
    tmp_path: Path,
) -> None:
    frozen = ["--epochs", "1", "--lr", "1e-12"]  # barely moves: the end state is the start
    warm, cold = tmp_path / "warm", tmp_path / "cold"
    runner = CliRunner()
    args = [*_train_args(vendor_path, data_path, warm), *frozen, "--init-from", str(source_run)]
    assert runner.invoke(main, args).exit_code == 0
    assert runner.invoke(main, [*_train_args(vendor_path, data_path, cold), *frozen]).exit_code == 0
    source = _weights(source_run / "best.pt")
    assert _max_difference(_weights(warm / "last.pt"), source) < 1e-6
    assert _max_difference(_weights(cold / "last.pt"), source) > 1e-4
    stored = json.loads((warm / "config.json").read_text())["config"]
    assert stored["init_from"] == str(source_run.absolute())


def _refused(args: list[str], run: Path) -> str:
    """Runs ``train``; asserts a one-line error, no traceback and no run folder; its text."""
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not run.exists()
    return result.output


def test_warm_start_from_another_generator_is_refused(
    vendor_path: Path,  # noqa: F811
    data_path: Path,  # noqa: F811
    source_run: Path,
    tmp_path: Path,
) -> None:
    run = tmp_path / "other"
    args = [*_train_args(vendor_path, data_path, run), "--init-from", str(source_run)]
    args[args.index("ConvS")] = "DeConvS"
    output = _refused(args, run)
    assert "--init-from" in output and "ConvS" in output


def test_warm_start_without_a_checkpoint_is_refused(
    vendor_path: Path,  # noqa: F811
    data_path: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    run = tmp_path / "run"
    args = [*_train_args(vendor_path, data_path, run), "--init-from", str(empty)]
    assert "best.pt" in _refused(args, run)


def test_warm_start_from_a_file_without_generator_weights_is_refused(
    vendor_path: Path,  # noqa: F811
    data_path: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    run = tmp_path / "run"
    args = [*_train_args(vendor_path, data_path, run), "--init-from", str(other)]
    assert "no generator weights" in _refused(args, run)


@pytest.mark.parametrize(("changed", "warned"), [([], False), (["--seed", "1"], True)])
def test_warm_start_warns_when_the_held_out_slice_moves(
    vendor_path: Path,  # noqa: F811
    data_path: Path,  # noqa: F811
    source_run: Path,
    tmp_path: Path,
    changed: list[str],
    warned: bool,
) -> None:
    """Another --seed draws another held-out slice, which may hold images the source saw."""
    run = tmp_path / "warm"
    args = [*_train_args(vendor_path, data_path, run), "--epochs", "1", *changed]
    result = CliRunner().invoke(main, [*args, "--init-from", str(source_run)])
    assert result.exit_code == 0, result.output
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert bool(warning) == warned
    if warned:
        assert len(warning) == 1 and "seed 0 there, 1 here" in warning[0]
