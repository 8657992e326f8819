"""EOPM training: loss vs a naive reference, frozen vendor, train/validate fault parity, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from onnx import numpy_helper

from nfdeploy.cli import main
from nfdeploy.faults.onnx_model import load_faultable
from nfdeploy.faults.spec import FaultModel, FaultSpec, Storage
from nfdeploy.generators import FusedInput, build_generator
from nfdeploy.onnx.load import file_sha256
from nfdeploy.torchify import load_vendor
from nfdeploy.train.perturbed import PerturbedWeights
from tests.onnx_builders import IN_CHANNELS, SIZE, colour_patches_npz, conv_bn_model

pytestmark = [
    pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export"),
    pytest.mark.usefixtures("one_torch_thread"),
]


@pytest.fixture
def vendor_path(tmp_path: Path) -> Path:
    path = tmp_path / "vendor.onnx"
    onnx.save(conv_bn_model(seed=1), str(path))
    return path


@pytest.fixture
def data_path(tmp_path: Path) -> Path:
    path = colour_patches_npz(tmp_path / "data.npz", 120)
    return path


def _fused(seed: int = 0) -> FusedInput:
    torch.manual_seed(seed)
    return FusedInput(
        build_generator("ConvS", channels=IN_CHANNELS, height=SIZE, width=SIZE), [0.0], [1.0]
    )


@pytest.mark.parametrize("fault_model", [FaultModel.FLIP, FaultModel.STUCK_AT])
def test_training_weights_equal_validate_initializers(
    vendor_path: Path, fault_model: FaultModel
) -> None:
    """For a seed, the perturbed weights training uses are the ones validate writes to ONNX."""
    model = load_faultable(vendor_path)
    spec = FaultSpec(fault_model, 0.02, model.storage)
    trained = PerturbedWeights(load_faultable(vendor_path), spec).for_seed(1234)
    faulty_bytes, _ = model.faulty_bytes(spec, seed=1234)
    inits = {
        i.name: numpy_helper.to_array(i)
        for i in onnx.load_from_string(faulty_bytes).graph.initializer
    }
    assert set(trained) == {t.name for t in model.targets}
    for name, tensor in trained.items():
        np.testing.assert_array_equal(tensor.numpy(), inits[name])


def test_vendor_is_frozen_by_training(vendor_path: Path, data_path: Path, tmp_path: Path) -> None:
    before = file_sha256(vendor_path)
    run = tmp_path / "run"
    result = CliRunner().invoke(main, [*_train_args(vendor_path, data_path, run), "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert file_sha256(vendor_path) == before
    config = json.loads((run / "config.json").read_text())
    assert config["vendor_sha256"] == before
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1]
    assert {"loss", "ca_nf", "pa_nf"} <= set(rows[1])


def _train_args(vendor: Path, data: Path, out: Path) -> list[str]:
    return [
        "train", "-q", "--model", str(vendor), "--data", str(data), "--out", str(out),
        "--generator", "ConvS", "--batch-size", "10", "--n-perturbed", "2", "--holdout", "20",
        "--preprocess", "unit", "--train-ber", "0.05", "--threads", "1",
    ]  # fmt: skip


def _generator_state(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "last.pt", weights_only=True)["generator"]  # type: ignore[no-any-return]


def test_resume_continues_exactly(vendor_path: Path, data_path: Path, tmp_path: Path) -> None:
    straight, split = tmp_path / "straight", tmp_path / "split"
    runner = CliRunner()
    assert (
        runner.invoke(
            main, [*_train_args(vendor_path, data_path, straight), "--epochs", "2"]
        ).exit_code
        == 0
    )
    first = [*_train_args(vendor_path, data_path, split), "--epochs", "2", "--stop-after", "1"]
    assert runner.invoke(main, first).exit_code == 0
    assert 'epoch": 2' not in (split / "metrics.jsonl").read_text()
    result = runner.invoke(main, ["train", "-q", "--resume", str(split)])
    assert result.exit_code == 0, result.output
    for key, value in _generator_state(straight).items():
        torch.testing.assert_close(_generator_state(split)[key], value, rtol=0, atol=0)
    assert (straight / "metrics.jsonl").read_text().count("\n") == (
        split / "metrics.jsonl"
    ).read_text().count("\n")


@pytest.mark.slow
def test_resume_after_kill_9(vendor_path: Path, data_path: Path, tmp_path: Path) -> None:
    run, reference = tmp_path / "killed", tmp_path / "reference"
    args = [
        sys.executable,
        "-m",
        "nfdeploy",
        *_train_args(vendor_path, data_path, run),
        "--epochs",
        "3",
    ]
    process = subprocess.Popen(args, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (run / "last.pt").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert (run / "last.pt").exists()
    runner = CliRunner()
    assert (
        runner.invoke(main, ["train", "-q", "--resume", str(run), "--epochs", "3"]).exit_code == 0
    )
    assert (
        runner.invoke(
            main, [*_train_args(vendor_path, data_path, reference), "--epochs", "3"]
        ).exit_code
        == 0
    )
    for key, value in _generator_state(reference).items():
        torch.testing.assert_close(_generator_state(run)[key], value, rtol=0, atol=0)


@pytest.mark.slow
def test_two_process_gloo_run(vendor_path: Path, data_path: Path, tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
        "-m", "nfdeploy", *_train_args(vendor_path, data_path, run), "--epochs", "1",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1]  # rank 0 alone wrote


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--epochs", "0"], "--epochs 0"),
        (["--train-ber", "1.5"], "--train-ber"),
        (["--generator", "NoSuchNet"], "NoSuchNet"),
        (["--holdout", "100000"], "--holdout"),
        (["--device", "bogus"], "--device bogus: not a torch device"),
        (["--device", "meta"], "only 'cpu' and 'cuda"),
        pytest.param(
            ["--device", "cuda"],
            "torch sees no CUDA device",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present"),
        ),
    ],
)
def test_bad_train_options(
    vendor_path: Path, data_path: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    result = CliRunner().invoke(
        main, [*_train_args(vendor_path, data_path, tmp_path / "r"), *extra]
    )
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output


def test_device_is_stored_and_can_change_on_resume(
    vendor_path: Path, data_path: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    args = [*_train_args(vendor_path, data_path, run), "--epochs", "2", "--stop-after", "1"]
    assert CliRunner().invoke(main, [*args, "--device", "cpu"]).exit_code == 0
    assert json.loads((run / "config.json").read_text())["config"]["device"] == "cpu"
    moved = CliRunner().invoke(main, ["train", "-q", "--resume", str(run), "--device", "meta"])
    assert moved.exit_code != 0 and "--device meta" in moved.output


def test_new_run_needs_model_data_out(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["train", "--data", "synthetic", "--out", str(tmp_path / "r")]
    )
    assert result.exit_code != 0 and "--model is required" in result.output


def test_qdq_training_weights_equal_validate(tmp_path: Path) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.items = iter(
                [
                    {"x": rng.random((1, IN_CHANNELS, SIZE, SIZE), dtype=np.float32)}
                    for _ in range(4)
                ]
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    float_path, qdq_path = tmp_path / "f.onnx", tmp_path / "q.onnx"
    onnx.save(conv_bn_model(), str(float_path))
    quantize_static(
        str(float_path), str(qdq_path), Reader(), quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
    )  # fmt: skip
    model = load_faultable(qdq_path)
    spec = FaultSpec(FaultModel.FLIP, 0.05, Storage.QDQ)
    trained = PerturbedWeights(model, spec).for_seed(77)
    inits = {
        i.name: numpy_helper.to_array(i)
        for i in onnx.load_from_string(model.faulty_bytes(spec, seed=77)[0]).graph.initializer
    }
    vendor = load_vendor(qdq_path)
    for target, stored in zip(model.targets, model.stored, strict=True):
        np.testing.assert_array_equal(
            trained[target.name].numpy(), stored.dequantize(inits[target.name])
        )
        assert target.name in vendor.fault_targets()


def test_kernel_injects_into_cpu_tensors_in_place() -> None:
    from nfdeploy.errors import NfdeployError
    from nfdeploy.faults.kernel import flip_bits

    tensor = torch.zeros(1000, dtype=torch.int8)
    array = np.zeros(1000, dtype=np.int8)
    assert flip_bits(tensor, 0.1, seed=5, stream=9) == flip_bits(array, 0.1, seed=5, stream=9) > 0
    np.testing.assert_array_equal(tensor.numpy(), array)
    with pytest.raises(NfdeployError, match="detached CPU tensor"):
        flip_bits(torch.zeros(10, requires_grad=True), 0.1, seed=5, stream=9)


def test_surrogate_gives_the_gradients(vendor_path: Path, data_path: Path, tmp_path: Path) -> None:
    surrogate = tmp_path / "surrogate.onnx"
    onnx.save(conv_bn_model(seed=2), str(surrogate))
    run = tmp_path / "run"
    args = [
        *_train_args(vendor_path, data_path, run),
        "--epochs",
        "1",
        "--surrogate",
        str(surrogate),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())
    assert config["gradient_model"] == "surrogate.onnx"
    assert config["gradient_model_sha256"] == file_sha256(surrogate)
    assert config["vendor_sha256"] == file_sha256(vendor_path)


def test_resume_before_the_first_checkpoint_starts_over(
    vendor_path: Path, data_path: Path, tmp_path: Path
) -> None:
    """A run killed during epoch 1 has config.json but no last.pt: --resume runs it from scratch."""
    run, reference = tmp_path / "early", tmp_path / "reference"
    runner = CliRunner()
    for folder in (run, reference):
        args = [*_train_args(vendor_path, data_path, folder), "--epochs", "1"]
        assert runner.invoke(main, args).exit_code == 0
    for name in ("last.pt", "best.pt", "metrics.jsonl"):
        (run / name).unlink()
    result = runner.invoke(main, ["train", "--resume", str(run)])
    assert result.exit_code == 0, result.output
    assert "starting it again from epoch 1" in result.output
    for key, value in _generator_state(reference).items():
        torch.testing.assert_close(_generator_state(run)[key], value, rtol=0, atol=0)
    assert (run / "metrics.jsonl").read_text().count("\n") == 2  # epoch 0 and epoch 1
