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
from typing import Any

import numpy as np
import onnx

from nfdeploy.errors import NfdeployError
from nfdeploy.torchify import registry, shape_values
from nfdeploy.torchify.graph import (
    DOMAINS,
    constant_value,
    default_opset,
    graph_input,
    inline_functions,
    is_float,
    node_attrs,
    prune,
    read_initializers,
    to_torch,
    topological,
)
from nfdeploy.torchify.plan import (
    Plan,
    QuantizedWeight,
    Step,
    fold,
    runtime_reads,
    set_releases,
    tensorize,
)
from nfdeploy.torchify.quant import dequantize_np
from nfdeploy.torchify.registry import Converter, NodeCtx, RunFn, RuntimeState

_QUANT_CODE_TYPES = tuple(np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32))
_QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
_SHAPE_OF = ("Shape", "Size")


def build_plan(model: onnx.ModelProto, source: str | None = None) -> Plan:
    """Convert a loaded (and externally-data-resolved) ONNX model into a :class:`Plan`.

    ``source`` names the model in error messages (the file path, when there is one).
    """
    return _Planner(model, source).run()


def _check_domain(node: onnx.NodeProto, label: str) -> None:
    if node.domain in DOMAINS or (node.domain == "com.microsoft" and node.op_type in _QDQ_OPS):
        return
    raise NfdeployError(
        f"{node.op_type} node '{label}': operator domain '{node.domain}' is not supported "
        "(only the default ONNX domain); export without custom/contrib operators."
    )


class _Planner:
    """One walk over the graph's nodes, sorting every value into the groups above."""

    def __init__(self, model: onnx.ModelProto, source: str | None) -> None:
        self.opset = default_opset(model)
        model = inline_functions(model)
        graph = model.graph
        self.model_label = source or (f"graph '{graph.name}'" if graph.name else "the model")
        self.ir_version = int(model.ir_version)
        # every value whose content is known without the input; stored tensors by kind
        self.known, self.source_float, self.source_int = read_initializers(graph)
        self.input_name, self.input_shape, self.input_dtype = graph_input(graph, self.known)
        self.output_name = graph.output[0].name
        self.graph_outputs = {o.name for o in graph.output}
        self.fixed_batch_one = len(self.input_shape) >= 1 and self.input_shape[0] == 1
        nodes = topological(list(graph.node), set(self.known) | {self.input_name})
        self.nodes = prune(nodes, self.output_name)
        self.consumers_of: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for node in self.nodes:
            for name in node.input:
                if name:
                    self.consumers_of[name].append(node)
        self.weight_of: dict[str, str] = {}  # value name -> weight key
        self.weights_np: dict[str, np.ndarray] = {}
        for name in self.source_float:
            self.weight_of[name] = name
            self.weights_np[name] = self.known[name]
        self.quantized: dict[str, QuantizedWeight] = {}
        self.state = RuntimeState()
        self.steps: list[Step] = []
        self.shape_values: set[str] = set()  # runtime values kept as Python ints

    def run(self) -> Plan:
        for index, node in enumerate(self.nodes):
            self._node(node, node.name or f"{node.op_type}_{index}")
        return self._finish()

    def _node(self, node: onnx.NodeProto, label: str) -> None:
        _check_domain(node, label)
        attrs = node_attrs(node, label)
        if node.op_type == "Constant":
            self._constant(node.output[0], constant_value(node, attrs, label))
            return
        outs = tuple(node.output)
        used = tuple(bool(o) and (o in self.consumers_of or o in self.graph_outputs) for o in outs)
        if self._alias(node, used) or self._dequantize_weight(node, attrs):
            return
        self._compute(self._ctx(node, label, attrs, used))

    def _constant(self, name: str, value: np.ndarray) -> None:
        self.known[name] = value
        if is_float(value):
            self.weight_of[name] = name
            self.weights_np[name] = value
            self.source_float.add(name)
        else:
            self.source_int.add(name)

    def _alias(self, node: onnx.NodeProto, used: tuple[bool, ...]) -> bool:
        """Identity (or inference Dropout) of a weight: an alias of the same stored tensor."""
        ins, out = node.input, node.output[0]
        if node.op_type not in ("Identity", "Dropout") or not ins or ins[0] not in self.weight_of:
            return False
        if any(used[1:]):
            return False
        self.weight_of[out] = self.weight_of[ins[0]]
        self.known[out] = self.known[ins[0]]
        return True

    def _ctx(
        self, node: onnx.NodeProto, label: str, attrs: dict[str, Any], used: tuple[bool, ...]
    ) -> NodeCtx:
        ins, outs = tuple(node.input), tuple(node.output)
        return NodeCtx(
            op_type=node.op_type,
            name=label,
            opset=self.opset,
            attrs=attrs,
            inputs=ins,
            consts=tuple(self.known.get(i) if i else None for i in ins),
            outputs_used=used,
            outputs=outs,
            state=self.state,
            fixed_batch_one=self.fixed_batch_one,
            codes_only_to_dequantize=node.op_type == "QuantizeLinear"
            and outs[0] not in self.graph_outputs
            and all(c.op_type == "DequantizeLinear" for c in self.consumers_of.get(outs[0], [])),
            model=self.model_label,
        )

    def _compute(self, ctx: NodeCtx) -> None:
        """A node computed from the input (a step), or from constants only (folded now)."""
        entry = registry.lookup(ctx)
        fn = entry.build(ctx)
        present = [i for i in ctx.inputs if i]
        # overrides keep shapes: the shape of a weight is a constant
        from_weights = any(i in self.weight_of for i in present) and not (
            ctx.op_type in _SHAPE_OF and ctx.inputs[0] in self.known
        )
        if all(i in self.known for i in present) and not from_weights:
            fold(fn, ctx, self.known)
            return
        shape_in = tuple(bool(i) and i in self.shape_values for i in ctx.inputs)
        if not from_weights and self._shape_step(entry, ctx, shape_in, present):
            return
        positions = [p for p, s in enumerate(shape_in) if s and p not in entry.int_inputs]
        self._step(tensorize(fn, positions) if positions else fn, ctx)

    def _shape_step(
        self, entry: Converter, ctx: NodeCtx, shape_in: tuple[bool, ...], present: list[str]
    ) -> bool:
        """Run the node in Python when its inputs are shape values and constants."""
        if ctx.op_type not in _SHAPE_OF and not (
            any(shape_in) and all(i in self.known or i in self.shape_values for i in present)
        ):
            return False
        py_fn = shape_values.build(entry, ctx, shape_in)
        if py_fn is None:
            return False
        self.shape_values.update(o for o in ctx.outputs if o)
        self._step(py_fn, ctx)
        return True

    def _step(self, fn: RunFn, ctx: NodeCtx) -> None:
        self.steps.append(
            Step(fn=fn, op_type=ctx.op_type, name=ctx.name, inputs=ctx.inputs, outputs=ctx.outputs)
        )

    def _dequantize_weight(self, node: onnx.NodeProto, attrs: dict[str, Any]) -> bool:
        """``DequantizeLinear(stored integer codes, constant scale, constant zp)``: a weight."""
        info = (
            self._weight_quantization(node, attrs) if node.op_type == "DequantizeLinear" else None
        )
        if info is None:
            return False
        key, previous = node.input[0], self.quantized.get(node.input[0])
        if previous is not None and not (
            np.array_equal(previous.scale, info.scale)
            and np.array_equal(previous.zero_point, info.zero_point)
            and previous.axis == info.axis
        ):
            return False  # same codes dequantized two ways: leave it to the generic path
        value = dequantize_np(info.codes, info.scale, info.zero_point, info.axis)
        self.quantized[key] = info
        self.weights_np[key] = value
        self.weight_of[node.output[0]] = key
        self.known[node.output[0]] = value
        return True

    def _weight_quantization(
        self, node: onnx.NodeProto, attrs: dict[str, Any]
    ) -> QuantizedWeight | None:
        ins, known = node.input, self.known
        if ins[0] not in self.source_int or not len(ins) > 1 or ins[1] not in known:
            return None
        has_zp = len(ins) > 2 and bool(ins[2])
        if has_zp and ins[2] not in known:
            return None
        if attrs.get("block_size"):
            raise NfdeployError(
                f"DequantizeLinear node '{node.name}': blocked quantization is not supported."
            )
        codes = np.asarray(known[ins[0]])
        if codes.dtype not in _QUANT_CODE_TYPES:
            return None
        scale = np.asarray(known[ins[1]])
        zp = np.asarray(known[ins[2]]) if has_zp else np.zeros((), dtype=codes.dtype)
        axis: int | None = None
        if scale.ndim == 1 and codes.ndim > 0:  # 1-D scale: per-axis quantization
            axis = int(attrs.get("axis", 1)) % codes.ndim
        return QuantizedWeight(codes=codes, scale=scale, zero_point=zp, axis=axis)

    def _finish(self) -> Plan:
        produced = {self.input_name}.union(o for step in self.steps for o in step.outputs if o)
        if self.output_name not in produced:
            raise NfdeployError(
                f"the output '{self.output_name}' does not depend on the input "
                f"'{self.input_name}'; this is not a classifier graph."
            )
        weight_values, constants, consumers = runtime_reads(
            self.steps, produced, self.weight_of, self.known
        )
        set_releases(self.steps, produced, keep=(self.output_name, self.input_name))
        used_keys = set(weight_values.values())
        return Plan(
            input_name=self.input_name,
            output_name=self.output_name,
            input_shape=self.input_shape,
            input_dtype=self.input_dtype,
            opset=self.opset,
            ir_version=self.ir_version,
            steps=self.steps,
            weights={k: to_torch(v) for k, v in self.weights_np.items() if k in used_keys},
            weight_values=weight_values,
            constants=constants,
            quantized={k: v for k, v in self.quantized.items() if k in used_keys},
            consumers=dict(consumers),
            state=self.state,
            fixed_batch_one=self.fixed_batch_one,
            has_qdq=any(n.op_type in _QDQ_OPS for n in self.nodes),
        )
