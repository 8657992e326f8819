"""Compiled bit-error kernel (cpp_ext/bitflip.cpp). Use nfdeploy.faults.kernel instead."""

import numpy as np
import numpy.typing as npt

BLOCK_BYTES: int

def flip_bits(
    buf: npt.NDArray[np.uint8],
    p: float,
    seed: int,
    stream: int,
    bit_mask: int = 0xFF,
    threads: int = 1,
) -> int: ...
def stuck_at(
    buf: npt.NDArray[np.uint8],
    p: float,
    seed: int,
    stream: int,
    bit_mask: int = 0xFF,
    threads: int = 1,
) -> int: ...
