"""Fast EOPM training: batched vendor passes, bf16 fidelity, pattern prefetch, --precision."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

import tests.vendor_models as vm
from nfdeploy.cli import main
from nfdeploy.faults.onnx_model import load_faultable
from nfdeploy.faults.spec import FaultModel, FaultSpec
from nfdeploy.generators import FusedInput, build_generator
from nfdeploy.runs.config import TrainConfig
from nfdeploy.torchify import load_vendor
from nfdeploy.train.api import default_lr
from nfdeploy.train.eopm import chunk_weight_sets, eopm_loss_naive, eopm_step, loss_weights
from nfdeploy.train.perturbed import PerturbedWeights, StepWeights, prefetched
from nfdeploy.train.precision import Precision, resolve_precision
from tests.test_train import _train_args, data_path, vendor_path  # noqa: F401 (fixtures)

pytestmark = [
    pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export"),
    pytest.mark.usefixtures("one_torch_thread"),
]
N, LAM = 3, 5.0


def matmul_model(path: Path) -> Path:
    """Flatten -> MatMul -> Add (how some exporters write a Linear layer)."""
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.1, (3 * 16 * 16, vm.CLASSES)).astype(np.float32)
    b = rng.normal(0, 0.1, vm.CLASSES).astype(np.float32)
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "w"], ["m"], name="mm"),
        helper.make_node("Add", ["m", "b"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "matmul",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", vm.CLASSES])],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


VENDORS: dict[str, Callable[[Path], Path]] = {
    # Conv, Gemm, BN (fused), residual add
    "conv_gemm": lambda d: vm.export_legacy(vm.tiny_cnn(), d / "m.onnx", opset=13),
    # grouped/dilated Conv, ConvTranspose (plain and grouped), BN1d, pools, softmax
    "conv_transpose_zoo": lambda d: vm.export_legacy(vm.op_zoo(), d / "m.onnx", opset=17),
    "matmul": lambda d: matmul_model(d / "m.onnx"),
    "qdq": lambda d: vm.qdq_model(
        vm.export_legacy(vm.tiny_cnn(), d / "f.onnx", opset=13, preserve_bn=True), d / "m.onnx"
    ),
}


def _fused(seed: int = 0) -> FusedInput:
    torch.manual_seed(seed)
    return FusedInput(build_generator("ConvS", height=16, width=16), [-1.0], [1.0])


def _weight_sets(path: Path) -> list[dict[str, torch.Tensor]]:
    model = load_faultable(path)
    weights = PerturbedWeights(model, FaultSpec(FaultModel.STUCK_AT, 0.05, model.storage))
    return [weights.clean(), *(weights.for_seed(s) for s in range(10, 10 + N))]


def _gradients(module: FusedInput) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in module.parameters() if p.grad is not None])


def _step(
    path: Path, chunk: int, precision: Precision = Precision.FP32
) -> tuple[float, torch.Tensor]:
    vendor, sets = load_vendor(path), _weight_sets(path)
    torch.manual_seed(1)
    x, y = torch.rand(6, 3, 16, 16) * 2 - 1, torch.randint(0, vm.CLASSES, (6,))
    fused = _fused()
    chunks = chunk_weight_sets(sets, loss_weights(N, LAM), chunk)
    loss = eopm_step(fused, vendor, x, y, chunks, precision=precision)
    return loss, _gradients(fused)


@pytest.mark.parametrize("name", sorted(VENDORS))
def test_batched_passes_equal_the_per_model_loop(name: str, tmp_path: Path) -> None:
    path = VENDORS[name](tmp_path)
    loop_loss, loop_grad = _step(path, chunk=1)
    scale = float(loop_grad.abs().max())
    for chunk in (2, N + 1):  # a remainder chunk of one, and all models in one call
        loss, grad = _step(path, chunk=chunk)
        assert loss == pytest.approx(loop_loss, rel=1e-5)
        torch.testing.assert_close(grad, loop_grad, rtol=1e-4, atol=1e-5 * scale)


def test_per_model_loop_equals_the_naive_loss(tmp_path: Path) -> None:
    path = VENDORS["conv_gemm"](tmp_path)
    vendor, sets = load_vendor(path), _weight_sets(path)
    torch.manual_seed(1)
    x, y = torch.rand(6, 3, 16, 16) * 2 - 1, torch.randint(0, vm.CLASSES, (6,))
    loss, grad = _step(path, chunk=1)
    naive = _fused()
    with vendor.weight_overrides(sets[0]):
        reference = eopm_loss_naive(naive, vendor, x, y, sets[1:], lam=LAM)
    reference.backward()
    assert loss == pytest.approx(reference.item(), rel=1e-5)
    ref_grad = _gradients(naive)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-5 * float(ref_grad.abs().max()))


@pytest.mark.parametrize("name", ["conv_gemm", "matmul", "qdq"])
def test_bf16_gradient_points_where_fp32_does(name: str, tmp_path: Path) -> None:
    path = VENDORS[name](tmp_path)
    fp32_loss, fp32 = _step(path, chunk=1)
    bf16_loss, bf16 = _step(path, chunk=1, precision=Precision.BF16)
    cosine = float(torch.nn.functional.cosine_similarity(fp32, bf16, dim=0))
    assert cosine >= 0.99, cosine
    assert bf16_loss == pytest.approx(fp32_loss, rel=0.05)


def test_bf16_batched_equals_bf16_loop(tmp_path: Path) -> None:
    path = VENDORS["conv_gemm"](tmp_path)
    _, loop = _step(path, chunk=1, precision=Precision.BF16)
    _, batched = _step(path, chunk=N + 1, precision=Precision.BF16)
    assert float(torch.nn.functional.cosine_similarity(loop, batched, dim=0)) >= 0.999


def test_step_weights_give_the_seeds_patterns(tmp_path: Path) -> None:
    path = VENDORS["conv_gemm"](tmp_path)
    model = load_faultable(path)
    weights = PerturbedWeights(model, FaultSpec(FaultModel.FLIP, 0.02, model.storage))
    steps = StepWeights(weights, lam=LAM, n_perturbed=2, chunk=2, device=torch.device("cpu"))
    plan = steps.plan([7, 8])
    assert plan == [((None, 7), (1.0, 2.5), None), ((8,), (2.5,), None)]
    first, second = (steps.build(job) for job in plan)
    for name, tensor in weights.for_seed(7).items():
        torch.testing.assert_close(first.weights[name][1], tensor, rtol=0, atol=0)
        torch.testing.assert_close(first.weights[name][0], weights.clean()[name], rtol=0, atol=0)
        torch.testing.assert_close(second.weights[name], weights.for_seed(8)[name], rtol=0, atol=0)


def test_prefetched_builds_ahead_in_order() -> None:
    started: list[int] = []
    building = threading.Event()

    def build(item: int) -> int:
        started.append(item)
        if item == 1:
            building.set()
        return item * 10

    results = []
    for value in prefetched(build, range(4)):
        if value == 0:  # item 1 is being built while item 0 is consumed
            assert building.wait(5)
            time.sleep(0.01)
        results.append(value)
    assert results == [0, 10, 20, 30]
    assert started == [0, 1, 2, 3]
    assert list(prefetched(build, [])) == []


def test_auto_precision_follows_the_hardware() -> None:
    assert resolve_precision("auto", "cpu", flags={"avx2", "amx_bf16"}).precision is Precision.BF16
    assert resolve_precision("auto", "cpu", flags={"avx512_bf16"}).precision is Precision.BF16
    plain = resolve_precision("auto", "cpu", flags={"avx2", "avx512f"})
    assert plain.precision is Precision.FP32 and "lacks" in plain.reason
    assert resolve_precision("auto", "cuda").precision is Precision.BF16
    assert resolve_precision("auto", "cuda", cuda_bf16=False).precision is Precision.FP32
    assert resolve_precision("fp32", "cuda").precision is Precision.FP32


def test_old_run_configs_keep_their_precision() -> None:
    old = {"vendor": "v.onnx", "data": "synthetic", "amp": True}
    assert TrainConfig.from_dict(old).precision == "bf16"
    assert TrainConfig.from_dict({**old, "amp": False}).precision == "fp32"


def test_default_lr_scales_with_the_square_root_of_batch() -> None:
    assert default_lr(25) == pytest.approx(1e-3)
    assert default_lr(100) == pytest.approx(2e-3)


def test_train_records_precision_and_chunk(
    vendor_path: Path,  # noqa: F811
    data_path: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    runs = {}
    for name, extra in {
        "bf16_batched": ["--precision", "bf16", "--perturbed-chunk", "3"],
        "amp_alias": ["--amp"],
        "fp32": ["--precision", "fp32"],
    }.items():
        run = tmp_path / name
        args = [*_train_args(vendor_path, data_path, run), "--epochs", "1", *extra]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        runs[name] = json.loads((run / "config.json").read_text())
    batched = runs["bf16_batched"]
    assert batched["precision"] == {"requested": "bf16", "resolved": "bf16", "reason": "asked for"}
    assert batched["perturbed_chunk"] == 3 and batched["config"]["perturbed_chunk"] == 3
    assert runs["amp_alias"]["precision"]["resolved"] == "bf16"
    assert runs["fp32"]["perturbed_chunk"] == 1  # auto on the CPU
    assert runs["fp32"]["config"]["lr"] == pytest.approx(default_lr(10))


def test_train_prints_precision_and_reason(
    vendor_path: Path,  # noqa: F811
    data_path: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    args = [a for a in _train_args(vendor_path, data_path, tmp_path / "r") if a != "-q"]
    result = CliRunner().invoke(main, [*args, "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "precision " in result.output and "(auto: CPU " in result.output
    assert "vendor passes one by one (auto)" in result.output


def test_bad_chunk_is_one_line(
    vendor_path: Path,  # noqa: F811
    data_path: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    args = [*_train_args(vendor_path, data_path, run), "--perturbed-chunk", "-1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "--perturbed-chunk" in result.output
    assert not run.exists()


def test_patterns_prefetch_only_with_a_free_core(monkeypatch: pytest.MonkeyPatch) -> None:
    from nfdeploy.train import setup

    monkeypatch.setattr(setup, "available_cores", lambda: 2)
    monkeypatch.setattr(setup.torch, "get_num_threads", lambda: 2)
    assert not setup.free_core(torch.device("cpu"))
    assert setup.free_core(torch.device("cuda"))
    monkeypatch.setattr(setup.torch, "get_num_threads", lambda: 1)
    assert setup.free_core(torch.device("cpu"))


def test_prefetch_trains_the_same_generator(
    vendor_path: Path,  # noqa: F811
    data_path: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from nfdeploy.train import setup

    states = []
    for prefetch in (True, False):
        monkeypatch.setattr(setup, "free_core", lambda _device, on=prefetch: on)
        run = tmp_path / f"prefetch-{prefetch}"
        args = [*_train_args(vendor_path, data_path, run), "--epochs", "2"]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        assert json.loads((run / "config.json").read_text())["prefetch_patterns"] is prefetch
        states.append(torch.load(run / "last.pt", weights_only=True)["generator"])
    for name, tensor in states[0].items():
        torch.testing.assert_close(tensor, states[1][name], rtol=0, atol=0)


@pytest.mark.slow
def test_compiled_passes_give_the_eager_gradient(tmp_path: Path) -> None:
    """--compile changes speed, not the step: same loss and G gradient as eager."""
    path = VENDORS["conv_gemm"](tmp_path)
    vendor, sets = load_vendor(path), _weight_sets(path)
    compiled = torch.compile(vendor)
    torch.manual_seed(1)
    x, y = torch.rand(6, 3, 16, 16) * 2 - 1, torch.randint(0, vm.CLASSES, (6,))
    results = []
    for module in (vendor, compiled):
        fused = _fused()
        chunks = chunk_weight_sets(sets, loss_weights(N, LAM), 1)
        results.append((eopm_step(fused, module, x, y, chunks), _gradients(fused)))  # type: ignore[arg-type]
    (eager_loss, eager), (compiled_loss, grad) = results
    assert compiled_loss == pytest.approx(eager_loss, rel=1e-5)
    torch.testing.assert_close(grad, eager, rtol=1e-4, atol=1e-5 * float(eager.abs().max()))


def test_compile_is_recorded(
    vendor_path: Path,  # noqa: F811
    data_path: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from nfdeploy.train import setup

    compiled: list[object] = []
    monkeypatch.setattr(setup.torch, "compile", lambda m: compiled.append(m) or m)
    run = tmp_path / "run"
    args = [*_train_args(vendor_path, data_path, run), "--epochs", "1", "--compile"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert len(compiled) == 1
    assert json.loads((run / "config.json").read_text())["config"]["compile"] is True


def test_compile_refuses_batched_passes(
    vendor_path: Path,  # noqa: F811
    data_path: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    args = [*_train_args(vendor_path, data_path, run), "--compile", "--perturbed-chunk", "3"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0 and "--compile works with the per-model loop" in result.output
    assert "Traceback" not in result.output
