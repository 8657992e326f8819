"""The execution plan :class:`VendorModule` runs, and the pieces that finish one."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from nfdeploy.errors import NfdeployError
from nfdeploy.torchify import shape_values
from nfdeploy.torchify.graph import first_line, to_numpy, to_torch
from nfdeploy.torchify.registry import NodeCtx, RunFn, RuntimeState


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
    fn: RunFn
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
    state: RuntimeState
    fixed_batch_one: bool
    has_qdq: bool  # QuantizeLinear / DequantizeLinear nodes (weights or activations)


def runtime_reads(
    steps: list[Step],
    produced: set[str],
    weight_of: dict[str, str],
    known: dict[str, np.ndarray],
) -> tuple[dict[str, str], dict[str, torch.Tensor], dict[str, list[tuple[str, str, int]]]]:
    """What the steps read besides produced values: weights (by key), and constants."""
    weight_values: dict[str, str] = {}
    constants: dict[str, torch.Tensor] = {}
    consumers: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
    for step in steps:
        for pos, name in enumerate(step.inputs):
            if not name or name in produced:
                continue
            if name in weight_of:
                weight_values[name] = weight_of[name]
                consumers[weight_of[name]].append((step.op_type, step.name, pos))
            elif name in known:
                if name not in constants:
                    constants[name] = to_torch(known[name])
            else:
                raise NfdeployError(
                    f"{step.op_type} node '{step.name}': input '{name}' is undefined."
                )
    return weight_values, constants, consumers


def set_releases(steps: list[Step], produced: set[str], keep: tuple[str, ...]) -> None:
    """Each step drops the produced values it is the last to read (except ``keep``)."""
    last_use = {
        name: index
        for index, step in enumerate(steps)
        for name in step.inputs
        if name and name in produced
    }
    release: dict[int, list[str]] = defaultdict(list)
    for name, last in last_use.items():
        if name not in keep:
            release[last].append(name)
    for index, step in enumerate(steps):
        step.release = tuple(release.get(index, ()))


def tensorize(fn: RunFn, positions: list[int]) -> RunFn:
    """Wrap ``fn`` so that Python shape values at ``positions`` arrive as tensors."""
    wanted = frozenset(positions)

    def run(*args: Any) -> Any:
        return fn(
            *[
                shape_values.to_tensor(a) if i in wanted and a is not None else a
                for i, a in enumerate(args)
            ]
        )

    return run


def fold(fn: RunFn, ctx: NodeCtx, known: dict[str, np.ndarray]) -> None:
    """Evaluate a node whose inputs are all constants, once, into ``known``."""
    args = [to_torch(known[i]) if i else None for i in ctx.inputs]
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
    for name, value in zip(ctx.outputs, results, strict=False):
        if name:
            known[name] = to_numpy(value)
