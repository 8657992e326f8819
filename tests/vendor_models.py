"""Test-only builders of tiny vendor ONNX models, in the shapes real exporters produce."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn
from torch.nn import functional as F

SHAPE = (1, 3, 16, 16)
CLASSES = 10


@contextlib.contextmanager
def quiet_export() -> Iterator[None]:
    """Silence exporter chatter (legacy exporter deprecation, onnxscript progress)."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # deprecation, tracer and constant-folding notices
        yield


class TinyCNN(nn.Module):
    """Conv->BN->ReLU->MaxPool, a residual Conv->BN block, avg pool, view(B, -1), Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.avg = nn.AvgPool2d(2)
        self.fc = nn.Linear(8 * 4 * 4, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))
        x = torch.relu(self.bn2(self.conv2(x)) + x)
        x = self.avg(x)
        return self.fc(x.view(x.size(0), -1))


def tiny_cnn(seed: int = 0) -> TinyCNN:
    """A TinyCNN in eval mode with non-trivial BatchNorm statistics."""
    torch.manual_seed(seed)
    model = TinyCNN()
    with torch.no_grad():
        for bn in (model.bn1, model.bn2):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 1.5)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
    return model.eval()


class OpZoo(nn.Module):
    """Many operators at once: grouped/dilated/strided conv, explicit pads, transposed conv,
    ceil-mode pools, activations, reductions, transposes, casts and arithmetic."""

    def __init__(self) -> None:
        super().__init__()
        self.grouped = nn.Conv2d(3, 6, 3, padding=2, dilation=2, groups=3)
        self.strided = nn.Conv2d(6, 8, 3, stride=2)
        self.up = nn.ConvTranspose2d(8, 6, 4, stride=2, padding=1)
        self.up2 = nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1, groups=2)
        self.bn = nn.BatchNorm1d(16)
        self.fc = nn.Linear(4 * 2 + 4, 16)
        self.head = nn.Linear(16, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.grouped(x), 0.1)
        x = F.pad(x, (0, 1, 0, 1))
        x = F.relu6(self.strided(x))
        x = F.hardswish(self.up(x)) * 0.5 - 0.1
        x = torch.sigmoid(self.up2(x))[:, :, ::2, ::2] + F.hardsigmoid(
            x[:, :4].mean(dim=1, keepdim=True)
        )
        a = F.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True)
        b = F.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
        y = torch.cat([a, b.transpose(2, 3)], dim=1) / 2.0
        y = F.avg_pool2d(y, 2, ceil_mode=True, count_include_pad=True)
        g = y.mean(dim=(2, 3))  # ReduceMean
        h = y.amax(dim=3).amin(dim=2)[:, :4]
        z = torch.cat([g, torch.tanh(h).to(torch.float64).to(torch.float32)], dim=1)
        z = self.bn(self.fc(z.unsqueeze(1).squeeze(1)))
        logits = self.head(torch.relu(z))
        return torch.cat([logits, torch.softmax(logits, dim=1)], dim=1)


def op_zoo(seed: int = 0) -> OpZoo:
    torch.manual_seed(seed)
    model = OpZoo()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-0.2, 0.2)
        model.bn.running_var.uniform_(0.5, 1.5)
    return model.eval()


def export_legacy(
    model: nn.Module,
    path: Path,
    *,
    opset: int,
    dynamic_batch: bool = True,
    fold: bool = True,
    preserve_bn: bool = False,
    keep_initializers_as_inputs: bool = False,
    shape: tuple[int, ...] = SHAPE,
) -> Path:
    """TorchScript-based export (``dynamo=False``); BN is fused unless ``preserve_bn`` or
    ``fold=False``."""
    kwargs: dict[str, object] = {}
    if dynamic_batch:
        kwargs["dynamic_axes"] = {"input": {0: "batch"}, "logits": {0: "batch"}}
    if preserve_bn:
        kwargs["training"] = torch.onnx.TrainingMode.PRESERVE
    with quiet_export():
        torch.onnx.export(
            model,
            (torch.randn(*shape),),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=["input"],
            output_names=["logits"],
            do_constant_folding=fold,
            keep_initializers_as_inputs=keep_initializers_as_inputs,
            **kwargs,  # type: ignore[arg-type]
        )
    return path


def export_dynamo(
    model: nn.Module, path: Path, *, shape: tuple[int, ...] = SHAPE, optimize: bool = True
) -> Path:
    """torch.export-based export (opset 18+), dynamic batch, weights inside the file.

    ``optimize=False`` keeps the exporter's raw graph (unfused BN, Shape/Squeeze/Expand/
    CastLike chains)."""
    batch = torch.export.Dim("batch", min=1, max=64)
    with quiet_export():
        torch.onnx.export(
            model,
            (torch.randn(2, *shape[1:]),),
            str(path),
            dynamo=True,
            external_data=False,
            input_names=["input"],
            output_names=["logits"],
            dynamic_shapes=({0: batch},),
            verbose=False,
            optimize=optimize,
        )
    return path


def helper_model(path: Path, *, seed: int = 0) -> Path:
    """IR 4 / opset 9, built by hand: Constant weights, Identity of initializers, an explicit
    Shape->Gather->Unsqueeze->Concat->Reshape flatten, Gemm with alpha/beta, MatMul+Add, and
    a constant Reshape to [1, K] with the batch fixed at 1."""
    rng = np.random.default_rng(seed)
    conv_w = rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32)
    conv_b = rng.normal(0, 0.1, 4).astype(np.float32)
    fc_w = rng.normal(0, 0.3, (6, 4 * 4 * 4)).astype(np.float32)
    fc_b = rng.normal(0, 0.1, 6).astype(np.float32)
    mm_w = rng.normal(0, 0.3, (6, 5)).astype(np.float32)
    mm_b = rng.normal(0, 0.1, 5).astype(np.float32)
    inits = [
        numpy_helper.from_array(conv_b, "conv.bias"),
        numpy_helper.from_array(fc_w, "fc.weight"),
        numpy_helper.from_array(fc_b, "fc.bias"),
        numpy_helper.from_array(mm_w, "mm.weight"),
        numpy_helper.from_array(np.array([1, 4 * 4 * 4], dtype=np.int64), "flat_shape"),
    ]
    nodes = [
        helper.make_node("Constant", [], ["conv.weight"], value=numpy_helper.from_array(conv_w)),
        helper.make_node("Constant", [], ["mm.bias"], value=numpy_helper.from_array(mm_b)),
        helper.make_node("Identity", ["conv.bias"], ["conv.bias.alias"]),
        helper.make_node(
            "Conv",
            ["input", "conv.weight", "conv.bias.alias"],
            ["c"],
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
            strides=[2, 2],
            name="conv",
        ),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        # explicit runtime flatten chain: [Shape(p)[0], -1]
        helper.make_node("Shape", ["p"], ["p_shape"]),
        helper.make_node(
            "Constant", [], ["zero"], value=numpy_helper.from_array(np.array(0, dtype=np.int64))
        ),
        helper.make_node("Gather", ["p_shape", "zero"], ["batch"], axis=0),
        helper.make_node("Unsqueeze", ["batch"], ["batch1"], axes=[0]),
        helper.make_node(
            "Constant",
            [],
            ["minus1"],
            value=numpy_helper.from_array(np.array([-1], dtype=np.int64)),
        ),
        helper.make_node("Concat", ["batch1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["p", "target"], ["flat"]),
        # ... and a constant [1, K] reshape, as fixed-batch exports write it
        helper.make_node("Reshape", ["flat", "flat_shape"], ["flat2"]),
        helper.make_node("Identity", ["fc.weight"], ["fc.weight.alias"]),
        helper.make_node(
            "Gemm",
            ["flat2", "fc.weight.alias", "fc.bias"],
            ["h"],
            transB=1,
            alpha=0.5,
            beta=2.0,
            name="fc",
        ),
        helper.make_node("Tanh", ["h"], ["t"]),
        helper.make_node("MatMul", ["t", "mm.weight"], ["m"], name="mm"),
        helper.make_node("Add", ["m", "mm.bias"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "helper_ir4",
        [
            helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 16, 16]),
            # IR 4 still allows initializers listed as inputs
            helper.make_tensor_value_info("fc.weight", TensorProto.FLOAT, list(fc_w.shape)),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 5])],
        initializer=inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 9)], producer_name="tests"
    )
    model.ir_version = 4
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


class _Reader:
    """A small calibration data reader for ``quantize_static``."""

    def __init__(self, input_name: str, count: int = 8, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self._batches = iter(
            [{input_name: rng.standard_normal(SHAPE).astype(np.float32)} for _ in range(count)]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)

    def rewind(self) -> None:  # pragma: no cover - not used by MinMax calibration
        pass


def qdq_model(
    float_path: Path, path: Path, *, per_channel: bool = False, qoperator: bool = False
) -> Path:
    """int8 QDQ model from ``onnxruntime.quantization.quantize_static`` (or QOperator)."""
    import logging

    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    reader = type("Reader", (_Reader, CalibrationDataReader), {})("input")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_static(
                str(float_path),
                str(path),
                reader,
                quant_format=QuantFormat.QOperator if qoperator else QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=per_channel,
            )
    finally:
        root.setLevel(level)
    return path


def unsupported_model(path: Path) -> Path:
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4, 4])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1])
    nodes = [
        helper.make_node("Relu", ["input"], ["r"]),
        helper.make_node("Det", ["r"], ["out"], name="the_det"),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "unsupported", [x], [y]),
        opset_imports=[helper.make_opsetid("", 13)],
    )
    onnx.save(model, str(path))
    return path


def external_data_model(folder: Path, location: str) -> Path:
    """A Gemm model whose weight points to external data at ``location`` (relative to folder)."""
    weight = numpy_helper.from_array(np.ones((3, 4), dtype=np.float32), "fc.weight")
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(3 * 4 * 4))):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    weight.ClearField("float_data")
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["input", "fc.weight"], ["out"], transB=1)],
        "external",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = folder / "external.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def single_op_model(
    path: Path,
    op_type: str,
    input_shape: list[int | str],
    *,
    opset: int = 17,
    attrs: dict[str, object] | None = None,
    inits: dict[str, np.ndarray] | None = None,
    extra_inputs: tuple[str, ...] = (),
    then: tuple[str, ...] = ("Flatten",),
) -> Path:
    """``input -> op_type(input, *extra_inputs) -> [then...]`` with random float initializers."""
    inits = inits or {}
    nodes = [
        helper.make_node(op_type, ["input", *extra_inputs], ["y0"], name="op", **(attrs or {}))
    ]
    last = "y0"
    for i, follow in enumerate(then):
        nodes.append(helper.make_node(follow, [last], [f"y{i + 1}"]))
        last = f"y{i + 1}"
    nodes.append(helper.make_node("Identity", [last], ["out"]))
    graph = helper.make_graph(
        nodes,
        op_type.lower(),
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 8)
    onnx.save(model, str(path))
    return path


def local_function_model(path: Path) -> Path:
    """A model whose Gemm+Relu lives in a model-local function (as some exporters write)."""
    rng = np.random.default_rng(3)
    fn = helper.make_function(
        "local",
        "Dense",
        ["x", "w"],
        ["y"],
        [
            helper.make_node("Gemm", ["x", "w"], ["h"], transB=1),
            helper.make_node("Relu", ["h"], ["y"]),
        ],
        opset_imports=[helper.make_opsetid("", 13)],
    )
    graph = helper.make_graph(
        [
            helper.make_node("Dense", ["input", "fc.weight"], ["h"], domain="local"),
            helper.make_node("Dense", ["h", "fc2.weight"], ["out"], domain="local"),
        ],
        "functions",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 6])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3])],
        initializer=[
            numpy_helper.from_array(rng.standard_normal((5, 6)).astype(np.float32), "fc.weight"),
            numpy_helper.from_array(rng.standard_normal((3, 5)).astype(np.float32), "fc2.weight"),
        ],
    )
    model = helper.make_model(
        graph,
        functions=[fn],
        opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("local", 1)],
    )
    model.ir_version = 8
    onnx.save(model, str(path))
    return path
