"""The trial runner: clean and faulty vendor sessions, with and without the generator."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from nfdeploy import __version__
from nfdeploy.data import Preprocess, load_dataset
from nfdeploy.errors import NfdeployError
from nfdeploy.faults.onnx_model import FaultableModel, load_faultable
from nfdeploy.faults.onnx_weights import TensorSelection
from nfdeploy.faults.spec import EVAL_SEED_START, TRAIN_SEED_RANGE, FaultModel, FaultSpec, Storage
from nfdeploy.runtime.session import make_session, run_logits
from nfdeploy.validate.report import BerResult, TrialResult, ValidationReport

PREPROCESS_KEY = "nfdeploy.preprocess"


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, axis=1) == labels)) if len(labels) else 0.0


def resolve_preprocess(
    text: str | None, vendor: FaultableModel, generator: FaultableModel | None
) -> Preprocess:
    """--preprocess wins; then the generator's stored preprocessing; then the vendor's; then 'unit'."""
    if text is not None:
        pre = Preprocess.parse(text)
    else:
        stored = (generator.metadata if generator else {}).get(
            PREPROCESS_KEY
        ) or vendor.metadata.get(PREPROCESS_KEY)
        pre = Preprocess.from_dict(json.loads(stored)) if stored else Preprocess.parse("unit")
    dims = vendor.input_dims
    if len(dims) != 4:
        raise NfdeployError(
            f"{vendor.path}: expected an image model with NCHW input, got dims {dims}."
        )
    channels, height, width = dims[1:]
    if channels and height and width:
        pre = dataclasses.replace(pre, channels=channels, height=height, width=width)
    return pre


def check_seeds(seed: int, trials: int) -> list[int]:
    seeds = list(range(seed, seed + trials))
    low, high = TRAIN_SEED_RANGE
    if seed < high and seeds[-1] >= low:
        raise NfdeployError(
            f"--seed {seed}: evaluation seeds must not overlap the training range {low}..{high - 1}; "
            f"use --seed {EVAL_SEED_START} (the default) or higher."
        )
    return seeds


def _check_generator(generator: FaultableModel, vendor: FaultableModel) -> None:
    if generator.input_dims[1:] != vendor.input_dims[1:]:
        raise NfdeployError(
            f"{generator.path}: generator input {generator.input_dims} does not match the vendor "
            f"input {vendor.input_dims}; export the generator for this vendor model."
        )


class _Fuser:
    """Applies G (clean once, or faulty per trial with --faulty-generator)."""

    def __init__(
        self, generator: FaultableModel | None, x: np.ndarray, batch: int, threads: int
    ) -> None:
        self.generator, self.batch, self.threads, self.x = generator, batch, threads, x
        self.clean = None if generator is None else self.fuse(generator.clean_bytes())

    def fuse(self, model_bytes: bytes) -> np.ndarray:
        return run_logits(
            make_session(model_bytes, threads=self.threads), self.x, batch_size=self.batch
        )

    def for_trial(self, spec: FaultSpec | None, seed: int) -> tuple[np.ndarray | None, int]:
        """Fused inputs for this trial and the number of generator bits changed."""
        if self.generator is None or spec is None:
            return self.clean, 0
        spec = dataclasses.replace(spec, storage=self.generator.storage)
        faulty, changed = self.generator.faulty_bytes(spec, seed=seed, threads=max(self.threads, 1))
        return self.fuse(faulty), changed


def run_validation(
    *,
    model: str | Path,
    data: str,
    bers: Sequence[float],
    generator: str | Path | None = None,
    trials: int = 10,
    seed: int = EVAL_SEED_START,
    fault_model: FaultModel = FaultModel.FLIP,
    storage: str = "auto",
    bit_positions: tuple[int, ...] | None = None,
    chip_map: Path | None = None,
    selection: TensorSelection | None = None,
    faulty_generator: bool = False,
    preprocess: str | None = None,
    split: str = "test",
    limit: int | None = None,
    threads: int = 0,
    batch_size: int = 256,
    progress: bool = True,
) -> ValidationReport:
    """Accuracy of the vendor model, clean and under ``trials`` seeded fault patterns per BER."""
    if trials < 1:
        raise NfdeployError(f"--trials {trials}: need at least 1 trial.")
    if not bers:
        raise NfdeployError("--ber: give at least one bit error rate, e.g. --ber 0.01.")
    if fault_model is FaultModel.CHIP_MAP:
        trials = 1  # a chip map is the same every trial
    seeds = check_seeds(seed, trials)
    vendor = load_faultable(model, storage=storage, selection=selection)
    if not vendor.targets:
        raise NfdeployError(
            f"{model}: no Conv/Gemm/MatMul weight tensors selected; check --tensors."
        )
    gen = None
    if generator:  # a faulty generator is stored like the vendor (a float G emulates int8 storage)
        gen_storage = "auto" if vendor.storage is Storage.QDQ else vendor.storage.value
        gen = load_faultable(generator, storage=gen_storage, namespace="generator/")
    if gen is not None:
        _check_generator(gen, vendor)
    pre = resolve_preprocess(preprocess, vendor, gen)
    dataset = load_dataset(data, split=split, limit=limit, seed=0, progress=progress)
    x = pre.apply(dataset.images)
    labels = dataset.labels
    specs = [
        FaultSpec(fault_model, float(b), vendor.storage, bit_positions, chip_map) for b in bers
    ]
    fuser = _Fuser(gen, x, batch_size, threads)

    clean_vendor = make_session(vendor.clean_bytes(), threads=threads)
    ca = accuracy(run_logits(clean_vendor, x, batch_size=batch_size), labels)
    ca_nf = (
        None
        if fuser.clean is None
        else accuracy(run_logits(clean_vendor, fuser.clean, batch_size=batch_size), labels)
    )

    results, infer_total, inject_total, images = [], 0.0, 0.0, 0
    bar = tqdm(
        total=len(specs) * trials,
        desc="validate",
        unit="trial",
        file=sys.stderr,
        disable=not progress or None,
    )
    for spec in specs:
        row = BerResult(ber=spec.ber, ca=ca, ca_nf=ca_nf)
        for trial, trial_seed in enumerate(seeds):
            start = time.perf_counter()
            faulty, changed = vendor.faulty_bytes(spec, seed=trial_seed, threads=max(threads, 1))
            session = make_session(faulty, threads=threads)
            inject_s = time.perf_counter() - start
            fused, gen_changed = fuser.for_trial(spec if faulty_generator else None, trial_seed)
            start = time.perf_counter()
            pa = accuracy(run_logits(session, x, batch_size=batch_size), labels)
            pa_nf = (
                None
                if fused is None
                else accuracy(run_logits(session, fused, batch_size=batch_size), labels)
            )
            infer_s = time.perf_counter() - start
            row.trials.append(
                TrialResult(trial, trial_seed, changed, pa, pa_nf, inject_s, infer_s, gen_changed)
            )
            infer_total, inject_total = infer_total + infer_s, inject_total + inject_s
            images += len(x) * (1 if fused is None else 2)
            bar.update(1)
            bar.set_postfix(ber=f"{spec.ber:g}", pa=f"{pa:.3f}")
        results.append(row)
    bar.close()
    header = _header(vendor, gen, dataset.source, len(x), pre, specs[0], seeds, faulty_generator)
    timing = {
        "images_per_s": images / infer_total if infer_total else 0.0,
        "inject_s_per_trial": inject_total / (len(specs) * trials),
        "infer_s_per_trial": infer_total / (len(specs) * trials),
        "overhead_ratio": inject_total / infer_total if infer_total else 0.0,
    }
    return ValidationReport(header=header, results=results, timing=timing)


def _header(
    vendor: FaultableModel,
    gen: FaultableModel | None,
    source: str,
    n_images: int,
    pre: Preprocess,
    spec: FaultSpec,
    seeds: list[int],
    faulty_generator: bool,
) -> dict[str, Any]:
    fault = spec.to_dict()
    fault.pop("ber")
    fault["definition"] = spec.describe().replace(f"p = {spec.ber:g}", "p = BER")
    return {
        "tool": f"nfdeploy {__version__}",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "vendor": {
            "path": str(vendor.path),
            "sha256": vendor.sha256,
            "batch": vendor.batch_note,
            "storage": vendor.storage.value,
        },
        "generator": None
        if gen is None
        else {
            "path": str(gen.path),
            "sha256": gen.sha256,
            "faulty": faulty_generator,
            "metadata": gen.metadata,
        },
        "data": {"source": source, "images": n_images},
        "preprocess": pre.to_dict(),
        "fault": fault,
        "trials": len(seeds),
        "seeds": seeds,
        "seed_scheme": "trial k uses seed (--seed + k); tensor stream = FNV-1a-64(name); see nfdeploy.faults.kernel",
        "tensors": [t.to_dict() for t in vendor.targets],
        "stored_bytes": vendor.stored_bytes(),
    }
