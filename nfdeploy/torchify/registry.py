"""The one table of ONNX operators the converter implements.

Each operator family in :mod:`nfdeploy.torchify.ops` registers its builders here::

    @converter("Reshape", int_inputs=(1,))       # every opset
    def reshape(ctx: NodeCtx) -> RunFn: ...

    @converter("Clip", opsets=(1, 10))           # attributes min / max
    @converter("Clip", opsets=(11, None))        # inputs min / max

A *builder* receives a :class:`NodeCtx` (attributes parsed, the model's opset, the plan-time
value of every constant input) and returns the runtime function ``fn(*inputs)``.
``int_inputs`` names the inputs the runtime function reads as integer lists (shapes, axes,
pads): a Python shape value (see :mod:`nfdeploy.torchify.shape_values`) is passed there as
is, and as a tensor anywhere else. :func:`shape_variant` adds the Python variant of an
operator, used while every input is a shape value or a constant.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from nfdeploy.errors import NfdeployError

RunFn = Callable[..., Any]
Builder = Callable[["NodeCtx"], RunFn]
PyBuilder = Callable[["NodeCtx", tuple[bool, ...]], RunFn | None]
Opsets = tuple[int, int | None]

_QOPERATOR_OPS = ("ConvInteger", "MatMulInteger", "DynamicQuantizeLinear", "QGemm")


@dataclass
class RuntimeState:
    """Per-forward facts the operators may read (set by ``VendorModule.forward``).

    Operator closures hold this object, so copies of a module share it (``deepcopy`` returns
    the same instance); ``forward`` sets it before running any operator.
    """

    batch: int = 1

    def __deepcopy__(self, memo: dict[int, Any]) -> RuntimeState:
        return self


@dataclass
class NodeCtx:
    """What a builder knows about one node at conversion time."""

    op_type: str
    name: str
    opset: int
    attrs: dict[str, Any]
    inputs: tuple[str, ...]
    consts: tuple[np.ndarray | None, ...]
    outputs_used: tuple[bool, ...]
    outputs: tuple[str, ...] = ()
    state: RuntimeState = field(default_factory=RuntimeState)
    fixed_batch_one: bool = False
    codes_only_to_dequantize: bool = False
    model: str = "the model"

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)

    def has(self, i: int) -> bool:
        return i < len(self.inputs) and self.inputs[i] != ""

    def const(self, i: int) -> np.ndarray | None:
        return self.consts[i] if self.has(i) else None

    def const_ints(self, i: int) -> list[int] | None:
        value = self.const(i)
        return None if value is None else [int(v) for v in np.asarray(value).reshape(-1)]

    def error(self, message: str) -> NfdeployError:
        return NfdeployError(f"{self.op_type} node '{self.name}': {message}")


@dataclass(frozen=True)
class Converter:
    """One registry entry: how to convert ``op_type`` at the opsets ``opsets`` (inclusive)."""

    op_type: str
    opsets: Opsets
    build: Builder
    int_inputs: frozenset[int] = frozenset()
    build_shape: PyBuilder | None = None

    def covers(self, opset: int) -> bool:
        lo, hi = self.opsets
        return lo <= opset and (hi is None or opset <= hi)


_REGISTRY: dict[str, list[Converter]] = {}


def _overlap(a: Opsets, b: Opsets) -> bool:
    return (a[1] is None or b[0] <= a[1]) and (b[1] is None or a[0] <= b[1])


def _add(entry: Converter) -> None:
    entries = _REGISTRY.setdefault(entry.op_type, [])
    if any(_overlap(e.opsets, entry.opsets) for e in entries):
        raise ValueError(f"{entry.op_type} is registered twice for opsets {entry.opsets}")
    entries.append(entry)


def converter(
    *op_types: str, opsets: Opsets = (1, None), int_inputs: tuple[int, ...] = ()
) -> Callable[[Builder], Builder]:
    """Register the decorated builder for ``op_types`` at ``opsets`` (``None``: no upper end)."""

    def deco(fn: Builder) -> Builder:
        for op_type in op_types:
            _add(Converter(op_type, opsets, fn, frozenset(int_inputs)))
        return fn

    return deco


def shape_variant(*op_types: str) -> Callable[[PyBuilder], PyBuilder]:
    """Register the decorated builder as the Python shape-value variant of ``op_types``.

    It returns ``None`` for cases it cannot handle in Python (the node then runs in torch).
    """

    def deco(fn: PyBuilder) -> PyBuilder:
        for op_type in op_types:
            if op_type not in _REGISTRY:
                raise ValueError(f"register the torch converter of {op_type} first")
            _REGISTRY[op_type] = [replace(e, build_shape=fn) for e in _REGISTRY[op_type]]
        return fn

    return deco


def _table() -> dict[str, list[Converter]]:
    """The registry, after importing every operator family (importing ``ops`` fills it)."""
    importlib.import_module("nfdeploy.torchify.ops")
    return _REGISTRY


def supported() -> list[tuple[str, Opsets]]:
    """Every (op type, opset range) entry, sorted."""
    return sorted(
        ((e.op_type, e.opsets) for entries in _table().values() for e in entries),
        key=lambda item: (item[0], item[1][0]),
    )


def supported_ops() -> list[str]:
    """Sorted names of every ONNX operator this converter implements (plus ``Constant``)."""
    return sorted({*_table(), "Constant"})


def int_consumers() -> frozenset[tuple[str, int]]:
    """(op type, input index) pairs whose runtime function takes a Python list of ints."""
    return frozenset(
        (e.op_type, i) for entries in _table().values() for e in entries for i in e.int_inputs
    )


def shape_value_ops() -> list[str]:
    """Sorted names of the operators that have a Python shape-value variant."""
    return sorted(op for op, entries in _table().items() if entries[0].build_shape)


def _ranges(entries: list[Converter]) -> str:
    return ", ".join(f"{lo}-{hi or 'latest'}" for lo, hi in sorted(e.opsets for e in entries))


def lookup(ctx: NodeCtx) -> Converter:
    """The entry for ``ctx``'s op type at its opset; a one-line NfdeployError if none."""
    entries = _table().get(ctx.op_type, [])
    for entry in entries:
        if entry.covers(ctx.opset):
            return entry
    where = f"{ctx.op_type} node '{ctx.name}' in {ctx.model} (opset {ctx.opset})"
    if entries:
        raise NfdeployError(
            f"{where}: not supported at this opset (supported at opsets {_ranges(entries)}); "
            "re-export the model at a supported opset."
        )
    if ctx.op_type.startswith("QLinear") or ctx.op_type in _QOPERATOR_OPS:
        raise NfdeployError(
            f"{where}: quantized-operator (QOperator) models are not supported; quantize the "
            "float model with onnxruntime.quantization.quantize_static(..., "
            "quant_format=QuantFormat.QDQ)."
        )
    raise NfdeployError(
        f"{where}: operator not supported by the nfdeploy ONNX->torch converter. Try "
        "re-exporting the model at another opset, simplifying it (onnxsim / constant folding), "
        f"or replacing the layer. Supported: {', '.join(supported_ops())}."
    )
