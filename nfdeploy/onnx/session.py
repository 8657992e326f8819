"""The onnxruntime session factory: every InferenceSession in nfdeploy is built here."""

from __future__ import annotations

import os
from types import MappingProxyType

import onnxruntime as ort

from nfdeploy.errors import NfdeployError

#: --provider -> onnxruntime execution providers, in order of preference (CPU always last)
PROVIDERS = MappingProxyType(
    {
        "cpu": ("CPUExecutionProvider",),
        "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
        "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
    }
)
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
    model: bytes | str | os.PathLike[str],
    *,
    threads: int = 0,
    name: str | None = None,
    providers: tuple[str, ...] = CPU_ONLY,
    optimize: bool = True,
) -> ort.InferenceSession:
    """A session from model bytes (or a path, for external data), at full graph optimization
    unless ``optimize`` is False (QDQ nodes then run literally, as the parity check needs).

    ``name`` (the model's path) starts the error message when onnxruntime refuses the model.
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if optimize
        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    source = model if isinstance(model, bytes) else os.fspath(model)
    try:
        return ort.InferenceSession(source, options, providers=list(providers))
    except Exception as exc:
        what = (
            f"{name}: onnxruntime cannot load it" if name else "onnxruntime cannot load the model"
        )
        raise NfdeployError(f"{what}: {exc}".splitlines()[0]) from None
