"""Training-image augmentation on uint8 NHWC arrays (numpy only, seeded)."""

from __future__ import annotations

import numpy as np

CROP_PAD = 4  # pixels of zero padding around the image before the random crop


def crop_flip(images: np.ndarray, rng: np.random.Generator, pad: int = CROP_PAD) -> np.ndarray:
    """A random ``pad``-pixel shifted crop (zero fill) and a random horizontal flip per image."""
    count, height, width = images.shape[:3]
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    shifts = rng.integers(0, 2 * pad + 1, (count, 2)).tolist()
    flips = np.less(rng.random(count), 0.5).tolist()
    out = np.empty_like(images)
    for i, ((row, col), flip) in enumerate(zip(shifts, flips, strict=True)):
        crop = padded[i, row : row + height, col : col + width]
        out[i] = crop[:, ::-1] if flip else crop
    return out
