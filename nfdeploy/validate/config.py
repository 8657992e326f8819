"""ValidateConfig: every option of one validation run, typed, declared once."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nfdeploy.errors import NfdeployError
from nfdeploy.faults.onnx_weights import TensorSelection
from nfdeploy.faults.spec import DEFAULT_FAULT_MODEL, EVAL_SEED_START, FaultModel
from nfdeploy.validate.pool import Backend


@dataclass(frozen=True)
class ValidateConfig:
    """What `nfdeploy validate` runs; the CLI builds it once (``config_from_cli``)."""

    model: str | Path
    data: str
    bers: tuple[float, ...]
    voltages: tuple[float, ...] = ()  # what --voltage said, when it set the BERs
    generators: tuple[str, ...] = ()
    trials: int = 10
    seed: int = EVAL_SEED_START
    fault_model: FaultModel = DEFAULT_FAULT_MODEL
    storage: str = "auto"
    bit_positions: tuple[int, ...] | None = None
    chip_map: Path | None = None
    nested: bool = False
    selection: TensorSelection = field(default_factory=TensorSelection)
    faulty_generator: bool = False
    preprocess: str | None = None
    split: str = "test"
    limit: int | None = None
    threads: int = 0
    batch_size: int = 256
    workers: int = 1
    backend: Backend = Backend.LOCAL
    ray_address: str | None = None
    provider: str = "cpu"
    progress: bool = True

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise what library callers pass loosely
        set_(self, "bers", tuple(float(b) for b in self.bers))
        set_(self, "generators", tuple(str(g) for g in self.generators))
        set_(self, "fault_model", FaultModel(self.fault_model))
        set_(self, "backend", Backend(self.backend))
        for name, value, low, hint in (
            ("--workers", self.workers, 1, "need at least 1"),
            ("--trials", self.trials, 1, "need at least 1 trial"),
            ("--batch-size", self.batch_size, 1, "need at least 1"),
            ("--threads", self.threads, 0, "use 0 (all cores) or more"),
        ):
            if value < low:
                raise NfdeployError(f"{name} {value}: {hint}.")
        if not self.bers:
            raise NfdeployError("--ber: give at least one bit error rate, e.g. --ber 0.01.")

    @property
    def seeds_count(self) -> int:
        """Trials per BER (a chip map is one fixed chip: one trial)."""
        return 1 if self.fault_model is FaultModel.CHIP_MAP else self.trials
