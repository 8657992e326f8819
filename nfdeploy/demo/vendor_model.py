"""A VGG-style CNN that stands in for the vendor's file in the demo, trained on built-in data."""

from __future__ import annotations

import io
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn
from tqdm import tqdm

from nfdeploy.data import Dataset, Preprocess
from nfdeploy.onnx.atomic import save_model_atomic
from nfdeploy.onnx.metadata import PREPROCESS, merge_metadata

DEMO_PREPROCESS = "pm1"  # pixels to [-1, 1], as the paper's reference code does


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


def demo_cnn(channels: int = 3, classes: int = 10) -> nn.Sequential:
    """~1.5M weights, VGG-style: four conv stages (32/64/96/128, max-pooling down to 4x4) and a
    two-layer classifier head (2048 -> 640 -> classes) that holds 87% of the weights.

    Sized so that its weight reads dwarf UNetS's (TWMA about 4.9x) at a compute cost (12M
    MACs) close to the generator's: most weights sit where the feature map is small (4x4 and
    the head), as in real classifiers (VGG's head, ResNet18's last stage).
    """
    return nn.Sequential(
        *_block(channels, 32), nn.MaxPool2d(2),
        *_block(32, 64), nn.MaxPool2d(2),
        *_block(64, 96), nn.MaxPool2d(2),
        *_block(96, 128),
        nn.Flatten(), nn.Linear(128 * 4 * 4, 640), nn.ReLU(inplace=True), nn.Linear(640, classes),
    )  # fmt: skip


def train_vendor(
    train: Dataset,
    *,
    pre: Preprocess,
    epochs: int,
    seed: int,
    batch: int = 128,
    quiet: bool = False,
    bf16: bool = False,
) -> tuple[nn.Module, float]:
    """Plain supervised training (AdamW + one-cycle); returns the model and seconds spent.

    ``bf16``: forward passes under bf16 autocast (weights and optimizer stay fp32), as
    `nfdeploy train` does by default on CPUs with native bf16; about 1.5x faster there.
    """
    torch.manual_seed(seed)
    model = demo_cnn(pre.channels, len(train.class_names))
    steps = epochs * (len(train) // batch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    bar = tqdm(total=steps, desc="vendor model", file=sys.stderr, disable=True if quiet else None)
    for _ in range(epochs):
        order = rng.permutation(len(train))
        for i in range(len(train) // batch):
            index = order[i * batch : (i + 1) * batch]
            x = torch.from_numpy(pre.apply(train.images[index]))
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(x)
            loss = nn.functional.cross_entropy(
                logits.float(), torch.from_numpy(train.labels[index])
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    return model.eval(), time.perf_counter() - start


def export_vendor(model: nn.Module, pre: Preprocess, path: Path) -> Path:
    """The way a vendor would ship it: legacy exporter, opset 17, BatchNorm folded, dynamic batch."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(1, pre.channels, pre.height, pre.width),),
            buffer,  # type: ignore[arg-type]
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
        )
    proto = onnx.load_from_string(buffer.getvalue())
    merge_metadata(proto, {PREPROCESS: json.dumps(pre.to_dict()), "producer": "nfdeploy demo"})
    return save_model_atomic(proto, path)
