"""Carry the CIFAR-10 JPEG folders to a remote machine as one file, and decode them there.

The decoded training split is 150 MB of uint8, over the 64 MiB one call to the GPU machine
can carry; the JPEG bytes themselves are 55 MB, and 623 of each image's ~884 bytes are a
header that every image shares (JFIF, quantisation and Huffman tables), so it is stored
once per split: the pack is 18 MiB. So pack the bytes here and decode there:

    python bench/cifar10/pack_jpeg.py pack --out .gpu/cifar10-jpeg.npz
    python bench/cifar10/pack_jpeg.py decode --pack .gpu/cifar10-jpeg.npz --out /tmp/cifar10.npz

The packed order is the image-folder loader's (classes in label order, files sorted by
path), so `load_dataset(decoded, split=..., limit=..., seed=...)` draws the same subset as
it does from the folders. `pack` checks that by decoding its own output.
"""

from __future__ import annotations

import argparse
import io
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SPLITS = ("train", "test")


def _files(root: Path, split: str) -> tuple[list[Path], np.ndarray, list[str]]:
    from nfdeploy.data.imagefolder import _scan_images, find_imagefolder_root

    folder, names = find_imagefolder_root(root, split)
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(names):
        found = [Path(p) for p, _, _ in _scan_images(folder / name)]
        paths += found
        labels += [label] * len(found)
    return paths, np.asarray(labels, dtype=np.int64), names


def _decode(blob: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(blob)) as img:
        return np.asarray(img.convert("RGB"))


def common_prefix(blobs: list[bytes]) -> bytes:
    """The longest prefix every blob starts with (that of the lexicographic min and max)."""
    first, last = min(blobs), max(blobs)
    size = min(len(first), len(last))
    return first[: next((i for i in range(size) if first[i] != last[i]), size)]


def decode_split(
    data: np.ndarray, offsets: np.ndarray, workers: int, prefix: bytes = b""
) -> np.ndarray:
    """Decode each image's bytes, with the split's shared header ``prefix`` put back."""
    blobs = [prefix + data[offsets[i] : offsets[i + 1]].tobytes() for i in range(len(offsets) - 1)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return np.stack(list(pool.map(_decode, blobs, chunksize=512)))


def pack(args: argparse.Namespace) -> None:
    from nfdeploy.data import load_dataset

    arrays: dict[str, np.ndarray] = {}
    for split in SPLITS:
        paths, labels, names = _files(Path(args.data), split)
        blobs = [p.read_bytes() for p in paths]
        prefix = common_prefix(blobs)
        blobs = [b[len(prefix) :] for b in blobs]
        arrays[f"{split}_prefix"] = np.frombuffer(prefix, dtype=np.uint8)
        arrays[f"{split}_offsets"] = np.cumsum([0] + [len(b) for b in blobs], dtype=np.int64)
        arrays[f"{split}_bytes"] = np.frombuffer(b"".join(blobs), dtype=np.uint8)
        arrays[f"y_{split}"] = labels
        arrays["class_names"] = np.array(names)
        reference = load_dataset(args.data, split=split, progress=False)
        decoded = decode_split(
            arrays[f"{split}_bytes"], arrays[f"{split}_offsets"], args.workers, prefix
        )
        if not (
            np.array_equal(decoded, reference.images) and np.array_equal(labels, reference.labels)
        ):
            raise SystemExit(f"{split}: packed images differ from the image-folder loader's")
        size = len(arrays[f"{split}_bytes"]) / 2**20
        print(f"{split}: {len(blobs)} images, {size:.1f} MiB + a {len(prefix)}-byte shared header")
    _save(args.out, arrays)


def decode(args: argparse.Namespace) -> None:
    with np.load(args.pack, allow_pickle=False) as z:
        arrays = {"class_names": z["class_names"]}
        for split in SPLITS:
            key = f"{split}_prefix"
            prefix = z[key].tobytes() if key in z else b""  # packs before the header sharing
            arrays[f"x_{split}"] = decode_split(
                z[f"{split}_bytes"], z[f"{split}_offsets"], args.workers, prefix
            )
            arrays[f"y_{split}"] = z[f"y_{split}"]
            print(f"{split}: {arrays[f'x_{split}'].shape}")
    _save(args.out, arrays)


def _save(out: Path, arrays: dict[str, np.ndarray]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]
    os.replace(tmp, out)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10"))
    p.add_argument("--out", type=Path, required=True)
    d = sub.add_parser("decode")
    d.add_argument("--pack", type=Path, required=True)
    d.add_argument("--out", type=Path, required=True)
    for q in (p, d):
        q.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    pack(args) if args.command == "pack" else decode(args)


if __name__ == "__main__":
    main()
