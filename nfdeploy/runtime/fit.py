"""Checks that a model is what a command needs, before any work starts (torch-free).

A vendor model must be a classifier: its first output is ``[N, classes]``. A generator maps
an image to an image of the same shape. Labels must index the vendor's outputs. Each check
reads the declared shapes first and runs the model once on a zero input only when the
file leaves them open.
"""

from __future__ import annotations

import numpy as np
import onnx

from nfdeploy.errors import NfdeployError
from nfdeploy.onnx.session import make_session
from nfdeploy.runtime.batching import graph_input, input_dims

Dims = list[int | None]


def _value_dims(value: onnx.ValueInfoProto) -> Dims | None:
    """Declared dims of a graph value (None per symbolic dim), or None when the rank is unknown."""
    tensor = value.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]


def _shape_text(dims: Dims | tuple[int, ...]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def output_dims(model: onnx.ModelProto) -> Dims | None:
    if not model.graph.output:
        return None
    return _value_dims(model.graph.output[0])


def probe_output(
    model: onnx.ModelProto, name: str
) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(input shape, first output shape) of one run on zeros, batch 1 where the batch is open;
    None when the input has other open dimensions (then the real data decides)."""
    dims = input_dims(model)
    if not dims or any(d is None for d in dims[1:]):
        return None
    shape = tuple([1 if dims[0] is None else int(dims[0])] + [int(d) for d in dims[1:] if d])
    elem = graph_input(model).type.tensor_type.elem_type
    dtype = onnx.helper.tensor_dtype_to_np_dtype(elem) if elem else np.dtype(np.float32)
    session = make_session(model.SerializeToString(), threads=1, name=name)
    try:
        out = session.run(None, {session.get_inputs()[0].name: np.zeros(shape, dtype=dtype)})[0]
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NfdeployError(
            f"{name}: onnxruntime fails on a {list(shape)} input ({reason})."
        ) from None
    return shape, tuple(np.asarray(out).shape)


def check_one_image_input(model: onnx.ModelProto, name: str) -> None:
    """nfdeploy feeds one (N, C, H, W) image tensor; refuse models that need more inputs."""
    weights = {init.name for init in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in weights]
    dims = _value_dims(inputs[0]) if len(inputs) == 1 else None
    if len(inputs) != 1 or (dims is not None and len(dims) != 4):
        described = (
            ", ".join(f"{v.name} {_shape_text(_value_dims(v) or [])}" for v in inputs) or "none"
        )
        raise NfdeployError(
            f"{name}: nfdeploy feeds one image input (N, C, H, W); the model's inputs are "
            f"{described}."
        )


def classifier_classes(model: onnx.ModelProto, name: str) -> int | None:
    """The number of classes of a model whose first output is [N, classes]; refuses others.

    None when neither the file nor a probe run can tell (open input dimensions).
    """
    check_one_image_input(model, name)
    dims = output_dims(model)
    if dims is None or (len(dims) == 2 and not dims[1]):
        probe = probe_output(model, name)
        if probe is None:
            return None
        dims = list(probe[1])
    classes = dims[1] if len(dims) == 2 else None
    if not classes:
        raise NfdeployError(
            f"{name}: its output {_shape_text(dims)} is not [N, classes]; nfdeploy needs a "
            "classifier that returns one row of class scores per image."
        )
    return int(classes)


def check_generator(model: onnx.ModelProto, name: str) -> None:
    """A generator returns an image the shape of its input (the vendor's returns class scores)."""
    check_one_image_input(model, name)
    ins, outs = input_dims(model), output_dims(model)
    if outs is not None and (
        len(outs) != len(ins)
        or any(a is not None and b is not None and a != b for a, b in zip(ins, outs, strict=True))
    ):
        _refuse_generator(name, ins, outs)
    if outs is None or any(d is None for d in outs[1:]) or any(d is None for d in ins[1:]):
        probe = probe_output(model, name)
        if probe is not None and probe[0] != probe[1]:
            _refuse_generator(name, list(probe[0]), list(probe[1]))


def _refuse_generator(name: str, ins: Dims, outs: Dims) -> None:
    raise NfdeployError(
        f"{name}: not a generator: it maps {_shape_text(ins)} to {_shape_text(outs)}, but a "
        "generator returns an image of its input's shape; pass the generator.onnx written by "
        "`nfdeploy export` (not the vendor model)."
    )


def check_labels(labels: np.ndarray, classes: int | None, *, data: str, model: str) -> None:
    """Every label must index one of the vendor's ``classes`` outputs (None: not known)."""
    if labels.size == 0 or classes is None:
        return
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= classes:
        bad = low if low < 0 else high
        raise NfdeployError(
            f"{data}: label {bad} is outside the {classes} classes (0..{classes - 1}) of "
            f"{model}; is this the data set the model was trained on?"
        )
