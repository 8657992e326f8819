"""Reading a graph: its opset, and an index of initializers, constants, producers, consumers."""

from __future__ import annotations

from collections import defaultdict
from functools import cached_property

import numpy as np
import onnx
from onnx import numpy_helper

DEFAULT_DOMAINS = ("", "ai.onnx")


def opset_version(model: onnx.ModelProto, *, default: int = 0) -> int:
    """The default-domain opset a model imports (``default`` when it imports none)."""
    versions = [o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS]
    return max(versions, default=default)


class GraphIndex:
    """Lookups over one (top-level) graph, built once."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.initializers = {init.name: init for init in model.graph.initializer}
        self.producer = {out: node for node in model.graph.node for out in node.output if out}

    @cached_property
    def consumers(self) -> dict[str, list[onnx.NodeProto]]:
        users: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for node in self.model.graph.node:
            for name in node.input:
                if name:
                    users[name].append(node)
        return dict(users)

    @cached_property
    def constants(self) -> dict[str, np.ndarray]:
        """Initializers and Constant-node outputs, as arrays."""
        values = {name: numpy_helper.to_array(t) for name, t in self.initializers.items()}
        for node in self.model.graph.node:
            if node.op_type == "Constant" and node.output:
                value = _constant_value(node)
                if value is not None:
                    values[node.output[0]] = value
        return values


def _constant_value(node: onnx.NodeProto) -> np.ndarray | None:
    for attr in node.attribute:
        if attr.name == "value":
            return numpy_helper.to_array(attr.t)
        if attr.name in ("value_float", "value_int"):
            return np.asarray(onnx.helper.get_attribute_value(attr))
        if attr.name in ("value_floats", "value_ints"):
            return np.asarray(list(onnx.helper.get_attribute_value(attr)))
    return None
