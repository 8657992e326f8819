"""Training-recipe options: targets from the vendor, BER warm-up, augmentation."""

from __future__ import annotations

import numpy as np
import torch

from nfdeploy.data import Dataset
from nfdeploy.data.augment import crop_flip
from nfdeploy.runs.config import TrainConfig
from nfdeploy.train.eopm import autocast
from nfdeploy.train.setup import GradientModel, TrainSetup


def step_ber(config: TrainConfig, step: int, total_steps: int) -> float | None:
    """The BER of global step ``step``: a linear ramp from 0 over the warm-up, then the target."""
    if not config.ber_warmup:
        return None
    ramp = max(config.ber_warmup * total_steps, 1.0)
    return config.train_ber * min((step + 1) / ramp, 1.0)


def augment(config: TrainConfig, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return crop_flip(images, rng) if config.augment == "crop-flip" else images


def uses_vendor_outputs(config: TrainConfig) -> bool:
    return config.labels == "vendor" or config.soft_targets > 0


@torch.no_grad()
def vendor_targets(
    setup: TrainSetup, source: GradientModel, x: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """What the EOPM loss aims at: the labels, or the clean outputs on the plain x of
    ``source``, the model this step's passes run on (the vendor, or a surrogate).

    Soft targets (``--soft-targets T``) are its clean softmax at T; ``--labels vendor``
    alone takes its argmax, so that no label is read.
    """
    config = setup.config
    if not uses_vendor_outputs(config):
        return labels
    module = source.step_module
    with autocast(setup.precision.precision, x.device):
        logits = module(x, module.prepare_overrides(source.step_weights.clean)).float()
    if config.soft_targets > 0:
        return torch.softmax(logits / config.soft_targets, dim=1)
    return logits.argmax(1)


@torch.no_grad()
def relabel_with_vendor(
    setup: TrainSetup, source: GradientModel, data: Dataset, batch: int = 250
) -> Dataset:
    """``data`` with the clean (stored) predictions of ``source`` as labels: its label-free
    holdout."""
    module, pre, clean = source.module, setup.preprocess, source.step_weights.clean
    predictions = []
    for start in range(0, len(data), batch):
        x = torch.from_numpy(pre.apply(data.images[start : start + batch])).to(setup.device)
        predictions.append(module(x, module.prepare_overrides(clean)).argmax(1).cpu().numpy())
    labels = np.concatenate(predictions) if predictions else data.labels[:0]
    return Dataset(data.images, labels.astype(data.labels.dtype), data.class_names, data.source)
