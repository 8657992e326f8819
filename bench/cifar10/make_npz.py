"""Write CIFAR-10 image folders as .npz files (x uint8 NHWC, y, class_names) for a remote machine.

The GPU runs in docs/benchmarks.md trained on the seeded 10,000-image training subset that
`nfdeploy train --limit 10000 --seed 0` draws (1,000 per class), carried to the GPU machine
as one file:

    python bench/cifar10/make_npz.py --split train --limit 10000 --out .gpu/train10k.npz
    python bench/cifar10/make_npz.py --split test --out .gpu/test.npz
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from nfdeploy.data import load_dataset

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10"))
    parser.add_argument("--split", default="train")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    data = load_dataset(
        args.data, split=args.split, limit=args.limit, seed=args.seed, progress=True
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp.npz")
    np.savez(tmp, x=data.images, y=data.labels, class_names=np.array(data.class_names))
    os.replace(tmp, args.out)
    print(f"{args.out}: {len(data)} images, per class {np.bincount(data.labels).tolist()}")


if __name__ == "__main__":
    main()
