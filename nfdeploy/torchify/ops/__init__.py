"""ONNX operators on torch tensors, one module per operator family.

Importing this package registers every converter in :mod:`nfdeploy.torchify.registry`.
Each module decorates its builders with ``@converter(op_type, opsets=..., int_inputs=...)``
and, where shape arithmetic can stay in Python, ``@shape_variant(op_type)``. Work that
depends only on attributes or constants (pads, axes, target shapes, ...) happens once in
the builder, so the runtime functions are plain torch calls. Shapes that depend on the
runtime input (``Shape`` chains) are Python values or CPU int64 tensors, so reading them
back never synchronises an accelerator.

Adding an operator: write its builder in the family module it belongs to (or a new module
listed below); nothing else changes.
"""

from nfdeploy.torchify.ops import (
    activations,
    cast,
    conv,
    elementwise,
    expand,
    indexing,
    linear,
    normalization,
    pooling,
    quantize,
    reduce,
    shape,
)

__all__ = [
    "activations",
    "cast",
    "conv",
    "elementwise",
    "expand",
    "indexing",
    "linear",
    "normalization",
    "pooling",
    "quantize",
    "reduce",
    "shape",
]
