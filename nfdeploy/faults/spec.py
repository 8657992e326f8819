"""FaultSpec: the one definition of "BER" used by training and validation alike."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from nfdeploy.errors import NfdeployError

# Training draws pattern seeds from [0, 30000); evaluation starts at 50000 (as in the paper).
TRAIN_SEED_RANGE = (0, 30_000)
EVAL_SEED_START = 50_000
#: The largest --seed anywhere: numpy's SeedSequence, torch.manual_seed and the kernel's
#: 64-bit counter all take 0 .. 2**63 - 1 (and trial seeds seed + k stay below 2**64).
MAX_SEED = 2**63 - 1


class FaultModel(str, Enum):
    FLIP = "flip"
    STUCK_AT = "stuck-at"
    CHIP_MAP = "chip-map"
    REF_TILED = "ref-tiled"


#: The one default of train, validate and sensitivity: the reference code's "p BER".
DEFAULT_FAULT_MODEL = FaultModel.STUCK_AT
#: train draws fresh patterns per seed; a chip map is one fixed chip, for validation only
TRAINABLE_FAULT_MODELS = tuple(m for m in FaultModel if m is not FaultModel.CHIP_MAP)


class Storage(str, Enum):
    INT8_TENSOR = "int8-tensor"
    INT8_CHANNEL = "int8-channel"
    QDQ = "qdq"
    FP16 = "fp16"
    FP32 = "fp32"


DEFINITIONS = {
    FaultModel.FLIP: "flip: each stored bit flips independently with probability p",
    FaultModel.STUCK_AT: (
        "stuck-at: each bit cell is faulty with probability p, stuck at 0 or 1 with "
        "probability 1/2 each (about p/2 of bits change; reference-compatible '1% BER')"
    ),
    FaultModel.CHIP_MAP: "chip-map: a fixed per-cell stuck-at map loaded from a file, the same every trial",
    FaultModel.REF_TILED: (
        "ref-tiled: the NeuralFuse reference's map of 8192 x 128 stuck-at cells per trial seed "
        "(a cell is faulty iff its numpy RandomState(seed) uniform is < p, and then stuck at 1 iff "
        "its RandomState(seed + 1) uniform is < 1/2, else at 0), tiled over each tensor from the "
        "map's start: with k = 128 / (bits per element) elements per map row, element i (C order) "
        "uses row (i // k**2) mod 8192, slot i mod k (its bit j = cell slot * bits + j), so "
        "faults repeat every k elements within each run of k**2, and every layer gets the same "
        "cells; nested across p for a seed"
    ),
}

#: Sentence a nested flip / stuck-at spec adds to its definition (ref-tiled is nested anyway).
NESTED_DEFINITION = (
    "nested: for a trial seed the faulty cells at a lower p are a subset of those at a higher p "
    "(every rate still exactly i.i.d.), and a faulty cell's stuck value does not depend on p"
)

STORAGE_DEFINITIONS = {
    Storage.INT8_TENSOR: "symmetric per-tensor int8, scale = max|W|/127, two's complement codes",
    Storage.INT8_CHANNEL: "symmetric per-output-channel int8, scale_c = max|W_c|/127",
    Storage.QDQ: "int8 initializers of a QDQ model, flipped as stored",
    Storage.FP16: "IEEE float16 bits",
    Storage.FP32: "IEEE float32 bits",
}


def parse_bit_positions(text: str | None) -> tuple[int, ...] | None:
    """'7' -> (7,), '6-7' -> (6, 7), '0,7' -> (0, 7); None or 'all' -> None (all bits)."""
    if text is None or text.strip().lower() in ("", "all"):
        return None
    positions: set[int] = set()
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            positions.update(range(int(low), int(high or low) + 1))
    except ValueError:
        raise NfdeployError(f"--bits {text!r}: use positions like '7', '6-7' or '0,7'.") from None
    if not positions or min(positions) < 0 or max(positions) > 7:
        raise NfdeployError(f"--bits {text!r}: bit positions are 0 (LSB) to 7 (MSB) within a byte.")
    return tuple(sorted(positions))


@dataclass(frozen=True)
class FaultSpec:
    """What is stored, how it fails, and at what rate."""

    model: FaultModel = FaultModel.FLIP
    ber: float = 0.0
    storage: Storage = Storage.INT8_TENSOR
    bit_positions: tuple[int, ...] | None = None
    chip_map: Path | None = field(default=None)
    nested: bool = False  # faults at a lower BER a subset of those at a higher one (same seed)

    def __post_init__(self) -> None:
        if not (isinstance(self.ber, float | int) and 0.0 <= self.ber <= 1.0) or math.isnan(
            self.ber
        ):
            raise NfdeployError(
                f"--ber {self.ber}: a bit error rate is a number in [0, 1], e.g. 0.01."
            )
        if self.model is FaultModel.CHIP_MAP and self.chip_map is None:
            raise NfdeployError(
                "--fault-model chip-map needs --chip-map FILE (see `nfdeploy chipmap`)."
            )
        if self.nested and self.model is FaultModel.CHIP_MAP:
            raise NfdeployError(
                "--nested: a chip map has no rate to nest; drop --nested or use flip, stuck-at "
                "or ref-tiled."
            )

    @property
    def bit_mask(self) -> int:
        if self.bit_positions is None:
            return 0xFF
        return sum(1 << bit for bit in self.bit_positions)

    @property
    def is_nested(self) -> bool:
        """Whether the faults at a lower rate are a subset of those at a higher one."""
        return self.nested or self.model is FaultModel.REF_TILED

    def describe(self) -> str:
        bits = "all bits" if self.bit_positions is None else f"bits {list(self.bit_positions)}"
        rate = (
            f"chip map {self.chip_map}"
            if self.model is FaultModel.CHIP_MAP
            else f"p = {self.ber:g}"
        )
        nested = (
            f"; {NESTED_DEFINITION}"
            if self.nested and self.model is not FaultModel.REF_TILED
            else ""
        )
        return f"{DEFINITIONS[self.model]}{nested}; {rate}; {bits}; storage: {STORAGE_DEFINITIONS[self.storage]}"

    def to_dict(self) -> dict[str, Any]:
        data = {
            "fault_model": self.model.value,
            "ber": self.ber,
            "storage": self.storage.value,
            "bit_positions": list(self.bit_positions) if self.bit_positions else None,
            "chip_map": str(self.chip_map) if self.chip_map else None,
            "definition": self.describe(),
        }
        # only when nested, so reports of non-nested runs stay as they were
        return {**data, "nested": True} if self.is_nested else data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultSpec:
        bits = data.get("bit_positions")
        chip = data.get("chip_map")
        return cls(
            FaultModel(data["fault_model"]),
            float(data["ber"]),
            Storage(data["storage"]),
            tuple(bits) if bits else None,
            Path(chip) if chip else None,
            nested=bool(data.get("nested", False)) and data["fault_model"] != "ref-tiled",
        )
