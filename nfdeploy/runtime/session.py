"""Batched inference and the cores a process may use (sessions: :mod:`nfdeploy.onnx.session`)."""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort

__all__ = ["available_cores", "run_logits"]


def available_cores() -> int:
    """CPU cores this process may run on (its affinity where the OS tells, else all)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else (os.cpu_count() or 1)


def run_logits(session: ort.InferenceSession, x: np.ndarray, *, batch_size: int) -> np.ndarray:
    """Run ``x`` (N, C, H, W) through a single-input session in batches; returns the first output."""
    name = session.get_inputs()[0].name
    outputs = [
        session.run(None, {name: x[start : start + batch_size]})[0]
        for start in range(0, len(x), batch_size)
    ]
    return np.concatenate(outputs, axis=0)
