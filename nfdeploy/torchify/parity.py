"""Compare a :class:`VendorModule` with onnxruntime on seeded random inputs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nfdeploy.errors import NfdeployError
from nfdeploy.onnx.session import make_session
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
    return make_session(path, threads=1, name=f"{path} (parity check)", optimize=optimize)


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
    fused = _FusedGap(_session(path, optimize=True)) if qdq else None
    shape = concrete_shape(module, input_shape)
    declared_batch = module.input_shape[0] if module.input_shape else None
    batches = _batches(declared_batch)
    per_sample = declared_batch == 1
    rng = np.random.default_rng(seed)
    worst, used_atol = 0.0, atol
    for batch in batches:
        x = _random_input(rng, module.input_dtype, [batch, *shape[1:]])
        ref = _run_ort(session, module.input_name, x, per_sample)
        got = _run_module(module, x, batch)
        _check_outputs(got, ref, batch)
        if qdq:
            spread = float(ref.max() - ref.min()) if ref.size else 0.0
            used_atol = qdq_atol if qdq_atol is not None else max(atol, QDQ_RELATIVE_ATOL * spread)
        worst = max(worst, _compare(got, ref, used_atol, rtol, batch))
        if fused is not None:
            fused.add(got, _run_ort(fused.session, module.input_name, x, per_sample))
    return ParityReport(
        max_abs_diff=worst,
        atol=used_atol,
        rtol=rtol,
        batches=tuple(batches),
        qdq=qdq,
        reference="onnxruntime CPU, graph optimizations off" if qdq else "onnxruntime CPU",
        fused_max_abs_diff=fused.worst if fused is not None else None,
        fused_argmax_agreement=fused.agreement() if fused is not None else None,
    )


def _batches(declared_batch: int | None) -> list[int]:
    """Batch 1 and 2 for a dynamic batch; 2 (run per sample in onnxruntime) for a fixed 1."""
    if declared_batch is None:
        return [1, 2]
    return [2] if declared_batch == 1 else [int(declared_batch)]


def _random_input(rng: np.random.Generator, dtype: np.dtype, shape: list[int]) -> np.ndarray:
    if dtype.kind in "iub":  # e.g. raw uint8 pixels
        return rng.integers(0, 2 if dtype.kind == "b" else 128, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def _run_module(module: VendorModule, x: np.ndarray, batch: int) -> np.ndarray:
    device = next(iter(module.buffers()), torch.empty(0)).device
    try:
        with torch.no_grad():
            return module(torch.from_numpy(x).to(device)).detach().cpu().float().numpy()
    except NfdeployError:
        raise
    except Exception as exc:
        raise NfdeployError(
            f"parity check failed: the converted module raises at batch {batch} "
            f"({first_line(exc)}); please report it with the model's exporter."
        ) from exc


def _check_outputs(got: np.ndarray, ref: np.ndarray, batch: int) -> None:
    if got.shape != ref.shape:
        raise NfdeployError(
            f"parity check failed: output shape {list(got.shape)} vs onnxruntime "
            f"{list(ref.shape)} at batch {batch}."
        )
    if np.isfinite(ref).all() and not np.isfinite(got).all():
        raise NfdeployError(
            f"parity check failed: the module produced non-finite outputs at batch {batch}."
        )


def _compare(got: np.ndarray, ref: np.ndarray, atol: float, rtol: float, batch: int) -> float:
    """The max abs diff; raises if any element is outside ``atol + rtol * |ref|``."""
    diff = np.abs(got - ref)
    max_diff = float(diff.max()) if diff.size else 0.0
    if np.any(diff > atol + rtol * np.abs(ref)):
        raise NfdeployError(
            f"parity check failed vs onnxruntime: max abs diff {max_diff:.3g} at batch {batch} "
            f"(atol {atol:.3g}, rtol {rtol:.3g}); the converter may mis-handle an "
            "operator here; please report it with the model's exporter."
        )
    return max_diff


class _FusedGap:
    """The (informational) gap to onnxruntime's fused integer kernels, for QDQ models."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.worst, self.agree, self.total = 0.0, 0, 0

    def add(self, got: np.ndarray, ref_fused: np.ndarray) -> None:
        if ref_fused.shape != got.shape or not got.size:
            return
        self.worst = max(self.worst, float(np.abs(got - ref_fused).max()))
        if got.ndim == 2:
            self.agree += int((got.argmax(1) == ref_fused.argmax(1)).sum())
            self.total += got.shape[0]

    def agreement(self) -> float | None:
        return self.agree / self.total if self.total else None
