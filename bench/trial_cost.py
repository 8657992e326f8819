"""What one validation trial costs on ImageNet-size vendors (ResNet18, ResNet50, ViT-B/16).

    python bench/trial_cost.py                       # all three, 1 onnxruntime thread
    python bench/trial_cost.py --models resnet18 --images 32

Each vendor is a seeded random network of the real architecture and size (timing only),
exported to ONNX at 224 x 224 and measured in its own fresh process, as a validate worker
would run it: load + quantize (int8 per-tensor, the paper's storage), the clean session
build, one trial's fault injection (stuck-at 1%, re-serialized), the faulty session build,
and inference on ``--images`` images, scaled to 1,000. Peak RSS is the worker's memory.
Prints one JSON row per model and a table; docs/scaling.md quotes it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODELS = ("resnet18", "resnet50", "vit_b16")


def build(name: str) -> object:
    import torch
    from torch import nn

    torch.manual_seed(0)
    if name == "vit_b16":
        return _vit_b16()
    blocks = {"resnet18": ("basic", [2, 2, 2, 2]), "resnet50": ("bottleneck", [3, 4, 6, 3])}
    kind, layers = blocks[name]
    model: nn.Module = _resnet(kind, layers)
    return model.eval()


def _resnet(kind: str, layers: list[int]) -> object:
    from torch import nn

    expansion = 1 if kind == "basic" else 4

    class Block(nn.Module):
        def __init__(self, cin: int, width: int, stride: int) -> None:
            super().__init__()
            cout = width * expansion
            if kind == "basic":
                self.body = nn.Sequential(
                    nn.Conv2d(cin, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width),
                    nn.ReLU(), nn.Conv2d(width, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
                )  # fmt: skip
            else:
                self.body = nn.Sequential(
                    nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                    nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width),
                    nn.ReLU(), nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout),
                )  # fmt: skip
            self.skip = (
                nn.Identity()
                if stride == 1 and cin == cout
                else nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
                )
            )

        def forward(self, x):  # type: ignore[no-untyped-def]
            return (self.body(x) + self.skip(x)).relu()

    stages, cin = [], 64
    for i, count in enumerate(layers):
        width = 64 * 2**i
        for j in range(count):
            stages.append(Block(cin, width, 2 if j == 0 and i > 0 else 1))
            cin = width * expansion
    return nn.Sequential(
        nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        nn.MaxPool2d(3, 2, 1), *stages, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(cin, 1000),
    )  # fmt: skip


def _vit_b16() -> object:
    import torch
    from torch import nn

    class Block(nn.Module):
        """Pre-norm encoder block, attention written out (exports as MatMul/Softmax)."""

        def __init__(self, width: int = 768, heads: int = 12, mlp: int = 3072) -> None:
            super().__init__()
            self.heads = heads
            self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
            self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
            self.mlp = nn.Sequential(nn.Linear(width, mlp), nn.GELU(), nn.Linear(mlp, width))

        def forward(self, x):  # type: ignore[no-untyped-def]
            n, t, c = x.shape
            q, k, v = (
                self.qkv(self.norm1(x)).reshape(n, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
            )
            att = (q @ k.transpose(-2, -1) * (c // self.heads) ** -0.5).softmax(-1)
            x = x + self.proj((att @ v).transpose(1, 2).reshape(n, t, c))
            return x + self.mlp(self.norm2(x))

    class ViT(nn.Module):
        """ViT-B/16: 16x16 patches, 12 layers, width 768, 12 heads, MLP 3072 (86M weights)."""

        def __init__(self) -> None:
            super().__init__()
            self.patch = nn.Conv2d(3, 768, 16, 16)
            self.cls = nn.Parameter(torch.zeros(1, 1, 768))
            self.pos = nn.Parameter(torch.randn(1, 197, 768) * 0.02)
            self.blocks = nn.Sequential(*[Block() for _ in range(12)])
            self.norm, self.head = nn.LayerNorm(768), nn.Linear(768, 1000)

        def forward(self, x):  # type: ignore[no-untyped-def]
            tokens = self.patch(x).flatten(2).transpose(1, 2)
            tokens = torch.cat([self.cls.expand(x.shape[0], -1, -1), tokens], 1) + self.pos
            return self.head(self.norm(self.blocks(tokens))[:, 0])

    return ViT().eval()


def export(name: str, path: Path) -> None:
    import torch

    model = build(name)
    with torch.no_grad():
        torch.onnx.export(
            model, (torch.zeros(1, 3, 224, 224),), str(path), opset_version=17,
            input_names=["input"], output_names=["logits"], dynamo=False,
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )  # fmt: skip


def measure(path: Path, images: int, threads: int) -> dict[str, float]:
    """One worker's trial, in this (fresh) process. Torch-free, as the device path."""
    from nfdeploy.faults.onnx_model import load_faultable
    from nfdeploy.faults.spec import FaultModel, FaultSpec
    from nfdeploy.onnx.session import make_session
    from nfdeploy.runtime.session import run_logits

    row: dict[str, float] = {}
    start = time.perf_counter()
    vendor = load_faultable(path, storage="int8-tensor")
    row["load_quantize_s"] = time.perf_counter() - start
    start = time.perf_counter()
    make_session(vendor.clean_bytes(), threads=threads)
    row["clean_session_s"] = time.perf_counter() - start
    spec = FaultSpec(FaultModel.STUCK_AT, 0.01, vendor.storage)
    start = time.perf_counter()
    faulty, changed = vendor.faulty_bytes(spec, seed=50_000, threads=1)
    row["inject_s"] = time.perf_counter() - start
    start = time.perf_counter()
    session = make_session(faulty, threads=threads)
    row["faulty_session_s"] = time.perf_counter() - start
    x = np.random.default_rng(0).standard_normal((images, 3, 224, 224)).astype(np.float32)
    run_logits(session, x[:2], batch_size=2)  # warm-up
    start, cpu = time.perf_counter(), time.process_time()
    run_logits(session, x, batch_size=16)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    row["infer_s_per_1000"] = wall / images * 1000
    row["infer_cpu_s_per_1000"] = cpu / images * 1000
    row["weights_M"] = vendor.stored_bytes() / 1e6
    row["bits_changed"] = float(changed)
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--images", type=int, default=32, help="images timed per model (x 1000/N)")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime threads (one worker)")
    p.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # internal: child process
    args = p.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.images, args.threads)))
        return 0
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            path = Path(tmp) / f"{name}.onnx"
            export(name, path)
            child = subprocess.run(
                [sys.executable, __file__, "--measure", str(path), "--images", str(args.images),
                 "--threads", str(args.threads)],
                capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
            )  # fmt: skip
            if child.returncode:
                raise SystemExit(f"{name}: the measuring process failed:\n{child.stderr[-3000:]}")
            rows[name] = json.loads(child.stdout.strip().splitlines()[-1])
            print(json.dumps({"model": name, **rows[name]}), flush=True)
    keys = ["weights_M", "load_quantize_s", "clean_session_s", "inject_s", "faulty_session_s",
            "infer_s_per_1000", "infer_cpu_s_per_1000", "peak_rss_mb"]  # fmt: skip
    print("| model | " + " | ".join(keys) + " |")
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(f"{row[k]:.2f}" for k in keys) + " |")
    print(f"(images timed: {args.images}, onnxruntime threads: {args.threads})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
