"""nfdeploy.torchify: ONNX vendor models become frozen, differentiable, parity-checked modules."""

from __future__ import annotations

import copy
import hashlib
import inspect
import itertools
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from nfdeploy.errors import NfdeployError
from nfdeploy.onnx.load import file_sha256
from nfdeploy.torchify import (
    VendorModule,
    check_parity,
    load_vendor,
    registry,
    supported_ops,
)
from tests import vendor_models as vm

WEIGHT_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}

# name -> builder(folder) -> path of the ONNX file
BUILDERS: dict[str, Callable[[Path], Path]] = {
    "legacy9_fused": lambda d: vm.export_legacy(vm.tiny_cnn(), d / "m.onnx", opset=9),
    "legacy13_bn_preserved": lambda d: vm.export_legacy(
        vm.tiny_cnn(), d / "m.onnx", opset=13, preserve_bn=True
    ),
    "legacy17_unfolded": lambda d: vm.export_legacy(
        vm.tiny_cnn(), d / "m.onnx", opset=17, fold=False
    ),
    "legacy17_fixed_batch": lambda d: vm.export_legacy(
        vm.tiny_cnn(), d / "m.onnx", opset=17, dynamic_batch=False
    ),
    "legacy11_inits_as_inputs": lambda d: vm.export_legacy(
        vm.tiny_cnn(), d / "m.onnx", opset=11, keep_initializers_as_inputs=True
    ),
    "zoo11": lambda d: vm.export_legacy(vm.op_zoo(), d / "m.onnx", opset=11),
    "zoo17_fixed_batch": lambda d: vm.export_legacy(
        vm.op_zoo(), d / "m.onnx", opset=17, dynamic_batch=False
    ),
    "helper_ir4_opset9": lambda d: vm.helper_model(d / "m.onnx"),
    "dynamo": lambda d: vm.export_dynamo(vm.tiny_cnn(), d / "m.onnx"),
    "qdq_int8": lambda d: vm.qdq_model(
        vm.export_legacy(vm.tiny_cnn(), d / "f.onnx", opset=13, preserve_bn=True), d / "m.onnx"
    ),
    "qdq_int8_zoo": lambda d: vm.qdq_model(
        vm.export_legacy(vm.op_zoo(), d / "f.onnx", opset=17), d / "m.onnx"
    ),
}
QDQ_CASES = {"qdq_int8", "qdq_int8_zoo"}


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tiny convolutions are dominated by thread hand-off on a busy 2-core box."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _cached_dynamo_export(request: pytest.FixtureRequest, folder: Path) -> Path:
    """The dynamo exporter spends ~10 s importing and registering; keep its output in the
    pytest cache, keyed by the torch / onnxscript versions and this builder's source."""
    import onnxscript

    source = inspect.getsource(vm.export_dynamo) + inspect.getsource(vm.TinyCNN)
    key = hashlib.sha256(
        f"{torch.__version__}|{onnxscript.__version__}|{source}".encode()
    ).hexdigest()[:16]
    target = folder / "m.onnx"
    cache = getattr(request.config, "cache", None)
    if cache is None:
        return BUILDERS["dynamo"](folder)
    cached = Path(cache.mkdir("nfdeploy-vendor")) / f"dynamo-{key}.onnx"
    if not cached.is_file():
        BUILDERS["dynamo"](folder)
        shutil.copyfile(target, cached.with_suffix(".part"))
        cached.with_suffix(".part").replace(cached)
    shutil.copyfile(cached, target)
    return target


@pytest.fixture(scope="module")
def model_paths(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    paths = {}
    for name, builder in BUILDERS.items():
        folder = tmp_path_factory.mktemp(name)
        paths[name] = (
            _cached_dynamo_export(request, folder) if name == "dynamo" else builder(folder)
        )
    return paths


@pytest.fixture(scope="module")
def vendors(model_paths: dict[str, Path]) -> dict[str, VendorModule]:
    return {name: load_vendor(path) for name, path in model_paths.items()}


def _f(*shape: int) -> np.ndarray:
    return np.random.default_rng(sum(shape)).standard_normal(shape).astype(np.float32)


def i64(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


f = _f
N = "N"  # a symbolic batch dimension
# (id, op, input shape, single_op_model keywords): edge cases of each operator's attributes
SINGLE_OP_CASES: list[tuple[str, str, list[int | str], dict[str, Any]]] = [
    (
        "conv_same_upper",
        "Conv",
        [N, 3, 9, 9],
        dict(
            attrs=dict(auto_pad="SAME_UPPER", strides=[2, 2]),
            inits={"w": f(4, 3, 3, 3)},
            extra_inputs=("w",),
        ),
    ),
    (
        "conv_same_lower",
        "Conv",
        [N, 3, 8, 8],
        dict(
            attrs=dict(auto_pad="SAME_LOWER", strides=[2, 2], kernel_shape=[4, 4]),
            inits={"w": f(4, 3, 4, 4)},
            extra_inputs=("w",),
        ),
    ),
    (
        "conv_asym",
        "Conv",
        [N, 3, 8, 8],
        dict(
            attrs=dict(pads=[0, 1, 2, 0], dilations=[2, 1]),
            inits={"w": f(4, 3, 3, 3), "b": f(4)},
            extra_inputs=("w", "b"),
        ),
    ),
    (
        "conv_valid1d",
        "Conv",
        [N, 3, 10],
        dict(
            attrs=dict(auto_pad="VALID", strides=[3]), inits={"w": f(4, 3, 3)}, extra_inputs=("w",)
        ),
    ),
    (
        "convT_outshape",
        "ConvTranspose",
        [N, 4, 5, 5],
        dict(
            attrs=dict(strides=[2, 2], output_shape=[10, 10]),
            inits={"w": f(4, 2, 3, 3)},
            extra_inputs=("w",),
        ),
    ),
    (
        "convT_same_upper",
        "ConvTranspose",
        [N, 4, 5, 5],
        dict(
            attrs=dict(strides=[2, 2], auto_pad="SAME_UPPER"),
            inits={"w": f(4, 2, 4, 4)},
            extra_inputs=("w",),
        ),
    ),
    (
        "convT_asym",
        "ConvTranspose",
        [N, 4, 5, 5],
        dict(
            attrs=dict(strides=[2, 2], pads=[0, 1, 1, 0], output_padding=[1, 1]),
            inits={"w": f(4, 2, 3, 3), "b": f(2)},
            extra_inputs=("w", "b"),
        ),
    ),
    (
        "convT_group_dil",
        "ConvTranspose",
        [N, 4, 5, 5],
        dict(
            attrs=dict(group=2, dilations=[2, 2], pads=[1, 1, 1, 1]),
            inits={"w": f(4, 3, 3, 3)},
            extra_inputs=("w",),
        ),
    ),
    (
        "maxpool_asym_ceil",
        "MaxPool",
        [N, 3, 9, 9],
        dict(attrs=dict(kernel_shape=[3, 3], strides=[2, 2], pads=[0, 1, 1, 0], ceil_mode=1)),
    ),
    (
        "maxpool_same",
        "MaxPool",
        [N, 3, 9, 9],
        dict(attrs=dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")),
    ),
    (
        "maxpool_dil",
        "MaxPool",
        [N, 3, 9, 9],
        dict(attrs=dict(kernel_shape=[2, 2], dilations=[2, 2], pads=[1, 1, 1, 1])),
    ),
    (
        "avgpool_inc_asym",
        "AveragePool",
        [N, 3, 9, 9],
        dict(
            attrs=dict(kernel_shape=[3, 3], strides=[2, 2], pads=[0, 1, 1, 0], count_include_pad=1)
        ),
    ),
    (
        "avgpool_exc_asym_ceil",
        "AveragePool",
        [N, 3, 9, 9],
        dict(attrs=dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 0, 1], ceil_mode=1)),
    ),
    (
        "avgpool_ceil_inc",
        "AveragePool",
        [N, 3, 8, 8],
        dict(
            attrs=dict(
                kernel_shape=[3, 3],
                strides=[2, 2],
                pads=[1, 1, 1, 1],
                ceil_mode=1,
                count_include_pad=1,
            )
        ),
    ),
    (
        "avgpool_same_lower",
        "AveragePool",
        [N, 3, 9, 9],
        dict(attrs=dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_LOWER")),
    ),
    ("softmax11_4d", "Softmax", [N, 3, 4, 5], dict(opset=11, then=())),
    ("logsoftmax13_axis1", "LogSoftmax", [N, 3, 4, 5], dict(opset=13, attrs=dict(axis=1), then=())),
    ("clip6", "Clip", [N, 3, 4], dict(opset=6, attrs=dict(min=-0.5, max=0.7))),
    (
        "clip13",
        "Clip",
        [N, 3, 4],
        dict(opset=13, inits={"lo": np.array(-0.2, np.float32)}, extra_inputs=("lo",)),
    ),
    (
        "gemm_transA",
        "Gemm",
        [5, 2],
        dict(
            opset=13,
            attrs=dict(transA=1, alpha=0.3, beta=0.7),
            inits={"b": f(5, 4), "c": f(1, 4)},
            extra_inputs=("b", "c"),
            then=(),
        ),
    ),
    (
        "slice_neg_step",
        "Slice",
        [N, 6, 7],
        dict(
            opset=13,
            inits={"s": i64(-1, 5), "e": i64(-100, 0), "a": i64(2, 1), "st": i64(-2, -1)},
            extra_inputs=("s", "e", "a", "st"),
        ),
    ),
    (
        "slice9",
        "Slice",
        [N, 6, 7],
        dict(opset=9, attrs=dict(starts=[1, 2], ends=[100, -1], axes=[1, 2])),
    ),
    (
        "pad_reflect",
        "Pad",
        [N, 3, 5, 5],
        dict(
            opset=13,
            attrs=dict(mode="reflect"),
            inits={"p": i64(0, 0, 1, 2, 0, 0, 2, 1)},
            extra_inputs=("p",),
        ),
    ),
    (
        "pad_edge",
        "Pad",
        [N, 3, 5, 5],
        dict(
            opset=13,
            attrs=dict(mode="edge"),
            inits={"p": i64(0, 0, 1, 2, 0, 0, 2, 1)},
            extra_inputs=("p",),
        ),
    ),
    (
        "pad_const_axes",
        "Pad",
        [N, 3, 5, 5],
        dict(
            opset=18,
            inits={"p": i64(1, 2, 3, -1), "v": np.array(0.5, np.float32), "ax": i64(2, 3)},
            extra_inputs=("p", "v", "ax"),
        ),
    ),
    (
        "pad2",
        "Pad",
        [N, 3, 5, 5],
        dict(opset=2, attrs=dict(pads=[0, 0, 1, 1, 0, 0, 1, 1], value=1.5)),
    ),
    (
        "reducesum_axes",
        "ReduceSum",
        [N, 3, 5, 5],
        dict(opset=13, attrs=dict(keepdims=0), inits={"a": i64(1, -1)}, extra_inputs=("a",)),
    ),
    (
        "reducemean18",
        "ReduceMean",
        [N, 3, 5, 5],
        dict(opset=18, inits={"a": i64(2, 3)}, extra_inputs=("a",)),
    ),
    ("reducemax11", "ReduceMax", [N, 3, 5, 5], dict(opset=11, attrs=dict(axes=[1]))),
    ("flatten2", "Flatten", [N, 3, 5, 5], dict(attrs=dict(axis=2), then=())),
    ("transpose", "Transpose", [N, 3, 5, 4], dict(attrs=dict(perm=[0, 3, 1, 2]))),
    ("squeeze11", "Squeeze", [N, 3, 1, 4], dict(opset=11, attrs=dict(axes=[2]))),
    (
        "unsqueeze13",
        "Unsqueeze",
        [N, 3, 4],
        dict(opset=13, inits={"a": i64(-1, 1)}, extra_inputs=("a",)),
    ),
    (
        "gather_vec",
        "Gather",
        [N, 6, 4],
        dict(attrs=dict(axis=1), inits={"i": i64(0, -1, 2)}, extra_inputs=("i",)),
    ),
    ("lrn", "LRN", [N, 6, 4, 4], dict(attrs=dict(size=3, alpha=0.01, beta=0.8, bias=2.0))),
    ("prelu", "PRelu", [N, 3, 4, 4], dict(inits={"s": f(3, 1, 1)}, extra_inputs=("s",))),
    ("elu", "Elu", [N, 3, 4], dict(attrs=dict(alpha=0.7))),
    ("selu", "Selu", [N, 3, 4], dict()),
    ("hardsigmoid", "HardSigmoid", [N, 3, 4], dict(attrs=dict(alpha=0.3, beta=0.4))),
    ("hardswish", "HardSwish", [N, 3, 4], dict(opset=14)),
    ("gelu", "Gelu", [N, 3, 4], dict(opset=20, attrs=dict(approximate="tanh"))),
    (
        "instnorm",
        "InstanceNormalization",
        [N, 3, 4, 4],
        dict(inits={"s": f(3), "b": f(3)}, extra_inputs=("s", "b")),
    ),
    (
        "layernorm",
        "LayerNormalization",
        [N, 3, 4, 4],
        dict(attrs=dict(axis=2), inits={"s": f(4, 4), "b": f(4, 4)}, extra_inputs=("s", "b")),
    ),
    ("globalmax", "GlobalMaxPool", [N, 3, 4, 4], dict()),
    ("expand", "Expand", [N, 1, 4], dict(inits={"s": i64(3, 1)}, extra_inputs=("s",))),
    ("tile", "Tile", [N, 2, 3], dict(inits={"r": i64(1, 2, 2)}, extra_inputs=("r",))),
    ("dropout", "Dropout", [N, 3, 4], dict(opset=13)),
    ("mul_bcast", "Mul", [N, 3, 4, 4], dict(inits={"k": f(3, 1, 1)}, extra_inputs=("k",))),
    (
        "div_sub",
        "Div",
        [N, 3, 4, 4],
        dict(inits={"k": np.full((4,), 2.5, np.float32)}, extra_inputs=("k",), then=("Flatten",)),
    ),
    ("pow", "Pow", [N, 3, 4], dict(inits={"k": np.array(2.0, np.float32)}, extra_inputs=("k",))),
    ("sum_var", "Sum", [N, 3, 4], dict(inits={"a": f(3, 4), "b": f(4)}, extra_inputs=("a", "b"))),
    ("max_var", "Max", [N, 3, 4], dict(inits={"a": f(3, 4)}, extra_inputs=("a",))),
]


@pytest.mark.parametrize(
    ("case", "op", "shape", "kwargs"), SINGLE_OP_CASES, ids=[c[0] for c in SINGLE_OP_CASES]
)
def test_single_operator_parity(
    tmp_path: Path, case: str, op: str, shape: list[int | str], kwargs: dict[str, Any]
) -> None:
    path = vm.single_op_model(tmp_path / f"{case}.onnx", op, shape, **kwargs)
    vendor = load_vendor(path)
    assert vendor.parity is not None and vendor.parity.max_abs_diff < 1e-4


def _input(vendor: VendorModule, batch: int, seed: int = 1) -> torch.Tensor:
    shape = [batch] + [int(d) for d in vendor.input_shape[1:] if d is not None]
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def _main_weight(vendor: VendorModule) -> str:
    consumers = vendor.weight_consumers()
    keys = [k for k, uses in consumers.items() if any(op in WEIGHT_OPS for op, _, _ in uses)]
    targets = vendor.fault_targets()
    return max(keys, key=lambda k: targets[k].numel())


@pytest.mark.parametrize("name", list(BUILDERS))
def test_parity_with_onnxruntime(
    name: str, vendors: dict[str, VendorModule], model_paths: dict[str, Path]
) -> None:
    vendor = vendors[name]
    assert vendor.parity is not None
    assert vendor.parity.qdq == (name in QDQ_CASES)
    assert vendor.sha256 == file_sha256(model_paths[name])
    # any batch size works, and matches onnxruntime sample by sample
    x = _input(vendor, 3)
    with torch.no_grad():
        out = vendor(x).numpy()
    options = ort.SessionOptions()
    if name in QDQ_CASES:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(
        str(model_paths[name]), options, providers=["CPUExecutionProvider"]
    )
    ref = np.concatenate(
        [session.run(None, {vendor.input_name: x[i : i + 1].numpy()})[0] for i in range(3)]
    )
    tol = vendor.parity.atol if name in QDQ_CASES else 1e-4
    np.testing.assert_allclose(out, ref, atol=tol, rtol=1e-3)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_weights_frozen_gradient_reaches_input(name: str, vendors: dict[str, VendorModule]) -> None:
    vendor = vendors[name]
    assert all(not p.requires_grad for p in vendor.parameters())
    assert all(not b.requires_grad for b in vendor.buffers())
    before = {k: v.clone() for k, v in vendor.fault_targets().items()}
    x = _input(vendor, 2).requires_grad_(True)
    shift = torch.nn.Parameter(torch.zeros_like(x))  # stands in for the generator
    optimizer = torch.optim.Adam([shift], lr=0.1)
    logits = vendor(x + shift)
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1]))
    loss.backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert shift.grad is not None and float(shift.grad.abs().sum()) > 0
    optimizer.step()
    assert float(shift.detach().abs().sum()) > 0
    for key, value in vendor.fault_targets().items():
        assert value.grad is None
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("name", list(BUILDERS))
def test_weight_overrides_change_output_and_restore(
    name: str, vendors: dict[str, VendorModule]
) -> None:
    vendor = vendors[name]
    key = _main_weight(vendor)
    weight = vendor.fault_targets()[key]
    x = _input(vendor, 2)
    with torch.no_grad():
        base = vendor(x)
        with vendor.weight_overrides({key: -weight}):
            flipped = vendor(x)
        assert torch.equal(vendor(x), base)
        with pytest.raises(RuntimeError, match="boom"), vendor.weight_overrides({key: weight * 0}):
            raise RuntimeError("boom")
        assert torch.equal(vendor(x), base)
    assert not torch.allclose(flipped, base)
    assert vendor.fault_targets()[key] is weight  # no copy, no replacement


def test_fault_target_keys_are_onnx_initializer_names(
    vendors: dict[str, VendorModule], model_paths: dict[str, Path]
) -> None:
    for name in ("legacy9_fused", "legacy13_bn_preserved", "dynamo", "qdq_int8"):
        model = onnx.load(str(model_paths[name]))
        inits = {i.name for i in model.graph.initializer}
        targets = vendors[name].fault_targets()
        assert set(targets) <= inits, name
        kinds = {n.op_type for n in model.graph.node}
        if name == "legacy13_bn_preserved":
            assert "BatchNormalization" in kinds and "bn1.running_var" in targets
        if name == "legacy9_fused":
            assert "BatchNormalization" not in kinds


def test_exports_cover_the_patterns_they_claim(model_paths: dict[str, Path]) -> None:
    def ops(name: str) -> set[str]:
        return {n.op_type for n in onnx.load(str(model_paths[name])).graph.node}

    assert {"Shape", "Gather", "Concat", "Reshape"} <= ops("legacy11_inits_as_inputs")
    assert {
        "Shape",
        "Gather",
        "Concat",
        "Reshape",
        "Constant",
        "Identity",
        "Gemm",
        "MatMul",
    } <= ops("helper_ir4_opset9")
    assert {"ConvTranspose", "Pad", "AveragePool", "MaxPool", "ReduceMean", "Cast"} <= ops("zoo11")
    fixed = onnx.load(str(model_paths["legacy17_fixed_batch"]))
    assert fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    kia = onnx.load(str(model_paths["legacy11_inits_as_inputs"]))
    assert len(kia.graph.input) > 1
    helper = onnx.load(str(model_paths["helper_ir4_opset9"]))
    assert helper.ir_version == 4 and helper.opset_import[0].version == 9


def test_qdq_weights(vendors: dict[str, VendorModule], model_paths: dict[str, Path]) -> None:
    vendor = vendors["qdq_int8"]
    assert vendor.is_qdq
    quantized = vendor.quantized_weights()
    int8 = {k: v for k, v in quantized.items() if v[0].dtype == np.int8}
    assert int8, quantized.keys()
    targets = vendor.fault_targets()
    for key, (codes, scale, zero_point, axis) in int8.items():
        expected = (codes.astype(np.float32) - zero_point.astype(np.float32)) * scale
        assert axis is None
        np.testing.assert_allclose(targets[key].numpy(), expected, rtol=1e-6, atol=0)
    model = onnx.load(str(model_paths["qdq_int8"]))
    dq_inputs = {n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    assert set(int8) <= dq_inputs
    # a bit flip in the codes, applied through the dequantized override, changes the logits
    key = _main_weight(vendor)
    codes, scale, zero_point, _ = quantized[key]
    flipped = codes.copy().reshape(-1)
    flipped[0] = np.int8(flipped[0] ^ np.int8(-128))
    override = torch.from_numpy(
        (flipped.reshape(codes.shape).astype(np.float32) - zero_point) * scale
    )
    x = _input(vendor, 2)
    with torch.no_grad():
        base = vendor(x)
        with vendor.weight_overrides({key: override}):
            faulty = vendor(x)
    assert not torch.equal(base, faulty)


def test_qdq_per_channel(tmp_path: Path) -> None:
    float_path = vm.export_legacy(vm.tiny_cnn(), tmp_path / "f.onnx", opset=13)
    vendor = load_vendor(vm.qdq_model(float_path, tmp_path / "q.onnx", per_channel=True))
    axes = {v[3] for v in vendor.quantized_weights().values() if v[0].dtype == np.int8}
    assert 0 in axes
    assert vendor.parity is not None and vendor.parity.fused_argmax_agreement is not None


def test_fixed_batch_module_is_batch_aware_and_copyable(vendors: dict[str, VendorModule]) -> None:
    vendor = vendors["helper_ir4_opset9"]
    assert vendor.input_shape == (1, 3, 16, 16) and vendor.fixed_batch_one
    x = _input(vendor, 4)
    with torch.no_grad():
        batched = vendor(x)
        single = torch.cat([vendor(x[i : i + 1]) for i in range(4)])
        copied = copy.deepcopy(vendor)(x)
    assert batched.shape == (4, 5)
    torch.testing.assert_close(batched, single)
    torch.testing.assert_close(copied, batched)


@pytest.mark.parametrize("name", ["legacy13_bn_preserved", "zoo11", "qdq_int8"])
def test_bf16_autocast_and_channels_last(name: str, vendors: dict[str, VendorModule]) -> None:
    vendor = vendors[name]
    x = _input(vendor, 2)
    with torch.no_grad():
        ref = vendor(x)
        channels_last = vendor(x.contiguous(memory_format=torch.channels_last))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = vendor(x)
    torch.testing.assert_close(channels_last, ref, atol=1e-5, rtol=1e-4)
    assert torch.isfinite(low.float()).all()
    spread = float(ref.max() - ref.min())
    assert float((low.float() - ref).abs().max()) < 0.25 * spread + 0.05


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tiny_cnn", "op_zoo"])
@pytest.mark.parametrize("optimize", [True, False])
def test_dynamo_exports_slow(tmp_path: Path, model: str, optimize: bool) -> None:
    net = vm.tiny_cnn() if model == "tiny_cnn" else vm.op_zoo()
    vendor = load_vendor(vm.export_dynamo(net, tmp_path / "m.onnx", optimize=optimize))
    x = _input(vendor, 3)
    with torch.no_grad():
        torch.testing.assert_close(vendor(x), net(x), atol=1e-4, rtol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["legacy11_inits_as_inputs", "helper_ir4_opset9", "qdq_int8"])
def test_torch_compile_single_graph_slow(name: str, vendors: dict[str, VendorModule]) -> None:
    """Shape chains are Python ints, so dynamo captures the whole forward in one graph."""
    vendor = vendors[name]
    x = _input(vendor, 4)
    explained = torch._dynamo.explain(vendor)(x)
    assert explained.graph_break_count == 0, explained.break_reasons
    compiled = torch.compile(vendor, backend="eager", dynamic=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), vendor(x))
        torch.testing.assert_close(compiled(x[:3]), vendor(x[:3]))


def test_override_errors(vendors: dict[str, VendorModule]) -> None:
    vendor = vendors["legacy9_fused"]
    key = _main_weight(vendor)
    with (
        pytest.raises(NfdeployError, match="not a weight"),
        vendor.weight_overrides({"nope": torch.zeros(1)}),
    ):
        pass
    with (
        pytest.raises(NfdeployError, match="shape"),
        vendor.weight_overrides({key: torch.zeros(1)}),
    ):
        pass
    inner_key = sorted(vendor.fault_targets())[0]
    x = _input(vendor, 1)
    with torch.no_grad():
        base = vendor(x)
        with vendor.weight_overrides({key: torch.zeros_like(vendor.fault_targets()[key])}):
            outer = vendor(x)
            inner_value = vendor.fault_targets()[inner_key] + 1
            with vendor.weight_overrides({inner_key: inner_value}):
                pass
            assert torch.equal(vendor(x), outer)
        assert torch.equal(vendor(x), base)


def test_parity_detects_a_wrong_module(
    vendors: dict[str, VendorModule], model_paths: dict[str, Path]
) -> None:
    vendor = vendors["legacy9_fused"]
    key = _main_weight(vendor)
    with (
        vendor.weight_overrides({key: vendor.fault_targets()[key] * 1.5}),
        pytest.raises(NfdeployError, match="max abs diff"),
    ):
        check_parity(vendor, model_paths["legacy9_fused"])


def test_file_sha256(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(b"nfdeploy" * 1000)
    assert file_sha256(path) == hashlib.sha256(b"nfdeploy" * 1000).hexdigest()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NfdeployError, match="no such ONNX file"):
        load_vendor(tmp_path / "absent.onnx")


@pytest.mark.parametrize("content", [b"this is not an onnx model\n", b"", bytes(range(256)) * 4])
def test_garbage_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "garbage.onnx"
    path.write_bytes(content)
    with pytest.raises(NfdeployError, match=r"not a readable ONNX model|has no nodes"):
        load_vendor(path)


def test_unsupported_operator_names_op_node_model_and_opset(tmp_path: Path) -> None:
    path = vm.unsupported_model(tmp_path / "det.onnx")
    with pytest.raises(NfdeployError, match=r"Det node 'the_det'.*not supported.*[Tt]ry") as info:
        load_vendor(path)
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value) and "(opset 13)" in str(info.value)


def test_operator_outside_its_opset_range_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = registry._table()["Clip"]
    monkeypatch.setitem(registry._REGISTRY, "Clip", [e for e in entries if e.opsets[0] == 11])
    path = vm.single_op_model(tmp_path / "clip9.onnx", "Clip", [N, 3, 4], opset=9)
    with pytest.raises(
        NfdeployError,
        match=r"Clip node 'op' in .*clip9.onnx \(opset 9\): not "
        r"supported at this opset \(supported at opsets 11-latest\)",
    ):
        load_vendor(path)


def test_each_operator_converts_from_its_first_opset_to_the_newest() -> None:
    """Operators split by opset (Clip, Softmax, ...) leave no opset between their ranges."""
    ranges: dict[str, list[tuple[int, int | None]]] = {}
    for op, opsets in registry.supported():
        ranges.setdefault(op, []).append(opsets)
    for op, spans in ranges.items():
        assert spans[-1][1] is None, op
        for (_, hi), (lo, _) in itertools.pairwise(spans):
            assert hi is not None and lo == hi + 1, (op, spans)
    assert sorted(ranges) == [op for op in supported_ops() if op != "Constant"]
    assert ("Reshape", 1) in registry.int_consumers() and ("Add", 1) not in registry.int_consumers()


def _shape_chain_model(
    path: Path, nodes: list[onnx.NodeProto], inits: dict[str, np.ndarray]
) -> Path:
    graph = onnx.helper.make_graph(
        nodes,
        "shape_chain",
        [onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [N, 3, 4])],
        [onnx.helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, None)],
        initializer=[onnx.numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


_node = onnx.helper.make_node
SHAPE_CHAINS: dict[str, tuple[list[onnx.NodeProto], dict[str, np.ndarray]]] = {
    # a Python shape value reaches an int input: ConstantOfShape's shape, ReduceMean's axes
    "constant_of_shape": (
        [
            _node("Shape", ["input"], ["s"]),
            _node("ConstantOfShape", ["s"], ["c"], value=onnx.numpy_helper.from_array(f(1))),
            _node("Add", ["input", "c"], ["out"]),
        ],
        {},
    ),
    "reduce_axes": (
        [
            _node("Shape", ["input"], ["r"], start=1, end=2),
            _node("Sub", ["r", "one"], ["axes"]),
            _node("ReduceMean", ["input", "axes"], ["out"]),
        ],
        {"one": np.array(1, np.int64)},
    ),
    # Size of a shape value (the rank)
    "size_of_shape": (
        [
            _node("Shape", ["input"], ["s"]),
            _node("Size", ["s"], ["r"]),
            _node("Cast", ["r"], ["rf"], to=onnx.TensorProto.FLOAT),
            _node("Add", ["input", "rf"], ["out"]),
        ],
        {},
    ),
}


@pytest.mark.parametrize("case", list(SHAPE_CHAINS))
def test_python_shape_values_feed_int_inputs_and_shape_ops(tmp_path: Path, case: str) -> None:
    vendor = load_vendor(_shape_chain_model(tmp_path / f"{case}.onnx", *SHAPE_CHAINS[case]))
    assert vendor.parity is not None and vendor.parity.max_abs_diff < 1e-5


def test_model_local_functions_are_inlined(tmp_path: Path) -> None:
    vendor = load_vendor(vm.local_function_model(tmp_path / "fn.onnx"))
    assert set(vendor.fault_targets()) == {"fc.weight", "fc2.weight"}


def test_integer_input_model(tmp_path: Path) -> None:
    path = vm.single_op_model(
        tmp_path / "u8.onnx", "Cast", [N, 3, 4], attrs={"to": 1}, then=("Flatten",)
    )
    model = onnx.load(str(path))
    model.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.UINT8
    onnx.save(model, str(path))
    vendor = load_vendor(path)
    assert vendor.input_dtype == np.uint8 and vendor.parity is not None


def test_training_mode_batchnorm_is_refused(tmp_path: Path) -> None:
    model = vm.tiny_cnn().train()
    path = vm.export_legacy(model, tmp_path / "train.onnx", opset=13, preserve_bn=True)
    with pytest.raises(NfdeployError, match=r"BatchNormalization node .*training mode.*eval\(\)"):
        load_vendor(path)


def test_qoperator_model_is_refused_with_a_hint(tmp_path: Path) -> None:
    float_path = vm.export_legacy(vm.tiny_cnn(), tmp_path / "f.onnx", opset=13)
    path = vm.qdq_model(float_path, tmp_path / "q.onnx", qoperator=True)
    with pytest.raises(NfdeployError, match=r"QLinear\w+ node .*QuantFormat.QDQ"):
        load_vendor(path)


@pytest.mark.parametrize("location", ["../outside.bin", "sub/../../outside.bin"])
def test_external_data_outside_folder_is_refused(tmp_path: Path, location: str) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "outside.bin").write_bytes(np.ones((3, 4), dtype=np.float32).tobytes())
    with pytest.raises(NfdeployError, match="leaves the model folder"):
        load_vendor(vm.external_data_model(folder, location))


def test_external_data_absolute_or_missing_is_refused(tmp_path: Path) -> None:
    blob = tmp_path / "abs.bin"
    blob.write_bytes(np.ones((3, 4), dtype=np.float32).tobytes())
    with pytest.raises(NfdeployError, match="absolute path"):
        load_vendor(vm.external_data_model(tmp_path, str(blob)))
    with pytest.raises(NfdeployError, match="missing"):
        load_vendor(vm.external_data_model(tmp_path, "nothere.bin"))


def test_external_data_inside_folder_loads(tmp_path: Path) -> None:
    weight = np.arange(12, dtype=np.float32).reshape(3, 4) / 10
    (tmp_path / "weights.bin").write_bytes(weight.tobytes())
    vendor = load_vendor(vm.external_data_model(tmp_path, "weights.bin"))
    np.testing.assert_array_equal(vendor.fault_targets()["fc.weight"].numpy(), weight)
