"""A vendor ONNX file (read by :mod:`nfdeploy.onnx.load`) -> a parity-checked :class:`VendorModule`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from nfdeploy.onnx.load import ModelFile, open_model
from nfdeploy.torchify import parity
from nfdeploy.torchify.convert import build_plan
from nfdeploy.torchify.module import VendorModule


def load_vendor(
    path: str | os.PathLike[str],
    *,
    check_parity: bool = True,
    atol: float = 1e-4,
    rtol: float = 1e-3,
    seed: int = 0,
    qdq_atol: float | None = None,
    parity_input_shape: Sequence[int] | None = None,
    opened: ModelFile | None = None,
) -> VendorModule:
    """Convert the ONNX classifier at ``path`` into a frozen :class:`VendorModule` on the CPU.

    With ``check_parity`` the module is compared with onnxruntime (CPUExecutionProvider) on
    seeded random inputs; a mismatch raises :class:`NfdeployError` with the max abs diff.
    The report lands in ``module.parity``. QDQ (int8) models are compared with an
    unoptimized session (QDQ nodes run literally) within ``qdq_atol`` (default: 2% of the
    reference logits' range, at least ``atol``); the gap to onnxruntime's fused integer
    kernels is recorded, not enforced; see :func:`nfdeploy.torchify.parity.check_parity`.
    ``parity_input_shape`` gives a concrete input shape when the model has symbolic
    dimensions other than the batch. ``opened`` is the file already read (and hashed) by
    :func:`nfdeploy.onnx.load.open_model`, so a caller that has it does not read it again.
    """
    p = Path(path)
    model_file = opened or open_model(p)
    module = VendorModule(build_plan(model_file.proto, source=str(p)))
    module.source_path = p
    module.sha256 = model_file.sha256
    if check_parity:
        module.parity = parity.check_parity(
            module,
            p,
            atol=atol,
            rtol=rtol,
            seed=seed,
            qdq_atol=qdq_atol,
            input_shape=parity_input_shape,
        )
    return module
