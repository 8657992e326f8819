"""The frozen, differentiable torch module that runs a vendor ONNX classifier."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from nfdeploy.errors import NfdeployError
from nfdeploy.torchify.plan import Plan

if TYPE_CHECKING:
    from nfdeploy.torchify.parity import ParityReport


def _buffer_name(prefix: str, value_name: str, taken: set[str]) -> str:
    base = prefix + (re.sub(r"\W", "_", value_name).strip("_")[:48] or "t")
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    taken.add(name)
    return name


class VendorModule(torch.nn.Module):
    """A vendor ONNX classifier as a frozen torch module: gradients reach the input only.

    The module always has inference semantics (BatchNormalization uses running statistics,
    Dropout is the identity), whatever ``train()`` / ``eval()`` says. Every stored tensor is
    a buffer with ``requires_grad=False``; the module has no parameters. Floating constants
    move with ``.to(device)``; integer constants (shapes, axes) stay on the CPU.

    Attributes:
        input_name / output_name: the ONNX graph input and (first) output.
        input_shape: the ONNX input shape, ``None`` for symbolic dimensions.
        opset / ir_version: of the source model.
        is_qdq: the graph has QuantizeLinear / DequantizeLinear nodes (int8 QDQ model).
        source_path / sha256 / parity: set by :func:`nfdeploy.torchify.load_vendor`.
    """

    def __init__(self, plan: Plan) -> None:
        super().__init__()
        self.input_name: str = plan.input_name
        self.output_name: str = plan.output_name
        self.input_shape: tuple[int | None, ...] = plan.input_shape
        self.input_dtype: np.dtype = plan.input_dtype
        self.opset: int = plan.opset
        self.ir_version: int = plan.ir_version
        self.is_qdq: bool = plan.has_qdq
        self.fixed_batch_one: bool = plan.fixed_batch_one
        self.source_path: Path | None = None
        self.sha256: str | None = None
        self.parity: ParityReport | None = None
        self._plan_steps = plan.steps
        self._state = plan.state
        self._quantized = plan.quantized
        self._consumers = plan.consumers

        taken: set[str] = set()
        self._weight_buffers: dict[str, str] = {}  # weight key -> buffer name
        for key, tensor in plan.weights.items():
            bname = _buffer_name("w_", key, taken)
            self.register_buffer(bname, tensor.requires_grad_(False), persistent=True)
            self._weight_buffers[key] = bname
        self._weight_reads: list[tuple[str, str]] = sorted(plan.weight_values.items())
        self._const_buffers: list[tuple[str, str]] = []  # value name -> buffer (floating)
        self._const_cpu: dict[str, torch.Tensor] = {}  # value name -> CPU tensor (integer)
        for name, tensor in plan.constants.items():
            if tensor.is_floating_point():
                bname = _buffer_name("c_", name, taken)
                self.register_buffer(bname, tensor.requires_grad_(False), persistent=False)
                self._const_buffers.append((name, bname))
            else:
                self._const_cpu[name] = tensor
        self._overrides: dict[str, torch.Tensor] = {}
        self.eval()

    # ------------------------------------------------------------------ forward

    def forward(
        self, x: torch.Tensor, overrides: Mapping[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """``overrides``: weights to use for this call only, prepared by
        :meth:`prepare_overrides` (as arguments, torch.compile treats them as inputs rather
        than recompiling for each new weight set)."""
        self._state.batch = int(x.shape[0]) if x.dim() else 1
        buffers = self._buffers
        env: dict[str, torch.Tensor | None] = dict(self._const_cpu)
        for name, bname in self._const_buffers:
            env[name] = buffers[bname]
        if overrides is None:
            overrides = self._overrides
        elif self._overrides:
            overrides = {**self._overrides, **overrides}
        for name, key in self._weight_reads:
            override = overrides.get(key) if overrides else None
            env[name] = override if override is not None else buffers[self._weight_buffers[key]]
        env[self.input_name] = x
        env[""] = None
        for step in self._plan_steps:
            result = step.fn(*[env[i] for i in step.inputs])
            if isinstance(result, tuple):  # multi-output node (lists are shape values)
                for name, value in zip(step.outputs, result, strict=False):
                    if name:
                        env[name] = value
            else:
                env[step.outputs[0]] = result
            for name in step.release:
                del env[name]
        out = env[self.output_name]
        assert out is not None
        return out

    # ------------------------------------------------------------------ weights

    def fault_targets(self) -> dict[str, torch.Tensor]:
        """Stored floating tensors, keyed by the ONNX name that holds them.

        Every floating initializer (and ``Constant``) the forward reads, plus, for QDQ models,
        the dequantized weight keyed by its integer initializer name. The values are the
        module's live buffers (float, ``requires_grad=False``): do not modify them in place;
        use :meth:`weight_overrides`. Which of them are "weights" in a fault model is the
        caller's choice (see :meth:`weight_consumers`).
        """
        targets: dict[str, torch.Tensor] = {}
        for key, bname in self._weight_buffers.items():
            buffer = self._buffers[bname]
            assert buffer is not None
            targets[key] = buffer
        return targets

    def quantized_weights(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, int | None]]:
        """Integer-coded weights (QDQ): name -> (codes, scale, zero_point, axis or None).

        ``codes`` keep their stored dtype (int8 / uint8 weights, int32 biases); the float the
        forward uses is ``(codes - zero_point) * scale`` broadcast along ``axis``.
        """
        return {key: q.as_tuple() for key, q in self._quantized.items()}

    def weight_consumers(self) -> dict[str, list[tuple[str, str, int]]]:
        """Weight key -> [(op_type, node name, input index)] of the nodes that read it."""
        return {key: list(v) for key, v in self._consumers.items()}

    @contextmanager
    def weight_overrides(self, overrides: Mapping[str, torch.Tensor]) -> Iterator[VendorModule]:
        """Temporarily run the forward with some weights replaced (no copy of the module).

        Keys are :meth:`fault_targets` keys; for QDQ weights the tensor replaces the
        dequantized float. Tensors must have the stored shape; they are moved to the
        buffer's device and dtype if needed. Nested overrides stack; the previous state is
        restored exactly on exit, also on exceptions.
        """
        previous = self._overrides
        self._overrides = {**previous, **self.prepare_overrides(overrides)}
        try:
            yield self
        finally:
            self._overrides = previous

    def prepare_overrides(self, overrides: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Check override names and shapes; move each to its buffer's device and dtype."""
        prepared: dict[str, torch.Tensor] = {}
        for key, value in overrides.items():
            bname = self._weight_buffers.get(key)
            if bname is None:
                raise NfdeployError(
                    f"weight override '{key}' is not a weight of this vendor model "
                    f"(see VendorModule.fault_targets(); {len(self._weight_buffers)} known)."
                )
            current = self._buffers[bname]
            assert current is not None
            if not isinstance(value, torch.Tensor):
                value = torch.as_tensor(value)
            if tuple(value.shape) != tuple(current.shape):
                raise NfdeployError(
                    f"weight override '{key}' has shape {tuple(value.shape)}, "
                    f"expected {tuple(current.shape)}."
                )
            prepared[key] = value.to(device=current.device, dtype=current.dtype)
        return prepared

    # ------------------------------------------------------------------ misc

    def train(self, mode: bool = True) -> VendorModule:
        """Recorded for compatibility; the vendor model always computes in inference mode."""
        super().train(mode)
        return self

    def extra_repr(self) -> str:
        shape = ", ".join("?" if d is None else str(d) for d in self.input_shape)
        return (
            f"input={self.input_name}[{shape}], output={self.output_name}, opset={self.opset}, "
            f"nodes={len(self._plan_steps)}, weights={len(self._weight_buffers)}, qdq={self.is_qdq}"
        )
