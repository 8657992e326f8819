"""Build everything a training run needs from a TrainConfig (model, data, generator, faults)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from nfdeploy.data import Dataset, Preprocess, load_dataset
from nfdeploy.errors import NfdeployError
from nfdeploy.faults.onnx_model import FaultableModel, load_faultable
from nfdeploy.faults.onnx_weights import TensorSelection
from nfdeploy.faults.spec import FaultModel, FaultSpec, parse_bit_positions
from nfdeploy.generators import FusedInput
from nfdeploy.generators.build import build_fused_input
from nfdeploy.onnx.load import open_model
from nfdeploy.onnx.metadata import metadata_dict
from nfdeploy.runs.config import TrainConfig
from nfdeploy.runtime.fit import check_labels, classifier_classes
from nfdeploy.runtime.preprocessing import preprocess_for_model
from nfdeploy.runtime.session import available_cores
from nfdeploy.torchify import VendorModule, load_vendor
from nfdeploy.train.perturbed import PerturbedWeights, StepWeights
from nfdeploy.train.precision import PrecisionChoice, resolve_precision

T = TypeVar("T")


@dataclass
class GradientModel:
    """A model the EOPM passes run on: the vendor, or one surrogate of the ensemble."""

    faultable: FaultableModel
    module: VendorModule
    weights: PerturbedWeights
    step_weights: StepWeights
    step_module: VendorModule  # what the EOPM passes call: ``module``, or it torch.compile'd


def gradient_model_index(step: int, count: int) -> int:
    """Global step ``step`` of the run takes its clean and perturbed passes from this model."""
    return step % count


@dataclass
class TrainSetup:
    config: TrainConfig
    device: torch.device
    vendor_sha256: str
    models: list[GradientModel]  # the vendor alone, or the surrogates in the order given
    spec: FaultSpec
    preprocess: Preprocess
    train_set: Dataset
    holdout_set: Dataset
    fused_input: FusedInput
    precision: PrecisionChoice
    prefetch: bool  # build the next chunk's fault patterns in a background thread

    def model_for_step(self, step: int) -> GradientModel:
        return self.models[gradient_model_index(step, len(self.models))]

    @property
    def chunk(self) -> int:
        return self.models[0].step_weights.chunk

    def provenance(self) -> dict[str, object]:
        """One surrogate (or the vendor): as ever; an ensemble: a list per gradient-model key."""
        faultables = [m.faultable for m in self.models]
        return {
            "precision": self.precision.to_dict(),
            "perturbed_chunk": self.chunk,
            "prefetch_patterns": self.prefetch,
            "vendor_sha256": self.vendor_sha256,
            "gradient_model": _one_or_list([f.path.name for f in faultables]),
            "gradient_model_sha256": _one_or_list([f.sha256 for f in faultables]),
            "fault": self.spec.to_dict(),
            "preprocess": self.preprocess.to_dict(),
            "tensors": _one_or_list([[t.name for t in f.targets] for f in faultables]),
            "input_shape": [
                self.preprocess.channels,
                self.preprocess.height,
                self.preprocess.width,
            ],
        }

    def speed_line(self) -> str:
        chunk = self.chunk
        passes = "one by one" if chunk == 1 else f"batched, {chunk} models per call"
        auto = " (auto)" if self.config.perturbed_chunk == 0 else ""
        where = "in a background thread" if self.prefetch else "inline (no free core)"
        compiled = ", torch.compile'd" if self.config.compile else ""
        count = len(self.models)
        ensemble = f"; {count} surrogates, step k on number k mod {count}" if count > 1 else ""
        return (
            f"precision {self.precision.precision.value} ({self.precision.reason}); "
            f"vendor passes {passes}{auto}{compiled}; fault patterns {where}; "
            f"device {self.device}{ensemble}"
        )


def _one_or_list(values: list[T]) -> T | list[T]:
    return values[0] if len(values) == 1 else values


# Weight sets per vendor call when --perturbed-chunk is 0. On the CPU the per-model loop is
# fastest (bench/train_step.py: vmap's grouped convolutions ran about 2x slower); on a GPU
# one call for the clean model and N = 10 perturbed ones keeps the device busy.
AUTO_CHUNK = {"cpu": 1, "cuda": 11}


def resolve_chunk(requested: int, device: torch.device) -> int:
    return requested or AUTO_CHUNK.get(device.type, 1)


def free_core(device: torch.device) -> bool:
    """Whether a background thread can build fault patterns without slowing the step.

    On a GPU the CPU waits on the device anyway. On the CPU, only if torch leaves a core
    idle: with every core in torch's thread team, the extra thread made a ResNet18 step
    1.26x (fp32) to 1.5x (bf16) slower on 2 cores (bench/train_step.py).
    """
    if device.type != "cpu":
        return True
    return torch.get_num_threads() < available_cores()


def resolve_preprocess(
    text: str | None, model: FaultableModel, *, vendor_metadata: Mapping[str, str]
) -> Preprocess:
    """``text``, else the vendor's stored spec (G is deployed in front of the vendor), else
    the gradient model's (a surrogate's), else 'unit'."""
    return preprocess_for_model(
        text=text,
        metadata=[vendor_metadata, model.metadata],
        dims=model.input_dims,
        name=str(model.path),
    )


def split_holdout(data: Dataset, holdout: int, seed: int) -> tuple[Dataset, Dataset]:
    if holdout >= len(data):
        raise NfdeployError(f"--holdout {holdout}: the training split has only {len(data)} images.")
    order = np.random.default_rng([seed, 17]).permutation(len(data))
    train_idx, holdout_idx = np.sort(order[holdout:]), order[:holdout]
    return _take(data, train_idx), _take(data, holdout_idx)


def _take(data: Dataset, index: np.ndarray) -> Dataset:
    return Dataset(data.images[index], data.labels[index], data.class_names, data.source)


def resolve_device(text: str) -> torch.device:
    """The training device; CUDA is checked here so a missing GPU is a one-line error."""
    try:
        device = torch.device(text)
    except RuntimeError:
        raise NfdeployError(f"--device {text}: not a torch device; use 'cpu' or 'cuda'.") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise NfdeployError(f"--device {text}: torch sees no CUDA device; use --device cpu.")
        if device.index is not None and device.index >= count:
            raise NfdeployError(f"--device {text}: only {count} CUDA device(s) visible.")
    elif device.type != "cpu":
        raise NfdeployError(f"--device {text}: only 'cpu' and 'cuda[:N]' are supported.")
    return device


def build_setup(config: TrainConfig, *, progress: bool) -> TrainSetup:
    if config.fault_model == FaultModel.CHIP_MAP.value:
        raise NfdeployError(
            "--fault-model chip-map is for validation; train with flip, stuck-at or ref-tiled."
        )
    if not Path(config.vendor).is_file():
        raise NfdeployError(f"{config.vendor}: no such vendor ONNX file. Check --model.")
    device = resolve_device(config.device)
    loaded = [
        _load_model(source, config, device) for source in config.surrogates or [config.vendor]
    ]
    faultables = [faultable for faultable, _ in loaded]
    first = faultables[0]
    vendor = open_model(config.vendor) if config.surrogates else None  # G runs before it
    vendor_sha = vendor.sha256 if vendor else first.sha256
    spec = _fault_spec(config, faultables)
    pre = resolve_preprocess(
        config.preprocess, first, vendor_metadata=metadata_dict(vendor.proto) if vendor else {}
    )
    data = load_dataset(
        config.data, split="train", limit=config.limit, seed=config.seed, progress=progress
    )
    if config.labels == "data":  # label-free runs never read the labels
        classes = classifier_classes(first.proto, str(first.path))
        check_labels(data.labels, classes, data=config.data, model=str(first.path))
    train_set, holdout_set = split_holdout(data, config.holdout, config.seed)
    models = [_gradient_model(f, module, spec, config, device) for f, module in loaded]
    return TrainSetup(
        config, device, vendor_sha, models, spec, pre, train_set, holdout_set,
        build_fused_input(
            generator=config.generator, seed=config.seed, pre=pre,
            channels_last=config.channels_last,
        ).to(device),
        resolve_precision(
            config.precision, device.type,
            cuda_bf16=device.type == "cuda" and torch.cuda.is_bf16_supported(),
        ),
        free_core(device),
    )  # fmt: skip


def _load_model(
    source: str, config: TrainConfig, device: torch.device
) -> tuple[FaultableModel, VendorModule]:
    opened = open_model(source)  # read, hashed and parsed once
    module = load_vendor(source, opened=opened).to(device)  # before load_faultable edits it
    selection = TensorSelection(include_bias=config.include_bias, pattern=config.tensors)
    faultable = load_faultable(source, storage=config.storage, selection=selection, opened=opened)
    if not faultable.targets:
        raise NfdeployError(f"{source}: no Conv/Gemm/MatMul weights selected; check --tensors.")
    _check_names(module, faultable)
    return faultable, module


def _fault_spec(config: TrainConfig, faultables: list[FaultableModel]) -> FaultSpec:
    """One fault spec for every gradient model: an ensemble shares one weight storage."""
    first = faultables[0]
    for other in faultables[1:]:
        if other.storage is not first.storage:
            raise NfdeployError(
                f"--surrogate {other.path}: its weights are stored as {other.storage.value}, "
                f"those of {first.path} as {first.storage.value}; pass --storage to give the "
                "ensemble one storage, or use surrogates of one format."
            )
    return FaultSpec(
        FaultModel(config.fault_model),
        config.train_ber,
        first.storage,
        parse_bit_positions(config.bits),
    )


def _gradient_model(
    faultable: FaultableModel,
    module: VendorModule,
    spec: FaultSpec,
    config: TrainConfig,
    device: torch.device,
) -> GradientModel:
    weights = PerturbedWeights(faultable, spec, threads=1, channels_last=config.channels_last)
    step_weights = StepWeights(
        weights,
        lam=config.lam,
        n_perturbed=config.n_perturbed,
        chunk=resolve_chunk(config.perturbed_chunk, device),
        device=device,
    )
    step_module = _step_module(module, config, step_weights.chunk)
    return GradientModel(faultable, module, weights, step_weights, step_module)


def _step_module(module: VendorModule, config: TrainConfig, chunk: int) -> VendorModule:
    if not config.compile:
        return module
    if chunk > 1:
        raise NfdeployError(
            "--compile works with the per-model loop only; use --perturbed-chunk 1 with it."
        )
    # The compiled module forwards attribute access (weight_overrides) to the original.
    return torch.compile(module)  # type: ignore[return-value]


def _check_names(module: VendorModule, faultable: FaultableModel) -> None:
    known = set(module.fault_targets())
    missing = [t.name for t in faultable.targets if t.name not in known]
    if missing:
        raise NfdeployError(
            f"{faultable.path}: the torch conversion does not expose weights {missing[:3]}; "
            "please report this model's exporter."
        )


def cosine_lr(total_steps: int, floor: float) -> object:
    """Cosine decay from 1 to ``floor`` over the whole run (never to zero)."""

    def factor(step: int) -> float:
        progress = min(step / max(total_steps, 1), 1.0)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def make_optimizer(
    fused: nn.Module, config: TrainConfig, steps_per_epoch: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    optimizer = torch.optim.Adam(fused.parameters(), lr=config.lr, betas=(0.5, 0.999))
    schedule = cosine_lr(config.epochs * steps_per_epoch, config.lr_floor)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)  # type: ignore[arg-type]
