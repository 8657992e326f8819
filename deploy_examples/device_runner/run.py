#!/usr/bin/env python3
"""Classify image files on the device: generator.onnx (optional) -> the untouched vendor model.

Torch-free: onnxruntime, numpy and pillow (through nfdeploy.runtime / nfdeploy.data).

    python deploy_examples/device_runner/run.py --model vendor.onnx \
        --generator run/generator.onnx [--labels classes.txt] [--json] IMAGE_OR_FOLDER...

The preprocessing (size, channels, scale, mean/std) comes from --preprocess, else the
generator's ``nfdeploy.preprocess`` metadata, else the vendor's, else 'unit' (pixels / 255).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import onnxruntime as ort
from PIL import Image, UnidentifiedImageError

from nfdeploy.data import Preprocess
from nfdeploy.errors import NfdeployError
from nfdeploy.onnx import metadata as metadata_keys
from nfdeploy.runtime import load_model_checked, make_session, metadata_dict

PREPROCESS_KEY = metadata_keys.PREPROCESS  # the one definition: nfdeploy.onnx.metadata
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line instead of usage + error
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="run.py",
        description="Run generator.onnx (optional) and the untouched vendor ONNX model on image "
        "files; print class index, class name and softmax confidence per image.",
    )
    parser.add_argument(
        "images", nargs="+", help="image files (PNG/JPEG) and/or folders (searched recursively)"
    )
    parser.add_argument("--model", required=True, help="the vendor's ONNX classifier, unchanged")
    parser.add_argument("--generator", help="generator.onnx from `nfdeploy export` (optional)")
    parser.add_argument(
        "--preprocess",
        help="override the stored preprocessing: a preset (cifar10, unit, pm1, mnist) or "
        "'size=32x32,channels=3,scale=1/255,mean=.49/.48/.45,std=.25/.24/.26'",
    )
    parser.add_argument("--labels", help="text file with one class name per line")
    parser.add_argument("--batch-size", type=int, default=32, help="images per run (default 32)")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0 = auto)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead")
    return parser


# --------------------------------------------------------------------------- models
@dataclass
class Model:
    path: Path
    session: ort.InferenceSession
    input_name: str
    input_shape: list[int | None]  # None where the file leaves a dimension dynamic
    metadata: dict[str, str]


def load_model(path: str, what: str, threads: int) -> Model:
    proto = load_model_checked(path)  # one-line NfdeployError for a missing or broken file
    session = make_session(proto.SerializeToString(), threads=threads)
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise UsageError(f"{path}: the {what} has {len(inputs)} inputs; expected one image input")
    shape = [d if isinstance(d, int) and d > 0 else None for d in inputs[0].shape]
    if len(shape) != 4:
        raise UsageError(
            f"{path}: the {what} input {inputs[0].name!r} has shape {inputs[0].shape}; "
            "expected an image tensor (N, C, H, W)"
        )
    if inputs[0].type != "tensor(float)":
        raise UsageError(f"{path}: the {what} input is {inputs[0].type}; expected float32")
    return Model(Path(path), session, inputs[0].name, shape, metadata_dict(proto))


def run_batched(model: Model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Run ``x`` through a single-input session; a batch fixed in the file is padded to."""
    fixed = model.input_shape[0]
    step = fixed or batch_size
    outputs = []
    for start in range(0, len(x), step):
        chunk = x[start : start + step]
        n = len(chunk)
        if fixed and n < fixed:
            chunk = np.concatenate([chunk, np.zeros((fixed - n, *chunk.shape[1:]), chunk.dtype)])
        try:
            out = model.session.run(None, {model.input_name: chunk})[0]
        except Exception as exc:  # onnxruntime's errors are multi-line; keep the first
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UsageError(f"{model.path}: onnxruntime failed: {first}") from None
        outputs.append(np.asarray(out)[:n])
    return np.concatenate(outputs)


def resolve_preprocess(text: str | None, vendor: Model, generator: Model | None) -> Preprocess:
    """--preprocess, else the generator's stored spec, else the vendor's, else 'unit'."""
    if text is not None:
        pre = Preprocess.parse(text)
    else:
        stored = (generator.metadata if generator else {}).get(PREPROCESS_KEY) or (
            vendor.metadata.get(PREPROCESS_KEY)
        )
        if stored:
            try:
                pre = Preprocess.from_dict(json.loads(stored))
            except json.JSONDecodeError:
                raise UsageError(f"metadata {PREPROCESS_KEY!r} is not valid JSON") from None
        else:
            print(
                "note: no preprocessing stored in the models; assuming 'unit' (pixels / 255). "
                "Pass --preprocess to set it.",
                file=sys.stderr,
            )
            pre = Preprocess.parse("unit")
    channels, height, width = vendor.input_shape[1:]
    if channels is not None and channels not in (1, 3):
        raise UsageError(f"{vendor.path}: input has {channels} channels; images need 1 or 3")
    # The vendor's input size is authoritative where the file fixes it.
    return replace(
        pre,
        channels=channels or pre.channels,
        height=height or pre.height,
        width=width or pre.width,
    )


def check_generator(generator: Model, vendor: Model) -> None:
    g_chw, v_chw = generator.input_shape[1:], vendor.input_shape[1:]
    if any(g is not None and v is not None and g != v for g, v in zip(g_chw, v_chw, strict=True)):
        raise UsageError(
            f"{generator.path}: generator input (C,H,W) = {tuple(g_chw)} does not match the "
            f"vendor input {tuple(v_chw)}; export the generator for this vendor model"
        )
    if generator.input_name != vendor.input_name:
        print(
            f"note: generator input {generator.input_name!r} != vendor input "
            f"{vendor.input_name!r}; was it exported for this model?",
            file=sys.stderr,
        )


# --------------------------------------------------------------------------- images
def collect_images(paths: Sequence[str]) -> list[Path]:
    found: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            files = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not files:
                raise UsageError(f"{path}: folder holds no .png/.jpg/.jpeg images")
            found += files
        elif path.is_file():
            found.append(path)
        else:
            raise UsageError(f"{path}: no such file or folder")
    return found


def load_image(path: Path, channels: int) -> np.ndarray:
    """uint8 (H, W, C) pixels, converted to the model's channel count."""
    try:
        with Image.open(path) as img:
            img.load()
            pixels = np.asarray(img.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        reason = (
            "not a PNG/JPEG image"
            if isinstance(exc, UnidentifiedImageError)
            else (str(exc) or type(exc).__name__)
        )
        raise UsageError(f"{path}: cannot read image ({reason})") from None
    return pixels[..., None] if pixels.ndim == 2 else pixels


def read_labels(path: str, num_classes: int) -> list[str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read labels file ({exc})") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if len(names) != num_classes:
        raise UsageError(
            f"{path}: {len(names)} class names, but the model has {num_classes} classes "
            "(one name per line)"
        )
    return names


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------- main
def classify(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise UsageError(f"--batch-size {args.batch_size}: must be >= 1")
    if args.threads < 0:
        raise UsageError(f"--threads {args.threads}: must be >= 0 (0 = auto)")
    files = collect_images(args.images)
    vendor = load_model(args.model, "vendor model", args.threads)
    generator = load_model(args.generator, "generator", args.threads) if args.generator else None
    if generator is not None:
        check_generator(generator, vendor)
    pre = resolve_preprocess(args.preprocess, vendor, generator)
    labels: list[str] | None = None
    records: list[dict[str, Any]] = []
    for start in range(0, len(files), args.batch_size):
        batch_files = files[start : start + args.batch_size]
        # Images may differ in size: preprocess one by one, then stack.
        x = np.concatenate([pre.apply(load_image(p, pre.channels)[None]) for p in batch_files])
        if generator is not None:
            fused = run_batched(generator, x, args.batch_size)
            if fused.shape != x.shape:
                raise UsageError(
                    f"{generator.path}: generator output shape {fused.shape} != its input "
                    f"shape {x.shape}; not an nfdeploy generator?"
                )
            x = fused.astype(np.float32, copy=False)
        logits = run_batched(vendor, x, args.batch_size)
        if logits.ndim != 2 or logits.shape[0] != len(batch_files):
            raise UsageError(
                f"{vendor.path}: output shape {logits.shape}; expected class scores (N, classes)"
            )
        if labels is None and args.labels:
            labels = read_labels(args.labels, logits.shape[1])
        probs = softmax(logits)
        for path, row in zip(batch_files, probs, strict=True):
            index = int(row.argmax())
            record = {
                "path": str(path),
                "class": index,
                "name": labels[index] if labels else None,
                "confidence": round(float(row[index]), 6),
            }
            records.append(record)
            if not args.json:
                name = f" ({record['name']})" if labels else ""
                print(f"{path}: class {index}{name} {row[index] * 100:.1f}%", flush=True)
    if args.json:
        doc = {
            "model": str(vendor.path),
            "generator": str(generator.path) if generator else None,
            "preprocess": pre.to_dict(),
            "predictions": records,
        }
        print(json.dumps(doc, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return classify(args)
    except (UsageError, NfdeployError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
