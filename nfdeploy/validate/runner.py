"""The trial runner: clean and faulty vendor sessions, with and without the generator."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tqdm import tqdm

from nfdeploy import __version__
from nfdeploy.data import Dataset, Preprocess, load_dataset
from nfdeploy.errors import NfdeployError
from nfdeploy.faults.onnx_model import FaultableModel, load_faultable
from nfdeploy.faults.onnx_weights import TensorSelection
from nfdeploy.faults.spec import EVAL_SEED_START, TRAIN_SEED_RANGE, FaultModel, FaultSpec, Storage
from nfdeploy.runtime.preprocessing import preprocess_for_model
from nfdeploy.runtime.session import make_session, run_logits
from nfdeploy.validate.report import BerResult, Samples, TrialResult, ValidationReport


def resolve_preprocess(
    text: str | None, vendor: FaultableModel, generator: FaultableModel | None
) -> Preprocess:
    """--preprocess wins; then the generator's stored preprocessing; then the vendor's; then 'unit'."""
    metadata = [generator.metadata] if generator else []
    return preprocess_for_model(
        text=text,
        metadata=[*metadata, vendor.metadata],
        dims=vendor.input_dims,
        name=str(vendor.path),
    )


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
    clean_pred = predict(clean_vendor, x, batch_size)
    ca = float(np.mean(clean_pred == labels))
    ca_nf = (
        None
        if fuser.clean is None
        else float(np.mean(predict(clean_vendor, fuser.clean, batch_size) == labels))
    )

    results: list[BerResult] = []
    samples = None
    bar = tqdm(
        total=len(specs) * trials, desc="validate", unit="trial", file=sys.stderr,
        disable=True if not progress else None,
    )  # fmt: skip
    for spec in specs:
        row = BerResult(ber=spec.ber, ca=ca, ca_nf=ca_nf)
        for trial, trial_seed in enumerate(seeds):
            result, pred, pred_nf = _run_trial(
                vendor,
                fuser,
                spec,
                trial,
                trial_seed,
                x,
                labels,
                faulty_generator,
                threads,
                batch_size,
            )
            row.trials.append(result)
            if trial == 0 and spec is specs[-1]:
                samples = _samples(
                    dataset, pre, fuser.clean, clean_pred, pred, pred_nf, spec.ber, trial_seed
                )
            bar.update(1)
            bar.set_postfix(ber=f"{spec.ber:g}", pa=f"{result.pa:.3f}")
        results.append(row)
    bar.close()
    header = _header(vendor, gen, dataset.source, len(x), pre, specs[0], seeds, faulty_generator)
    return ValidationReport(
        header=header, results=results, timing=_timing(results, len(x)), samples=samples
    )


def predict(session: ort.InferenceSession, x: np.ndarray, batch_size: int) -> np.ndarray:
    return np.argmax(run_logits(session, x, batch_size=batch_size), axis=1)


def _run_trial(
    vendor: FaultableModel, fuser: _Fuser, spec: FaultSpec, trial: int, seed: int, x: np.ndarray,
    labels: np.ndarray, faulty_generator: bool, threads: int, batch_size: int,
) -> tuple[TrialResult, np.ndarray, np.ndarray | None]:  # fmt: skip
    """One fault pattern: build the faulty session, then PA (and PA(NF)) over the data."""
    start = time.perf_counter()
    faulty, changed = vendor.faulty_bytes(spec, seed=seed, threads=max(threads, 1))
    session = make_session(faulty, threads=threads)
    inject_s = time.perf_counter() - start
    fused, gen_changed = fuser.for_trial(spec if faulty_generator else None, seed)
    start = time.perf_counter()
    pred = predict(session, x, batch_size)
    pred_nf = None if fused is None else predict(session, fused, batch_size)
    infer_s = time.perf_counter() - start
    pa = float(np.mean(pred == labels))
    pa_nf = None if pred_nf is None else float(np.mean(pred_nf == labels))
    return (
        TrialResult(trial, seed, changed, pa, pa_nf, inject_s, infer_s, gen_changed),
        pred,
        pred_nf,
    )


def _timing(results: list[BerResult], n_images: int) -> dict[str, float]:
    trials = [t for row in results for t in row.trials]
    infer = sum(t.infer_s for t in trials)
    inject = sum(t.inject_s for t in trials)
    passes = sum(1 if t.pa_nf is None else 2 for t in trials)
    return {
        "images_per_s": passes * n_images / infer if infer else 0.0,
        "inject_s_per_trial": inject / len(trials),
        "infer_s_per_trial": infer / len(trials),
        "overhead_ratio": inject / infer if infer else 0.0,
    }


SAMPLE_COUNT = 8


def _samples(
    dataset: Dataset, pre: Preprocess, fused: np.ndarray | None, clean: np.ndarray,
    perturbed: np.ndarray, perturbed_nf: np.ndarray | None, ber: float, seed: int,
) -> Samples:  # fmt: skip
    k = min(SAMPLE_COUNT, len(dataset))
    predictions = {"clean": clean[:k], "perturbed": perturbed[:k]}
    if perturbed_nf is not None:
        predictions["perturbed+NF"] = perturbed_nf[:k]
    fused_pixels = None if fused is None else to_pixels(fused[:k], pre)
    return Samples(
        dataset.images[:k],
        fused_pixels,
        dataset.labels[:k],
        list(dataset.class_names),
        predictions,
        ber,
        seed,
    )


def to_pixels(x: np.ndarray, pre: Preprocess) -> np.ndarray:
    """Model-input floats (N,C,H,W) back to uint8 pixels (N,H,W,C)."""
    values = x * pre.std_array().reshape(1, -1, 1, 1) + pre.mean_array().reshape(1, -1, 1, 1)
    return np.clip(np.rint(values / pre.scale), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


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
