"""Run folders: --out never mixes two runs, --resume works from anywhere and notices a changed
vendor file, and a new run that fails leaves no folder behind. These train for real (tiny)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest
from click.testing import CliRunner

from nfdeploy.cli import main
from nfdeploy.onnx.load import file_sha256
from tests.onnx_builders import SIZE, colour_patches_npz, conv_bn_model

pytestmark = [
    pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export"),
    pytest.mark.usefixtures("one_torch_thread"),
]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    vendor = tmp_path / "vendor.onnx"
    onnx.save(conv_bn_model(seed=1), str(vendor))
    data = colour_patches_npz(tmp_path / "data.npz", 60)
    return {"vendor": vendor, "data": data}


def _args(vendor: str | Path, data: str | Path, out: str | Path, *extra: str) -> list[str]:
    return [
        "train", "-q", "--model", str(vendor), "--data", str(data), "--out", str(out),
        "--generator", "ConvS", "--batch-size", "10", "--n-perturbed", "1", "--holdout", "10",
        "--preprocess", "unit", "--train-ber", "0.05", "--threads", "1", *extra,
    ]  # fmt: skip


def _epochs(run: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def _invoke(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(main, args)
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_out_refuses_an_existing_run_unless_force(files: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = _args(files["vendor"], files["data"], run, "--epochs", "1")
    assert _invoke(args)[0] == 0
    (run / "generator.onnx").write_bytes(b"stale export of the first run")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    code, output = _invoke(args)
    assert code == 1 and "--resume" in output and "--force" in output
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    code, output = _invoke([*args, "--force"])
    assert code == 0, output
    assert _epochs(run) == [0, 1]  # one run's metrics, not two
    assert not (run / "generator.onnx").exists()  # no stale export beside the new checkpoint


def test_resume_from_another_directory(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert (
        _invoke(_args("vendor.onnx", "data.npz", "run", "--epochs", "2", "--stop-after", "1"))[0]
        == 0
    )
    config = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert Path(config["vendor"]).is_absolute() and Path(config["data"]).is_absolute()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, output = _invoke(["train", "-q", "--resume", "../run"])
    assert code == 0, output
    assert _epochs(tmp_path / "run") == [0, 1, 2]


def test_resume_with_moved_or_changed_vendor(files: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert (
        _invoke(_args(files["vendor"], files["data"], run, "--epochs", "3", "--stop-after", "1"))[0]
        == 0
    )
    moved = tmp_path / "moved" / "vendor.onnx"
    moved.parent.mkdir()
    shutil.move(files["vendor"], moved)
    code, output = _invoke(["train", "-q", "--resume", str(run), "--stop-after", "2"])
    assert code == 1 and "--model" in output and str(files["vendor"]) in output
    code, output = _invoke(
        ["train", "-q", "--resume", str(run), "--model", str(moved), "--stop-after", "2"]
    )
    assert code == 0, output
    assert json.loads((run / "config.json").read_text())["config"]["vendor"] == str(moved)
    original = file_sha256(moved)
    onnx.save(conv_bn_model(seed=5), str(moved))  # the vendor file changes under the run
    config_before = (run / "config.json").read_text()
    code, output = _invoke(["train", "-q", "--resume", str(run)])
    assert code == 1 and original in output and file_sha256(moved) in output
    assert (run / "config.json").read_text() == config_before  # the recorded sha256 is kept
    assert _epochs(run) == [0, 1, 2]
    code, output = _invoke(["train", "-q", "--resume", str(run), "--force"])
    assert code == 0, output
    assert _epochs(run) == [0, 1, 2, 3]
    assert json.loads((run / "config.json").read_text())["vendor_sha256"] == file_sha256(moved)


def test_failed_new_run_leaves_no_folder(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nfdeploy.train import loop

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated crash in the first epoch")

    monkeypatch.setattr(loop, "_run_epoch", crash)
    run = tmp_path / "run"
    result = CliRunner().invoke(main, _args(files["vendor"], files["data"], run, "--epochs", "1"))
    assert isinstance(result.exception, RuntimeError)
    assert not run.exists()


def test_resume_after_the_whole_tree_moved(files: dict[str, Path], tmp_path: Path) -> None:
    """Vendor, data and run moved together (another checkout or machine): paths stored
    relative to the run folder still resolve."""
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("vendor", "data"):
        shutil.move(files[name], tree / files[name].name)
    run = tree / "runs" / "a"
    args = _args(tree / "vendor.onnx", tree / "data.npz", run, "--epochs", "2", "--stop-after", "1")
    assert _invoke(args)[0] == 0
    moved = tmp_path / "elsewhere"
    shutil.move(tree, moved)
    code, output = _invoke(["train", "-q", "--resume", str(moved / "runs" / "a")])
    assert code == 0, output
    config = json.loads((moved / "runs" / "a" / "config.json").read_text())["config"]
    assert config["vendor"] == str(moved / "vendor.onnx")
    assert config["from_run"] == {"vendor": "../../vendor.onnx", "data": "../../data.npz"}


def test_export_refuses_a_vendor_of_another_input_size(
    files: dict[str, Path], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    assert _invoke(_args(files["vendor"], files["data"], run, "--epochs", "1"))[0] == 0
    other = conv_bn_model(seed=1)
    other.graph.input[0].type.tensor_type.shape.dim[2].dim_value = SIZE + 2
    onnx.save(other, str(tmp_path / "other.onnx"))
    out = tmp_path / "g.onnx"
    result = CliRunner().invoke(
        main,
        ["export", "--run", str(run), "--model", str(tmp_path / "other.onnx"), "--out", str(out)],
    )
    assert result.exit_code == 1 and "other.onnx" in result.stderr and "trained on" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()
    blocked = tmp_path / "a_file"
    blocked.write_text("a file\n")
    result = CliRunner().invoke(
        main, ["export", "--run", str(run), "--out", str(blocked / "g.onnx")]
    )
    assert result.exit_code == 1 and str(blocked / "g.onnx") in result.stderr
    assert not list(tmp_path.glob("**/.g.onnx*"))


def test_resume_refuses_another_world_size(files: dict[str, Path], tmp_path: Path) -> None:
    import torch

    run = tmp_path / "run"
    args = _args(files["vendor"], files["data"], run, "--epochs", "2", "--stop-after", "1")
    assert _invoke(args)[0] == 0
    assert json.loads((run / "config.json").read_text())["world_size"] == 1
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["world_size"] == 1
    torch.save({**state, "world_size": 4}, run / "last.pt")  # as if trained by torchrun x 4
    code, output = _invoke(["train", "-q", "--resume", str(run)])
    assert code == 1 and "trained with 4 process(es)" in output and "now 1" in output
    assert _epochs(run) == [0, 1]  # nothing trained, nothing lost


@pytest.mark.slow
def test_torchrun_two_ranks_write_once_and_resume_with_two(
    files: dict[str, Path], tmp_path: Path
) -> None:
    import subprocess
    import sys

    run = tmp_path / "run"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc-per-node", "2", "-m", "nfdeploy"]  # fmt: skip
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    args = _args(files["vendor"], files["data"], run, "--epochs", "2", "--stop-after", "1")
    first = subprocess.run([*torchrun, *args], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-2000:]
    assert json.loads((run / "config.json").read_text())["world_size"] == 2
    assert _epochs(run) == [0, 1]  # rank 0 alone wrote the metrics
    alone = subprocess.run(
        [sys.executable, "-m", "nfdeploy", "train", "-q", "--resume", str(run)],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert alone.returncode == 1 and "trained with 2 process(es)" in alone.stderr
    again = subprocess.run([*torchrun, "train", "-q", "--resume", str(run)], env=env,
                           capture_output=True, text=True)  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    assert _epochs(run) == [0, 1, 2]
