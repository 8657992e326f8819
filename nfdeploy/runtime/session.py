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


# --provider -> onnxruntime execution providers, in order of preference (CPU always last)
PROVIDERS: dict[str, tuple[str, ...]] = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}
CPU_ONLY = PROVIDERS["cpu"]


def resolve_providers(requested: str) -> tuple[str, ...]:
    """``--provider``: cpu, cuda, tensorrt, or auto (the first of tensorrt, cuda, cpu present)."""
    available = set(ort.get_available_providers())
    if requested == "auto":
        for name in ("tensorrt", "cuda", "cpu"):
            if PROVIDERS[name][0] in available:
                return PROVIDERS[name]
    if requested not in PROVIDERS:
        raise NfdeployError(f"--provider {requested}: use cpu, cuda, tensorrt or auto.")
    if PROVIDERS[requested][0] not in available:
        raise NfdeployError(
            f"--provider {requested}: this onnxruntime has no {PROVIDERS[requested][0]} "
            f"(it has {', '.join(sorted(available))}); install onnxruntime-gpu, or use "
            "--provider cpu."
        )
    return PROVIDERS[requested]


def make_session(
    model_bytes: bytes,
    *,
    threads: int = 0,
    name: str | None = None,
    providers: tuple[str, ...] = CPU_ONLY,
) -> ort.InferenceSession:
    """A session at full graph optimization (safe: faults are baked into the bytes).

    ``name`` (the model's path) starts the error message when onnxruntime refuses the model.
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(model_bytes, options, providers=list(providers))
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
