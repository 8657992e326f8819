"""Walk an ONNX graph once and turn it into an execution plan for :class:`VendorModule`.

Values fall in four groups:

* **weights** - floating tensors stored in the file (initializers and ``Constant`` nodes),
  plus the dequantized result of ``DequantizeLinear(int initializer, scale, zp)``. They are
  keyed by the ONNX name that holds the stored data (for QDQ: the integer initializer), are
  read fresh on every forward (so ``weight_overrides`` can swap them), and are never folded.
  ``Identity`` of a weight is an alias, not a node.
* **constants** - everything else that is known without the input (integer initializers,
  ``Constant`` nodes' integer tensors, and nodes computed from those). Nodes whose inputs
  are all constants are evaluated here, once, so shape targets, axes and pads become
  plan-time facts.
* **runtime values** - produced by the remaining nodes from the graph input.
* the graph **input**.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from nfdeploy.errors import NfdeployError
from nfdeploy.torchify import ops, shape_ops
from nfdeploy.torchify.quant import dequantize_np

FLOAT_KINDS = "f"
_QUANT_CODE_TYPES = (np.int8, np.uint8, np.int16, np.uint16, np.int32)
_DOMAINS = ("", "ai.onnx")
_QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


@dataclass(frozen=True)
class QuantizedWeight:
    """A weight stored as integer codes: ``float = (codes - zero_point) * scale``."""

    codes: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None

    def as_tuple(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, int | None]:
        return self.codes, self.scale, self.zero_point, self.axis


@dataclass
class Step:
    fn: ops.RunFn
    op_type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    release: tuple[str, ...] = ()


@dataclass
class Plan:
    input_name: str
    output_name: str
    input_shape: tuple[int | None, ...]
    input_dtype: np.dtype
    opset: int
    ir_version: int
    steps: list[Step]
    weights: dict[str, torch.Tensor]  # weight key -> float tensor
    weight_values: dict[str, str]  # graph value name -> weight key (runtime reads)
    constants: dict[str, torch.Tensor]  # graph value name -> constant tensor (runtime reads)
    quantized: dict[str, QuantizedWeight]
    consumers: dict[str, list[tuple[str, str, int]]]
    state: ops.RuntimeState
    fixed_batch_one: bool
    has_qdq: bool  # QuantizeLinear / DequantizeLinear nodes (weights or activations)


def first_line(exc: BaseException) -> str:
    """``exc``'s message on one line (error messages here are single-line by contract)."""
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def to_torch(array: np.ndarray) -> torch.Tensor:
    """A writable, contiguous torch copy of ``array`` (bfloat16 arrays go through float32)."""
    arr = np.asarray(array)
    if arr.dtype.kind == "V" or arr.dtype.name == "bfloat16":
        return torch.from_numpy(arr.astype(np.float32)).to(torch.bfloat16)
    if arr.dtype == np.uint16:
        return torch.from_numpy(arr.astype(np.int32))
    if arr.dtype == np.uint32:
        return torch.from_numpy(arr.astype(np.int64))
    return torch.from_numpy(np.array(arr, copy=True, order="C"))


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    t = tensor.detach().cpu()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.numpy().copy()


def _is_float(array: np.ndarray) -> bool:
    return np.asarray(array).dtype.kind == FLOAT_KINDS or np.asarray(array).dtype.name == "bfloat16"


def default_opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in _DOMAINS:
            return int(imp.version)
    if model.ir_version and model.ir_version < 3:
        return 1
    raise NfdeployError("the model declares no opset for the default ONNX domain; re-export it.")


def _attrs(node: onnx.NodeProto, label: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr in node.attribute:
        if attr.ref_attr_name:
            raise NfdeployError(
                f"{node.op_type} node '{label}': attribute references are not supported."
            )
        if attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
            raise NfdeployError(
                f"{node.op_type} node '{label}': control flow (subgraphs) is not supported; "
                "export the classifier without data-dependent branches."
            )
        value = onnx.helper.get_attribute_value(attr)
        if attr.type == onnx.AttributeProto.STRING:
            value = value.decode("utf-8")
        elif attr.type == onnx.AttributeProto.TENSOR:
            value = numpy_helper.to_array(value)
        elif attr.type == onnx.AttributeProto.STRINGS:
            value = [v.decode("utf-8") for v in value]
        elif attr.type in (onnx.AttributeProto.INTS, onnx.AttributeProto.FLOATS):
            value = list(value)
        out[attr.name] = value
    return out


def _constant_value(node: onnx.NodeProto, attrs: dict[str, Any], label: str) -> np.ndarray:
    if "value" in attrs:
        return np.asarray(attrs["value"])
    if "value_float" in attrs:
        return np.asarray(attrs["value_float"], dtype=np.float32)
    if "value_floats" in attrs:
        return np.asarray(attrs["value_floats"], dtype=np.float32)
    if "value_int" in attrs:
        return np.asarray(attrs["value_int"], dtype=np.int64)
    if "value_ints" in attrs:
        return np.asarray(attrs["value_ints"], dtype=np.int64)
    raise NfdeployError(f"Constant node '{label}': only tensor/float/int values are supported.")


def _topological(nodes: list[onnx.NodeProto], available: set[str]) -> list[onnx.NodeProto]:
    """``nodes`` in an order where every input is produced first (ONNX order when valid)."""
    known = set(available)
    ok = True
    for node in nodes:
        if any(i and i not in known for i in node.input):
            ok = False
            break
        known.update(o for o in node.output if o)
    if ok:
        return nodes
    known = set(available)
    pending = list(nodes)
    ordered: list[onnx.NodeProto] = []
    while pending:
        ready = [n for n in pending if all(not i or i in known for i in n.input)]
        if not ready:
            missing = sorted({i for n in pending for i in n.input if i and i not in known})
            raise NfdeployError(
                f"the graph is not a DAG or uses undefined values ({', '.join(missing[:5])}); "
                "check the export."
            )
        for node in ready:
            ordered.append(node)
            known.update(o for o in node.output if o)
        ready_ids = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in ready_ids]
    return ordered


def _prune(nodes: list[onnx.NodeProto], output: str) -> list[onnx.NodeProto]:
    needed = {output}
    keep: list[onnx.NodeProto] = []
    for node in reversed(nodes):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
    keep.reverse()
    return keep


def build_plan(model: onnx.ModelProto) -> Plan:
    """Convert a loaded (and externally-data-resolved) ONNX model into a :class:`Plan`."""
    opset = default_opset(model)
    if len(model.functions):
        try:
            from onnx import inliner

            model = inliner.inline_local_functions(model)
        except Exception as exc:  # pragma: no cover - depends on onnx version
            raise NfdeployError(
                f"could not inline the model's local functions: {first_line(exc)}"
            ) from exc
    graph = model.graph
    if len(graph.sparse_initializer):
        raise NfdeployError("sparse initializers are not supported; densify the model first.")

    known: dict[str, np.ndarray] = {}  # every value whose content is known without the input
    source_float: set[str] = set()  # stored floating tensors (initializers, Constant nodes)
    source_int: set[str] = set()
    for init in graph.initializer:
        try:
            arr = numpy_helper.to_array(init)
        except Exception as exc:
            raise NfdeployError(
                f"initializer '{init.name}' cannot be read: {first_line(exc)}"
            ) from exc
        known[init.name] = arr
        (source_float if _is_float(arr) else source_int).add(init.name)

    inputs = [vi for vi in graph.input if vi.name not in known]
    if len(inputs) != 1:
        names = ", ".join(vi.name for vi in inputs) or "none"
        raise NfdeployError(
            f"expected a classifier with exactly one input tensor, found {len(inputs)} ({names})."
        )
    if not graph.output:
        raise NfdeployError("the model declares no graph output.")
    in_vi = inputs[0]
    tensor_type = in_vi.type.tensor_type
    input_shape = tuple(
        int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else None
        for d in tensor_type.shape.dim
    )
    try:
        input_dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))
    except (KeyError, ValueError, TypeError):  # undeclared or exotic element type
        input_dtype = np.dtype(np.float32)
    output_name = graph.output[0].name
    fixed_batch_one = len(input_shape) >= 1 and input_shape[0] == 1

    nodes = _topological(list(graph.node), set(known) | {in_vi.name})
    nodes = _prune(nodes, output_name)
    consumers_of: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in nodes:
        for name in node.input:
            if name:
                consumers_of[name].append(node)
    graph_outputs = {o.name for o in graph.output}

    weight_of: dict[str, str] = {}  # value name -> weight key
    weights_np: dict[str, np.ndarray] = {}
    quantized: dict[str, QuantizedWeight] = {}
    state = ops.RuntimeState()
    steps: list[Step] = []
    shape_values: set[str] = set()  # runtime values kept as Python ints (see shape_ops)

    for name in source_float:
        weight_of[name] = name
        weights_np[name] = known[name]

    for index, node in enumerate(nodes):
        label = node.name or f"{node.op_type}_{index}"
        if node.domain not in _DOMAINS and not (
            node.domain == "com.microsoft" and node.op_type in _QDQ_OPS
        ):
            raise NfdeployError(
                f"{node.op_type} node '{label}': operator domain '{node.domain}' is not supported "
                "(only the default ONNX domain); export without custom/contrib operators."
            )
        attrs = _attrs(node, label)
        ins = tuple(node.input)
        outs = tuple(node.output)

        if node.op_type == "Constant":
            value = _constant_value(node, attrs, label)
            known[outs[0]] = value
            if _is_float(value):
                weight_of[outs[0]] = outs[0]
                weights_np[outs[0]] = value
                source_float.add(outs[0])
            else:
                source_int.add(outs[0])
            continue

        used = tuple(bool(o) and (o in consumers_of or o in graph_outputs) for o in outs)
        # Identity (or inference Dropout) of a weight: an alias of the same stored tensor.
        if (
            node.op_type in ("Identity", "Dropout")
            and ins
            and ins[0] in weight_of
            and not any(used[1:])
        ):
            weight_of[outs[0]] = weight_of[ins[0]]
            known[outs[0]] = known[ins[0]]
            continue

        if node.op_type == "DequantizeLinear" and _dequantize_weight(
            node, attrs, ins, outs, known, source_int, quantized, weights_np, weight_of
        ):
            continue

        present = [i for i in ins if i]
        consts = tuple(known.get(i) if i else None for i in ins)
        ctx = ops.NodeCtx(
            op_type=node.op_type,
            name=label,
            opset=opset,
            attrs=attrs,
            inputs=ins,
            consts=consts,
            outputs_used=used,
            outputs=outs,
            state=state,
            fixed_batch_one=fixed_batch_one,
            codes_only_to_dequantize=node.op_type == "QuantizeLinear"
            and outs[0] not in graph_outputs
            and all(c.op_type == "DequantizeLinear" for c in consumers_of.get(outs[0], [])),
        )
        fn = ops.build(ctx)
        from_weights = any(i in weight_of for i in present)
        if node.op_type in ("Shape", "Size") and ins[0] in known:
            from_weights = False  # overrides keep shapes: the shape of a weight is a constant
        if all(i in known for i in present) and not from_weights:
            _fold(fn, ctx, ins, outs, known)
            continue
        shape_in = tuple(bool(i) and i in shape_values for i in ins)
        if node.op_type in ("Shape", "Size") or (
            any(shape_in)
            and not from_weights
            and all(i in known or i in shape_values for i in present)
        ):
            py_fn = shape_ops.build(ctx, shape_in)
            if py_fn is not None:
                shape_values.update(o for o in outs if o)
                steps.append(
                    Step(fn=py_fn, op_type=node.op_type, name=label, inputs=ins, outputs=outs)
                )
                continue
        tensorize = [
            pos
            for pos, is_shape in enumerate(shape_in)
            if is_shape and (node.op_type, pos) not in shape_ops.INT_CONSUMERS
        ]
        if tensorize:
            fn = _tensorize(fn, tensorize)
        steps.append(Step(fn=fn, op_type=node.op_type, name=label, inputs=ins, outputs=outs))

    return _finish(
        steps=steps,
        known=known,
        weight_of=weight_of,
        weights_np=weights_np,
        quantized=quantized,
        input_name=in_vi.name,
        output_name=output_name,
        input_shape=input_shape,
        input_dtype=input_dtype,
        opset=opset,
        ir_version=int(model.ir_version),
        state=state,
        fixed_batch_one=fixed_batch_one,
        has_qdq=any(n.op_type in _QDQ_OPS for n in nodes),
    )


def _dequantize_weight(
    node: onnx.NodeProto,
    attrs: dict[str, Any],
    ins: tuple[str, ...],
    outs: tuple[str, ...],
    known: dict[str, np.ndarray],
    source_int: set[str],
    quantized: dict[str, QuantizedWeight],
    weights_np: dict[str, np.ndarray],
    weight_of: dict[str, str],
) -> bool:
    """Handle ``DequantizeLinear(stored integer codes, constant scale, constant zp)``."""
    key = ins[0]
    if key not in source_int or not len(ins) > 1 or ins[1] not in known:
        return False
    if len(ins) > 2 and ins[2] and ins[2] not in known:
        return False
    if attrs.get("block_size"):
        raise NfdeployError(
            f"DequantizeLinear node '{node.name}': blocked quantization is not supported."
        )
    codes = np.asarray(known[key])
    if codes.dtype not in [np.dtype(t) for t in _QUANT_CODE_TYPES]:
        return False
    scale = np.asarray(known[ins[1]])
    zp = np.asarray(known[ins[2]]) if len(ins) > 2 and ins[2] else np.zeros((), dtype=codes.dtype)
    axis: int | None = None
    if scale.ndim == 1 and codes.ndim > 0:  # 1-D scale: per-axis quantization
        axis = int(attrs.get("axis", 1)) % codes.ndim
    info = QuantizedWeight(codes=codes, scale=scale, zero_point=zp, axis=axis)
    previous = quantized.get(key)
    if previous is not None and not (
        np.array_equal(previous.scale, scale)
        and np.array_equal(previous.zero_point, zp)
        and previous.axis == axis
    ):
        return False  # same codes dequantized two ways: leave it to the generic path
    value = dequantize_np(codes, scale, zp, axis)
    quantized[key] = info
    weights_np[key] = value
    weight_of[outs[0]] = key
    known[outs[0]] = value
    return True


def _tensorize(fn: ops.RunFn, positions: list[int]) -> ops.RunFn:
    """Wrap ``fn`` so that Python shape values at ``positions`` arrive as tensors."""
    wanted = frozenset(positions)

    def run(*args: Any) -> Any:
        return fn(
            *[
                shape_ops.to_tensor(a) if i in wanted and a is not None else a
                for i, a in enumerate(args)
            ]
        )

    return run


def _fold(
    fn: ops.RunFn,
    ctx: ops.NodeCtx,
    ins: tuple[str, ...],
    outs: tuple[str, ...],
    known: dict[str, np.ndarray],
) -> None:
    args = [to_torch(known[i]) if i else None for i in ins]
    try:
        with torch.no_grad():
            result = fn(*args)
    except NfdeployError:
        raise
    except Exception as exc:
        raise ctx.error(
            f"could not evaluate on constant inputs ({type(exc).__name__}: {first_line(exc)})."
        ) from exc
    results = result if isinstance(result, tuple) else (result,)
    for name, value in zip(outs, results, strict=False):
        if name:
            known[name] = to_numpy(value)


def _finish(
    *,
    steps: list[Step],
    known: dict[str, np.ndarray],
    weight_of: dict[str, str],
    weights_np: dict[str, np.ndarray],
    quantized: dict[str, QuantizedWeight],
    input_name: str,
    output_name: str,
    input_shape: tuple[int | None, ...],
    input_dtype: np.dtype,
    opset: int,
    ir_version: int,
    state: ops.RuntimeState,
    fixed_batch_one: bool,
    has_qdq: bool,
) -> Plan:
    produced = {input_name}
    for step in steps:
        produced.update(o for o in step.outputs if o)
    if output_name not in produced:
        raise NfdeployError(
            f"the output '{output_name}' does not depend on the input '{input_name}'; "
            "this is not a classifier graph."
        )
    weight_values: dict[str, str] = {}
    constants: dict[str, torch.Tensor] = {}
    consumers: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
    last_use: dict[str, int] = {}
    for index, step in enumerate(steps):
        for pos, name in enumerate(step.inputs):
            if not name:
                continue
            if name in produced:
                last_use[name] = index
            elif name in weight_of:
                weight_values[name] = weight_of[name]
                consumers[weight_of[name]].append((step.op_type, step.name, pos))
            elif name in known:
                if name not in constants:
                    constants[name] = to_torch(known[name])
            else:
                raise NfdeployError(
                    f"{step.op_type} node '{step.name}': input '{name}' is undefined."
                )
    release: dict[int, list[str]] = defaultdict(list)
    for name, last in last_use.items():
        if name not in (output_name, input_name):
            release[last].append(name)
    for index, step in enumerate(steps):
        step.release = tuple(release.get(index, ()))
    used_keys = set(weight_values.values())
    weights = {key: to_torch(weights_np[key]) for key in weights_np if key in used_keys}
    return Plan(
        input_name=input_name,
        output_name=output_name,
        input_shape=input_shape,
        input_dtype=input_dtype,
        opset=opset,
        ir_version=ir_version,
        steps=steps,
        weights=weights,
        weight_values=weight_values,
        constants=constants,
        quantized={k: v for k, v in quantized.items() if k in used_keys},
        consumers=dict(consumers),
        state=state,
        fixed_batch_one=fixed_batch_one,
        has_qdq=has_qdq,
    )
