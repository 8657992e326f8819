"""Which operators hold weights, in which inputs: one table for fault injection and energy."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class WeightOp:
    """Where an operator reads its activation, weight and bias, and who handles it."""

    activation: int
    weight: int
    bias: int | None
    kind: str  # "conv" (a kernel slides over the input) or "matmul"
    faultable: bool  # fault injection finds its weights (float, or int8 via DequantizeLinear)


WEIGHT_OPS = MappingProxyType(
    {
        "Conv": WeightOp(0, 1, 2, "conv", faultable=True),
        "ConvTranspose": WeightOp(0, 1, 2, "conv", faultable=True),
        "Gemm": WeightOp(0, 1, 2, "matmul", faultable=True),
        "MatMul": WeightOp(0, 1, None, "matmul", faultable=True),
        # QOperator-format int8 ops: counted by the energy model, not injected into
        "ConvInteger": WeightOp(0, 1, None, "conv", faultable=False),
        "QLinearConv": WeightOp(0, 3, 8, "conv", faultable=False),
        "MatMulInteger": WeightOp(0, 1, None, "matmul", faultable=False),
        "QLinearMatMul": WeightOp(0, 3, None, "matmul", faultable=False),
    }
)
#: The operators whose weights fault injection targets, in the table's order.
FAULTABLE_OPS = tuple(op for op, spec in WEIGHT_OPS.items() if spec.faultable)
