"""Seeded trials with faults only in chosen tensors, on validate's own fault patterns.

Per trial seed, :func:`faulty_codes` draws the faults of EVERY target exactly as
``validate`` does (``perturb`` over the same ``StoredWeight`` list, tensor stream =
FNV-1a-64 of its name, chip-map addresses from the full layout). A configuration then
writes the faulty codes of its tensors and the clean codes of all others, so a tensor's
faults here are bit for bit its faults in a full ``validate`` run with the same seed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nfdeploy.data import Preprocess, load_dataset
from nfdeploy.errors import NfdeployError
from nfdeploy.faults.onnx_model import FaultableModel, load_faultable
from nfdeploy.faults.onnx_weights import TensorSelection, write_weights
from nfdeploy.faults.spec import FaultModel, FaultSpec
from nfdeploy.faults.storage import perturb
from nfdeploy.onnx.session import make_session
from nfdeploy.runtime.fit import check_labels, classifier_classes
from nfdeploy.validate.runner import check_seeds, resolve_preprocess
from nfdeploy.validate.trial import predict

FaultyCodes = list[tuple[np.ndarray, int]]  # per target: faulty codes, bits changed


@dataclass(frozen=True)
class Trial:
    seed: int
    pa: float
    bits_changed: int


@dataclass
class Setup:
    """What every configuration shares: the loaded vendor, the data, the spec, the seeds."""

    vendor: FaultableModel
    spec: FaultSpec
    seeds: list[int]
    x: np.ndarray
    labels: np.ndarray
    source: str
    pre: Preprocess
    ca: float
    threads: int
    batch_size: int


def load_setup(
    *,
    model: str | Path,
    data: str,
    ber: float,
    trials: int,
    seed: int,
    fault_model: FaultModel,
    storage: str,
    bit_positions: tuple[int, ...] | None,
    chip_map: Path | None,
    selection: TensorSelection,
    preprocess: str | None,
    split: str,
    limit: int | None,
    threads: int,
    batch_size: int,
    progress: bool,
) -> Setup:
    """Load and check everything as validate does, and measure CA once."""
    if fault_model is FaultModel.CHIP_MAP:
        trials = 1  # a chip map is the same every trial
    seeds = check_seeds(seed, trials)
    vendor = load_faultable(model, storage=storage, selection=selection)
    if not vendor.targets:
        raise NfdeployError(
            f"{model}: no Conv/Gemm/MatMul weight tensors selected; check --tensors."
        )
    spec = FaultSpec(fault_model, float(ber), vendor.storage, bit_positions, chip_map)
    classes = classifier_classes(vendor.proto, str(model))
    pre = resolve_preprocess(preprocess, vendor, None)
    dataset = load_dataset(data, split=split, limit=limit, seed=0, progress=progress)
    check_labels(dataset.labels, classes, data=str(data), model=str(model))
    x = pre.apply(dataset.images)
    setup = Setup(
        vendor, spec, seeds, x, dataset.labels, dataset.source, pre, 0.0, threads, batch_size
    )
    setup.ca = accuracy(setup, vendor.clean_bytes())
    return setup


def accuracy(setup: Setup, model_bytes: bytes) -> float:
    session = make_session(model_bytes, threads=setup.threads, name=str(setup.vendor.path))
    return float(np.mean(predict(session, setup.x, setup.batch_size) == setup.labels))


def faulty_codes(setup: Setup, seed: int) -> FaultyCodes:
    """Every target's faults for this trial seed: the call ``validate`` makes."""
    vendor = setup.vendor
    return perturb(
        vendor.stored,
        setup.spec,
        seed=seed,
        threads=max(setup.threads, 1),
        namespace=vendor.namespace,
    )


def masked_bytes(
    vendor: FaultableModel, faulty: FaultyCodes, names: Collection[str]
) -> tuple[bytes, int]:
    """The model with faults only in the tensors ``names`` (others clean), and bits changed."""
    chosen = [weight.name in names for weight in vendor.stored]
    codes = [
        codes if keep else weight.codes
        for (codes, _), weight, keep in zip(faulty, vendor.stored, chosen, strict=True)
    ]
    write_weights(vendor.proto, vendor.targets, vendor.stored, codes)
    changed = sum(bits for (_, bits), keep in zip(faulty, chosen, strict=True) if keep)
    return vendor.proto.SerializeToString(), changed


def run_configs(
    setup: Setup,
    configs: Sequence[Collection[str]],
    on_done: Callable[[], object] = lambda: None,
) -> list[list[Trial]]:
    """Per configuration (a set of faulty tensor names), one :class:`Trial` per seed."""
    results: list[list[Trial]] = [[] for _ in configs]
    for seed in setup.seeds:
        faulty = faulty_codes(setup, seed)
        for trials, names in zip(results, configs, strict=True):
            model_bytes, changed = masked_bytes(setup.vendor, faulty, names)
            trials.append(Trial(seed, accuracy(setup, model_bytes), changed))
            on_done()
    return results
