"""Training precision: fp32, or bf16 autocast where the hardware computes bf16 natively.

torch-free, so that the CLI can declare ``--precision`` without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nfdeploy.errors import NfdeployError
from nfdeploy.runs.config import PRECISION_CHOICES, Precision

# lscpu / /proc/cpuinfo flags of CPUs with native bf16 matrix arithmetic.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


__all__ = ["BF16_CPU_FLAGS", "PRECISION_CHOICES", "Precision", "resolve_precision"]


@dataclass(frozen=True)
class PrecisionChoice:
    """What ``--precision`` resolved to on this machine, and why."""

    requested: str
    precision: Precision
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {
            "requested": self.requested,
            "resolved": self.precision.value,
            "reason": self.reason,
        }


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU feature flags the kernel reports (empty where /proc/cpuinfo is absent)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def resolve_precision(
    requested: str, device_type: str, *, flags: set[str] | None = None, cuda_bf16: bool = True
) -> PrecisionChoice:
    """``auto`` -> bf16 on CUDA (where supported) and on CPUs with AMX or AVX-512 bf16."""
    if requested not in PRECISION_CHOICES:
        raise NfdeployError(f"--precision {requested}: use one of {', '.join(PRECISION_CHOICES)}.")
    if requested != "auto":
        return PrecisionChoice(requested, Precision(requested), "asked for")
    if device_type == "cuda":
        if cuda_bf16:
            return PrecisionChoice(requested, Precision.BF16, "auto: CUDA device with bf16")
        return PrecisionChoice(requested, Precision.FP32, "auto: this CUDA device lacks bf16")
    found = sorted(set(BF16_CPU_FLAGS) & (cpu_flags() if flags is None else flags))
    if found:
        return PrecisionChoice(requested, Precision.BF16, f"auto: CPU has {', '.join(found)}")
    return PrecisionChoice(
        requested, Precision.FP32, f"auto: CPU lacks {' and '.join(BF16_CPU_FLAGS)}"
    )
