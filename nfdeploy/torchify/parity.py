"""Compare a :class:`VendorModule` with onnxruntime on seeded random inputs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nfdeploy.errors import NfdeployError
from nfdeploy.torchify.graph import first_line
from nfdeploy.torchify.module import VendorModule

#: QDQ models are checked against onnxruntime with graph optimizations off, which runs the
#: QuantizeLinear / DequantizeLinear nodes literally in float, as the module does; a rounding
#: tie that falls the other way moves one activation by one quantization step, so the
#: absolute tolerance is this fraction of the reference logits' range (at least ``atol``).
QDQ_RELATIVE_ATOL = 0.02


@dataclass(frozen=True)
class ParityReport:
    """Outcome of a parity check (attached to the module as ``VendorModule.parity``).

    For QDQ models ``fused_max_abs_diff`` / ``fused_argmax_agreement`` compare with
    onnxruntime's default (optimized) session, which fuses QDQ groups into integer kernels
    (QLinearConv, ...) with their own requantization rounding: that is what deployment runs,
    and the gap is informational (training emulates the QDQ graph in float), never a failure.
    """

    max_abs_diff: float
    atol: float
    rtol: float
    batches: tuple[int, ...]
    qdq: bool
    reference: str
    fused_max_abs_diff: float | None = None
    fused_argmax_agreement: float | None = None


def _session(path: Path, *, optimize: bool = True) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise NfdeployError(
            f"{path}: onnxruntime cannot load it for the parity check ({first_line(exc)}); "
            "check that onnxruntime runs this model."
        ) from exc


def concrete_shape(module: VendorModule, override: Sequence[int] | None) -> list[int]:
    if override is not None:
        return [int(d) for d in override]
    shape = list(module.input_shape)
    if not shape:
        raise NfdeployError(
            "the model input has no declared shape; re-export it with a fixed C x H x W input."
        )
    if any(d is None for d in shape[1:]):
        dims = ", ".join("?" if d is None else str(d) for d in shape)
        raise NfdeployError(
            f"the model input [{dims}] has open dimensions other than the batch; re-export it "
            "with a fixed C x H x W input (only the batch may be dynamic)."
        )
    return [1 if shape[0] is None else int(shape[0])] + [int(d) for d in shape[1:] if d is not None]


def _run_ort(session: Any, name: str, x: np.ndarray, per_sample: bool) -> np.ndarray:
    try:
        if per_sample:
            parts = [session.run(None, {name: x[i : i + 1]})[0] for i in range(x.shape[0])]
            return np.asarray(np.concatenate(parts, axis=0), dtype=np.float32)
        return np.asarray(session.run(None, {name: x})[0], dtype=np.float32)
    except Exception as exc:
        raise NfdeployError(
            f"onnxruntime fails on the parity input {list(x.shape)} ({first_line(exc)}); check "
            "that the model runs in onnxruntime at this input shape."
        ) from exc


def check_parity(
    module: VendorModule,
    path: str | Path,
    *,
    atol: float = 1e-4,
    rtol: float = 1e-3,
    seed: int = 0,
    qdq_atol: float | None = None,
    input_shape: Sequence[int] | None = None,
) -> ParityReport:
    """Raise :class:`NfdeployError` unless ``module`` matches onnxruntime on random inputs.

    Inputs are standard-normal (small non-negative integers for integer inputs), seeded by
    ``seed``, on the module's device. A dynamic batch is checked at batch 1 and
    2; a batch fixed at 1 is checked by running the module on a batch of 2 against two
    single-sample onnxruntime runs (the module must work for any batch). Elementwise
    criterion: ``|torch - ort| <= atol + rtol * |ort|``; QDQ models use ``qdq_atol``
    (default: ``QDQ_RELATIVE_ATOL`` x the reference logits' range, at least ``atol``) against
    an unoptimized session, see :data:`QDQ_RELATIVE_ATOL` and :class:`ParityReport`.
    """
    path = Path(path)
    qdq = module.is_qdq
    session = _session(path, optimize=not qdq)
    fused = _session(path, optimize=True) if qdq else None
    shape = concrete_shape(module, input_shape)
    declared_batch = module.input_shape[0] if module.input_shape else None
    if declared_batch is None:
        batches = [1, 2]
    elif declared_batch == 1:
        batches = [2]
    else:
        batches = [int(declared_batch)]
    per_sample = declared_batch == 1
    rng = np.random.default_rng(seed)
    dtype = module.input_dtype
    device = next(iter(module.buffers()), torch.empty(0)).device
    worst, used_atol = 0.0, atol
    fused_worst, agree, total = 0.0, 0, 0
    for batch in batches:
        if dtype.kind in "iub":  # e.g. raw uint8 pixels
            x = rng.integers(0, 2 if dtype.kind == "b" else 128, [batch, *shape[1:]]).astype(dtype)
        else:
            x = rng.standard_normal([batch, *shape[1:]]).astype(dtype)
        ref = _run_ort(session, module.input_name, x, per_sample)
        try:
            with torch.no_grad():
                got = module(torch.from_numpy(x).to(device)).detach().cpu().float().numpy()
        except NfdeployError:
            raise
        except Exception as exc:
            raise NfdeployError(
                f"parity check failed: the converted module raises at batch {batch} "
                f"({first_line(exc)}); please report it with the model's exporter."
            ) from exc
        if got.shape != ref.shape:
            raise NfdeployError(
                f"parity check failed: output shape {list(got.shape)} vs onnxruntime "
                f"{list(ref.shape)} at batch {batch}."
            )
        if np.isfinite(ref).all() and not np.isfinite(got).all():
            raise NfdeployError(
                f"parity check failed: the module produced non-finite outputs at batch {batch}."
            )
        if qdq:
            spread = float(ref.max() - ref.min()) if ref.size else 0.0
            used_atol = qdq_atol if qdq_atol is not None else max(atol, QDQ_RELATIVE_ATOL * spread)
        diff = np.abs(got - ref)
        max_diff = float(diff.max()) if diff.size else 0.0
        worst = max(worst, max_diff)
        if np.any(diff > used_atol + rtol * np.abs(ref)):
            raise NfdeployError(
                f"parity check failed vs onnxruntime: max abs diff {max_diff:.3g} at batch {batch} "
                f"(atol {used_atol:.3g}, rtol {rtol:.3g}); the converter may mis-handle an "
                "operator here; please report it with the model's exporter."
            )
        if fused is not None:
            ref_fused = _run_ort(fused, module.input_name, x, per_sample)
            if ref_fused.shape == got.shape and got.size:
                fused_worst = max(fused_worst, float(np.abs(got - ref_fused).max()))
                if got.ndim == 2:
                    agree += int((got.argmax(1) == ref_fused.argmax(1)).sum())
                    total += got.shape[0]
    return ParityReport(
        max_abs_diff=worst,
        atol=used_atol,
        rtol=rtol,
        batches=tuple(batches),
        qdq=qdq,
        reference="onnxruntime CPU, graph optimizations off" if qdq else "onnxruntime CPU",
        fused_max_abs_diff=fused_worst if qdq else None,
        fused_argmax_agreement=(agree / total if total else None) if qdq else None,
    )
