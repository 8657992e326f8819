"""The preprocessing spec: how uint8 NHWC pixels become a model's float32 NCHW input.

``model_input = (pixel_uint8 * scale - mean) / std``, per channel, after converting the
channel count (gray <-> RGB) and resizing (PIL bilinear) to the model's input size.

The same spec travels with a model (``to_dict`` / ``from_dict``), is given on the command
line (``parse``), and tells the generator the clip range of a valid input
(``valid_range``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from nfdeploy.errors import NfdeployError

__all__ = ["PRESETS", "Preprocess"]

# ITU-R 601-2 luma, the weights PIL uses for RGB -> "L".
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class Preprocess:
    """Pixel -> model-input mapping. ``mean``/``std`` have one value per channel, or one."""

    channels: int = 3
    height: int = 32
    width: int = 32
    scale: float = 1 / 255
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        # Normalise list inputs (from JSON or callers) to tuples of floats; frozen, so use
        # object.__setattr__.
        object.__setattr__(self, "mean", _float_tuple("mean", self.mean))
        object.__setattr__(self, "std", _float_tuple("std", self.std))
        for name in ("channels", "height", "width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise NfdeployError(
                    f"preprocess field '{name}': expected an integer, got {value!r}"
                )
            object.__setattr__(self, name, int(value))
        if self.channels not in (1, 3):
            raise NfdeployError(
                f"preprocess field 'channels': must be 1 (gray) or 3 (RGB), got {self.channels}"
            )
        if self.height < 1 or self.width < 1:
            raise NfdeployError(
                f"preprocess field 'size': must be positive, got {self.height}x{self.width}"
            )
        try:
            scale = float(self.scale)
        except (TypeError, ValueError):
            raise NfdeployError(
                f"preprocess field 'scale': expected a number, got {self.scale!r}"
            ) from None
        if not (math.isfinite(scale) and scale > 0):
            raise NfdeployError(f"preprocess field 'scale': must be > 0, got {self.scale!r}")
        object.__setattr__(self, "scale", scale)
        for name in ("mean", "std"):
            values = getattr(self, name)
            if len(values) not in (1, self.channels):
                want = "1 value" if self.channels == 1 else f"1 or {self.channels} values"
                raise NfdeployError(
                    f"preprocess field '{name}': needs {want} (one per channel) for "
                    f"{self.channels}-channel input, got {len(values)}"
                )
            if not all(math.isfinite(v) for v in values):
                raise NfdeployError(f"preprocess field '{name}': values must be finite")
        if not all(s > 0 for s in self.std):
            raise NfdeployError(f"preprocess field 'std': values must be > 0, got {self.std}")

    # ------------------------------------------------------------------ arrays
    def mean_array(self) -> np.ndarray:
        """Per-channel mean, float32, shape (channels,)."""
        return np.broadcast_to(np.asarray(self.mean, np.float32), (self.channels,)).copy()

    def std_array(self) -> np.ndarray:
        """Per-channel std, float32, shape (channels,)."""
        return np.broadcast_to(np.asarray(self.std, np.float32), (self.channels,)).copy()

    def apply(self, images_nhwc_uint8: np.ndarray) -> np.ndarray:
        """uint8 (N,H,W,C) or (N,H,W) pixels -> float32 (N,channels,height,width) model input."""
        x = np.asarray(images_nhwc_uint8)
        if x.dtype != np.uint8:
            raise NfdeployError(
                f"Preprocess.apply expects uint8 pixels (N,H,W,C), got dtype {x.dtype}; "
                "convert images to uint8 0..255 first"
            )
        if x.ndim == 3:
            x = x[..., None]
        if x.ndim != 4 or x.shape[-1] not in (1, 3):
            raise NfdeployError(
                f"Preprocess.apply expects (N,H,W,C) with C in {{1,3}}, got shape {x.shape}"
            )
        x = convert_channels(x, self.channels)
        x = resize_images(x, self.height, self.width)
        out = x.astype(np.float32)
        # Fold scale/mean/std into one multiply-add per channel.
        mul = np.float32(self.scale) / self.std_array()
        add = -self.mean_array() / self.std_array()
        out *= mul
        out += add
        return np.ascontiguousarray(out.transpose(0, 3, 1, 2))

    def valid_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel (lo, hi) of the model input: the images of pixel values 0 and 255."""
        mean, std = self.mean_array(), self.std_array()
        lo = (np.float32(0.0) - mean) / std
        hi = (np.float32(255.0 * self.scale) - mean) / std
        return lo.astype(np.float32), hi.astype(np.float32)

    # ------------------------------------------------------------------ (de)serialise
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict; ``from_dict`` inverts it exactly."""
        return {
            "channels": self.channels,
            "height": self.height,
            "width": self.width,
            "scale": self.scale,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocess:
        if not isinstance(d, dict):
            raise NfdeployError(f"preprocess spec must be a mapping, got {type(d).__name__}")
        known = {"channels", "height", "width", "scale", "mean", "std"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise NfdeployError(
                f"preprocess spec: unknown field(s) {', '.join(unknown)}; "
                f"known fields are {', '.join(sorted(known))}"
            )
        return cls(**d)

    def to_text(self) -> str:
        """The CLI form; ``parse`` inverts it."""
        scale = (
            "1/255"
            if math.isclose(self.scale, 1 / 255, rel_tol=0, abs_tol=1e-15)
            else _num(self.scale)
        )
        return (
            f"size={self.height}x{self.width},channels={self.channels},scale={scale},"
            f"mean={'/'.join(_num(v) for v in self.mean)},"
            f"std={'/'.join(_num(v) for v in self.std)}"
        )

    def __str__(self) -> str:
        return self.to_text()

    @classmethod
    def parse(cls, text: str) -> Preprocess:
        """Parse the CLI form.

        ``"size=32x32,channels=3,mean=0.4914/0.4822/0.4465,std=0.247/0.243/0.261,scale=1/255"``;
        a preset name (``cifar10``, ``unit``, ``pm1``, ``mnist``) alone or as the first item,
        followed by overrides (``"cifar10,size=64x64"``); or a JSON object from ``to_dict``.
        """
        if not isinstance(text, str):
            raise NfdeployError(f"preprocess spec must be text, got {type(text).__name__}")
        stripped = text.strip()
        if not stripped:
            raise NfdeployError(
                "empty preprocess spec; give a preset "
                f"({', '.join(PRESETS)}) or e.g. 'size=32x32,mean=0.5,std=0.5'"
            )
        if stripped.startswith("{"):
            try:
                data = json.loads(stripped)
            except json.JSONDecodeError as exc:
                raise NfdeployError(f"preprocess spec: invalid JSON ({exc.msg})") from None
            return cls.from_dict(data)
        fields: dict[str, Any] = {}
        for i, raw in enumerate(stripped.split(",")):
            item = raw.strip()
            if not item:
                continue
            if "=" not in item:
                if i != 0:
                    raise NfdeployError(
                        f"preprocess spec: '{item}' is not key=value (a preset name may only "
                        "come first)"
                    )
                fields.update(_preset(item).to_dict())
                continue
            key, value = (s.strip() for s in item.split("=", 1))
            key = key.lower()
            if key == "preset":
                if fields:
                    raise NfdeployError("preprocess field 'preset': must come first")
                fields.update(_preset(value).to_dict())
            elif key == "size":
                fields["height"], fields["width"] = _parse_size(value)
            elif key in ("height", "width", "channels"):
                fields[key] = _parse_int(key, value)
            elif key == "scale":
                fields["scale"] = _parse_number(key, value, allow_fraction=True)
            elif key in ("mean", "std"):
                parts = value.split("/") if value else []
                if not parts:
                    raise NfdeployError(f"preprocess field '{key}': no value given")
                fields[key] = tuple(_parse_number(key, p) for p in parts)
            else:
                raise NfdeployError(
                    f"preprocess spec: unknown field '{key}'; use size, channels, scale, mean, "
                    "std (or height/width, preset)"
                )
        # Changing channels without restating mean/std: a per-channel preset mean that no
        # longer fits is an error from __post_init__ naming the field.
        return cls(**fields)


def _float_tuple(name: str, value: Any) -> tuple[float, ...]:
    if isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool):
        value = (value,)
    try:
        return tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise NfdeployError(f"preprocess field '{name}': expected numbers, got {value!r}") from None


def _num(v: float) -> str:
    return repr(float(v)).removesuffix(".0") if float(v).is_integer() else repr(float(v))


def _parse_int(key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise NfdeployError(
            f"preprocess field '{key}': expected an integer, got '{value}'"
        ) from None


def _parse_size(value: str) -> tuple[int, int]:
    parts = value.lower().split("x")
    try:
        if len(parts) == 1:
            h = w = int(parts[0])
        elif len(parts) == 2:
            h, w = int(parts[0]), int(parts[1])
        else:
            raise ValueError
    except ValueError:
        raise NfdeployError(
            f"preprocess field 'size': expected HxW (e.g. 32x32) or N, got '{value}'"
        ) from None
    return h, w


def _parse_number(key: str, value: str, *, allow_fraction: bool = False) -> float:
    try:
        if allow_fraction and "/" in value:
            num, den = value.split("/", 1)
            result = float(num) / float(den)
        else:
            result = float(value)
    except (ValueError, ZeroDivisionError):
        form = "a number or a fraction like 1/255" if allow_fraction else "a number"
        raise NfdeployError(f"preprocess field '{key}': expected {form}, got '{value}'") from None
    return result


def _preset(name: str) -> Preprocess:
    key = name.strip().lower()
    if key not in PRESETS:
        raise NfdeployError(
            f"preprocess field 'preset': unknown preset '{name}'; known: {', '.join(PRESETS)}"
        )
    return PRESETS[key]


def convert_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """uint8 (N,H,W,C) -> (N,H,W,channels): gray repeats to RGB, RGB -> gray by ITU-R 601 luma."""
    c = x.shape[-1]
    if c == channels:
        return x
    if c == 1 and channels == 3:
        return np.repeat(x, 3, axis=-1)
    if c == 3 and channels == 1:
        gray = x.astype(np.float32) @ _LUMA
        return np.clip(np.rint(gray), 0, 255).astype(np.uint8)[..., None]
    raise NfdeployError(f"cannot convert {c}-channel images to {channels} channels")


def resize_images(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 (N,H,W,C) -> (N,height,width,C), PIL bilinear per image; no-op when equal."""
    n, h, w, c = x.shape
    if (h, w) == (height, width):
        return x
    out = np.empty((n, height, width, c), dtype=np.uint8)
    for i in range(n):
        img = Image.fromarray(x[i, :, :, 0] if c == 1 else x[i])
        out[i] = np.asarray(img.resize((width, height), Image.Resampling.BILINEAR)).reshape(
            height, width, c
        )
    return out


CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.247, 0.243, 0.261)

PRESETS: dict[str, Preprocess] = {
    "cifar10": Preprocess(3, 32, 32, 1 / 255, CIFAR10_MEAN, CIFAR10_STD),
    "unit": Preprocess(3, 32, 32, 1 / 255, (0.0,), (1.0,)),
    "pm1": Preprocess(3, 32, 32, 1 / 255, (0.5,), (0.5,)),
    "mnist": Preprocess(1, 28, 28, 1 / 255, (0.1307,), (0.3081,)),
}
