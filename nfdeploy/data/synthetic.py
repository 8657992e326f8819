"""The built-in synthetic data set: 10 shape/texture classes, 3x32x32 uint8 RGB, no files.

Each image is one object (size, position, rotation and colours random) drawn over a
cluttered background: a two-colour gradient with low-frequency blotches, a few small
distractor dots and bars, sometimes a thin line across the object, and pixel noise.
Object and background come from mostly opposite luminance ranges (which one is dark is
random, and they overlap a little, so some objects are faint), so the class is in the
shape, never in the colour. A small CNN (~0.25M parameters) learns it to about 93% in six
epochs; a linear classifier on raw pixels stays near chance (see bench/synthetic_check.py).
Everything is vectorised numpy and deterministic in the seed; train and test come from
disjoint seed streams.

Classes: circle, square, triangle, ring, cross (plus sign), stripes (a striped disc),
checker (a checkered square), star (five points), crescent, dots (a disc of dots).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nfdeploy.data.dataset import Dataset
from nfdeploy.errors import NfdeployError

__all__ = [
    "SYNTHETIC_CLASSES",
    "SYNTHETIC_DEFAULT_TRAIN",
    "generate_synthetic",
    "load_synthetic",
]

SYNTHETIC_CLASSES = (
    "circle",
    "square",
    "triangle",
    "ring",
    "cross",
    "stripes",
    "checker",
    "star",
    "crescent",
    "dots",
)
SYNTHETIC_DEFAULT_TRAIN = 10_000
_SIZE = 32
_BASE_SEED = 0x4E46_5359  # "NFSY"
_SPLIT_IDS = {"train": 0, "test": 1}
_CHUNK = 1024

_Array = np.ndarray


def _soft(d_px: _Array) -> _Array:
    """Signed distance in pixels (negative inside) -> anti-aliased coverage in [0, 1]."""
    out = np.subtract(np.float32(0.5), d_px, dtype=np.float32)
    return np.clip(out, np.float32(0.0), np.float32(1.0), out=out)


# Each shape takes normalised, rotated coordinates u, v (object radius ~1), the object
# radius in pixels R (n,1,1), and per-image random numbers q (n,1,1) in [0,1), and returns
# coverage in [0,1] of shape (n,H,W).
def _circle(u: _Array, v: _Array, R: _Array, q: _Array) -> _Array:
    return _soft((np.hypot(u, v) - 1.0) * R)


def _square(u: _Array, v: _Array, R: _Array, q: _Array) -> _Array:
    return _soft((np.maximum(np.abs(u), np.abs(v)) - 0.85) * R)


_TRI_NORMALS = [(np.cos(a), np.sin(a)) for a in np.pi / 2 + 2 * np.pi * np.arange(3) / 3]


def _triangle(u: _Array, v: _Array, R: _Array, q: _Array) -> _Array:
    d = np.maximum.reduce([u * c + v * s for c, s in _TRI_NORMALS]) - 0.6
    return _soft(d * R)


def _ring(u: _Array, v: _Array, R: _Array, q: _Array) -> _Array:
    width = 0.14 + 0.12 * q
    return _soft((np.abs(np.hypot(u, v) - 0.8) - width) * R)


def _cross(u: _Array, v: _Array, R: _Array, q: _Array) -> _Array:
    w = 0.22 + 0.1 * q
    au, av = np.abs(u), np.abs(v)
    d = np.minimum(np.maximum(au - w, av - 1.0), np.maximum(av - w, au - 1.0))
    return _soft(d * R)


def _stripes(u: _Array, v: _Array, R: _Array, q: _Array) -> _Array:
    period = 0.42 + 0.2 * q  # in object radii: ~3..7 px
    patch = _soft((np.hypot(u, v) - 1.1) * R)
    wave = np.sin(2 * np.pi * u / period)
    return patch * np.clip(0.5 + 1.5 * wave, 0.0, 1.0)


def _checker(u: _Array, v: _Array, R: _Array, q: _Array) -> _Array:
    cell = 0.33 + 0.15 * q
    patch = _soft((np.maximum(np.abs(u), np.abs(v)) - 0.95) * R)
    wave = np.sin(np.pi * u / cell) * np.sin(np.pi * v / cell)
    return patch * np.clip(0.5 + 2.0 * wave, 0.0, 1.0)


def _star(u: _Array, v: _Array, R: _Array, q: _Array) -> _Array:
    r = np.hypot(u, v)
    phase = (np.arctan2(v, u) * (5 / (2 * np.pi))) % 1.0
    tip = np.abs(phase - 0.5) * 2.0  # 1 at the points, 0 between them
    inner = 0.38 + 0.1 * q
    rho = inner + (1.1 - inner) * tip
    return _soft((r - rho) * 0.7 * R)


def _crescent(u: _Array, v: _Array, R: _Array, q: _Array) -> _Array:
    shift = 0.45 + 0.2 * q
    d = np.maximum(np.hypot(u, v) - 1.0, 0.85 - np.hypot(u - shift, v))
    return _soft(d * R)


def _dots(u: _Array, v: _Array, R: _Array, q: _Array) -> _Array:
    period = 0.5 + 0.15 * q
    patch = _soft((np.hypot(u, v) - 1.1) * R)
    du = u / period - np.round(u / period)
    dv = v / period - np.round(v / period)
    d = np.hypot(du, dv) * period - 0.15
    return patch * _soft(d * R)


_SHAPES: tuple[Callable[[_Array, _Array, _Array, _Array], _Array], ...] = (
    _circle,
    _square,
    _triangle,
    _ring,
    _cross,
    _stripes,
    _checker,
    _star,
    _crescent,
    _dots,
)
assert len(_SHAPES) == len(SYNTHETIC_CLASSES)


def _upsample_matrix(src: int, dst: int) -> _Array:
    """(dst, src) bilinear interpolation weights, align-corners style."""
    pos = np.linspace(0, src - 1, dst)
    lo = np.clip(np.floor(pos).astype(int), 0, src - 2)
    frac = pos - lo
    m = np.zeros((dst, src), dtype=np.float32)
    m[np.arange(dst), lo] = 1 - frac
    m[np.arange(dst), lo + 1] = frac
    return m


_UP = _upsample_matrix(5, _SIZE)
_SPRITE = 11  # clutter sprites are 11x11


def _sprite_bank() -> _Array:
    """Anti-aliased alpha sprites: dots of radius 0.8..3.2 px at half-pixel offsets, and
    bars 3..9 px long, 1.2 px wide, at 12 angles."""
    c = np.arange(_SPRITE, dtype=np.float32) - _SPRITE // 2
    y, x = c[:, None], c[None, :]
    sprites = []
    for r in np.linspace(0.8, 3.2, 7):
        for oy in (0.0, 0.5):
            for ox in (0.0, 0.5):
                sprites.append(_soft(np.hypot(x - ox, y - oy) - r))
    for half in (1.5, 2.5, 3.5, 4.5):
        for ang in np.arange(12) * np.pi / 12:
            a = np.abs(np.cos(ang) * x + np.sin(ang) * y) - half
            b = np.cos(ang) * y - np.sin(ang) * x
            sprites.append(_soft(np.hypot(np.maximum(a, 0), b) - 0.6))
    return np.stack(sprites).astype(np.float32)


_BANK = _sprite_bank()

# Difficulty knobs (pixels unless noted); tuned with bench/synthetic_check.py.
_K: dict[str, Any] = {
    "radius": (5.2, 10.2),  # object radius
    "center": (8.5, 23.5),  # object centre, x and y
    "bg_span": 145.0,  # background channel values span this much from the dark/light end
    "fg_span": 145.0,  # object channel values likewise, from the opposite end
    "blot": (5.0, 38.0),  # amplitude of low-frequency background blotches
    "clutter_items": 8,  # distractor slots per image
    "clutter_p": 0.6,  # chance each slot is used
    "line_p": 0.45,  # chance of a thin line across the object
    "noise": (4.0, 22.0),  # Gaussian pixel-noise sigma
}


def _render(labels: _Array, rng: np.random.Generator) -> _Array:
    """Render one chunk: labels (n,) -> uint8 (n,32,32,3)."""
    n = len(labels)
    f32 = np.float32
    grid = np.arange(_SIZE, dtype=f32) + 0.5
    ys, xs = grid[None, :, None], grid[None, None, :]

    def col(shape: tuple[int, ...], lo: float, hi: float) -> _Array:
        return rng.uniform(lo, hi, size=shape).astype(f32)

    # Polarity: object light on dark background, or dark on light.
    light_obj = rng.random(n) < 0.5
    bg_span, fg_span = _K["bg_span"], _K["fg_span"]
    bg_lo = np.where(light_obj, 0.0, 255.0 - bg_span)[:, None].astype(f32)
    fg_lo = np.where(light_obj, 255.0 - fg_span, 0.0)[:, None].astype(f32)
    bg0 = bg_lo + col((n, 3), 0, bg_span)
    bg1 = bg_lo + col((n, 3), 0, bg_span)
    fg = fg_lo + col((n, 3), 0, fg_span)

    # Background: a linear two-colour gradient plus low-frequency blotches.
    ang = col((n,), 0, 2 * np.pi)
    ramp = (np.cos(ang)[:, None, None] * (xs - 16) + np.sin(ang)[:, None, None] * (ys - 16)) / 45
    ramp = np.clip(ramp + 0.5, 0, 1)[..., None]
    img = bg0[:, None, None, :] + (bg1 - bg0)[:, None, None, :] * ramp
    blot = _UP @ col((n, 5, 5), -1, 1) @ _UP.T
    img += (blot * col((n, 1, 1), *_K["blot"]))[..., None]

    # Clutter: small dots and short bars of any colour, under the object, stamped from a
    # bank of anti-aliased sprites. Where items overlap the most opaque one wins, so the
    # layer is composited once.
    pad, size = _SPRITE // 2, _SIZE + 2 * (_SPRITE // 2)
    n_items = int(_K["clutter_items"])
    layer_a = np.zeros((n, size, size), dtype=f32)
    layer_k = np.zeros((n, size, size), dtype=np.intp)  # which item's colour
    rows = np.arange(n)[:, None, None]
    offs = np.arange(_SPRITE)
    for k in range(n_items):
        present = (rng.random(n) < _K["clutter_p"]).astype(f32)[:, None, None]
        sprite = _BANK[rng.integers(0, len(_BANK), n)] * present
        py, px = rng.integers(0, _SIZE, n), rng.integers(0, _SIZE, n)  # sprite centre
        yy = (py[:, None] + offs)[:, :, None]
        xx = (px[:, None] + offs)[:, None, :]
        region = layer_a[rows, yy, xx]
        wins = sprite > region
        layer_a[rows, yy, xx] = np.where(wins, sprite, region)
        layer_k[rows, yy, xx] = np.where(wins, k, layer_k[rows, yy, xx])
    colors = col((n, n_items, 3), 0, 255)
    crop = slice(pad, pad + _SIZE)
    clutter = colors[rows, layer_k[:, crop, crop]]  # (n, H, W, 3)
    img += layer_a[:, crop, crop, None] * (clutter - img)

    # The object.
    cx, cy = col((n, 1, 1), *_K["center"]), col((n, 1, 1), *_K["center"])
    R = col((n, 1, 1), *_K["radius"])
    theta = col((n, 1, 1), 0, 2 * np.pi)
    dx, dy = xs - cx, ys - cy
    u = (np.cos(theta) * dx + np.sin(theta) * dy) / R
    v = (-np.sin(theta) * dx + np.cos(theta) * dy) / R
    q = col((n, 1, 1), 0, 1)
    alpha = np.zeros((n, _SIZE, _SIZE), dtype=f32)
    for k, shape in enumerate(_SHAPES):
        idx = np.flatnonzero(labels == k)
        if len(idx):
            alpha[idx] = shape(u[idx], v[idx], R[idx], q[idx])
    # Shading across the object so its fill is not one flat colour.
    shade = 1 + col((n, 1, 1), -0.25, 0.25) * u
    obj = fg[:, None, None, :] * shade[..., None]
    img += alpha[..., None] * (obj - img)

    # An occasional thin line across everything (an occluder).
    has_line = np.flatnonzero(rng.random(n) < _K["line_p"])
    m = len(has_line)
    t = col((m, 1, 1), 0, np.pi)
    off = col((m, 1, 1), -8, 8)
    d = np.abs(np.cos(t) * (xs - 16) + np.sin(t) * (ys - 16) - off) - f32(0.5)
    alpha = _soft(d)[..., None]
    img[has_line] += alpha * (col((m, 1, 1, 3), 0, 255) - img[has_line])

    # Pixel noise.
    sigma = col((n, 1, 1, 1), *_K["noise"])
    noise = rng.standard_normal(img.shape, dtype=f32)
    noise *= sigma
    img += noise
    np.clip(img, f32(0), f32(255), out=img)
    return np.rint(img, out=img).astype(np.uint8)


def generate_synthetic(n: int, seed: int | Sequence[int]) -> tuple[_Array, _Array]:
    """``n`` images and labels (balanced, shuffled) from ``seed``; uint8 (n,32,32,3), int64."""
    if n < 1:
        raise NfdeployError(f"synthetic data set size must be >= 1, got {n}")
    rng = np.random.default_rng(list(seed) if isinstance(seed, Sequence) else seed)
    k = len(SYNTHETIC_CLASSES)
    labels = rng.permutation(np.arange(n) % k).astype(np.int64)
    images = np.empty((n, _SIZE, _SIZE, 3), dtype=np.uint8)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        images[start:stop] = _render(labels[start:stop], rng)
    return images, labels


@functools.lru_cache(maxsize=4)
def _cached(n: int, seed: int, split: str) -> tuple[_Array, _Array]:
    # Train and test draw from disjoint seed streams: entropy (base, seed, split).
    images, labels = generate_synthetic(n, (_BASE_SEED, seed, _SPLIT_IDS[split]))
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def load_synthetic(
    split: str = "test", n_train: int = SYNTHETIC_DEFAULT_TRAIN, seed: int = 0
) -> Dataset:
    """The built-in set: ``n_train`` training images, ``n_train // 5`` (at least 1) test."""
    if split not in _SPLIT_IDS:
        raise NfdeployError(f"the synthetic data set has splits 'train' and 'test', not '{split}'")
    if n_train < 1:
        raise NfdeployError(f"synthetic:N needs N >= 1, got {n_train}")
    n = n_train if split == "train" else max(1, n_train // 5)
    images, labels = _cached(n, seed, split)
    return Dataset(
        images.copy(),
        labels.copy(),
        list(SYNTHETIC_CLASSES),
        f"synthetic (seed {seed}, {split}, {n} images)",
    )
