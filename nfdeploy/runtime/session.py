"""onnxruntime sessions and batched inference."""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort

from nfdeploy.errors import NfdeployError


def available_cores() -> int:
    """CPU cores this process may run on (its affinity where the OS tells, else all)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else (os.cpu_count() or 1)


def make_session(
    model_bytes: bytes, *, threads: int = 0, name: str | None = None
) -> ort.InferenceSession:
    """A CPU session at full graph optimization (safe: faults are baked into the bytes).

    ``name`` (the model's path) starts the error message when onnxruntime refuses the model.
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        what = (
            f"{name}: onnxruntime cannot load it" if name else "onnxruntime cannot load the model"
        )
        raise NfdeployError(f"{what}: {exc}".splitlines()[0]) from None


def run_logits(session: ort.InferenceSession, x: np.ndarray, *, batch_size: int) -> np.ndarray:
    """Run ``x`` (N, C, H, W) through a single-input session in batches; returns the first output."""
    name = session.get_inputs()[0].name
    outputs = [
        session.run(None, {name: x[start : start + batch_size]})[0]
        for start in range(0, len(x), batch_size)
    ]
    return np.concatenate(outputs, axis=0)
