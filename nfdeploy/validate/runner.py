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
from nfdeploy.faults.chipmap import ChipMap
from nfdeploy.faults.onnx_model import FaultableModel, load_faultable
from nfdeploy.faults.onnx_weights import TensorSelection
from nfdeploy.faults.ref_tiled import check_seed as check_ref_seed
from nfdeploy.faults.spec import (
    DEFAULT_FAULT_MODEL,
    EVAL_SEED_START,
    MAX_SEED,
    TRAIN_SEED_RANGE,
    FaultModel,
    FaultSpec,
    Storage,
)
from nfdeploy.runtime.fit import check_generator, check_labels, classifier_classes
from nfdeploy.runtime.preprocessing import preprocess_for_model
from nfdeploy.runtime.session import CPU_ONLY, make_session, resolve_providers, run_logits
from nfdeploy.validate.pool import Backend, Job, PoolInputs, run_backend, threads_per_worker
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
    if not 0 <= seed <= MAX_SEED or seed + trials - 1 > MAX_SEED:
        raise NfdeployError(
            f"--seed {seed}: trial seeds run from --seed to --seed + {trials - 1} and must stay "
            f"within 0..{MAX_SEED} (2**63 - 1); use --seed {EVAL_SEED_START} (the default)."
        )
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
    check_generator(generator.proto, str(generator.path))


class Fuser:
    """Applies G (clean once, or faulty per trial with --faulty-generator)."""

    def __init__(
        self,
        generator: FaultableModel | None,
        x: np.ndarray,
        batch: int,
        threads: int,
        *,
        providers: tuple[str, ...] = CPU_ONLY,
        clean: np.ndarray | None = None,  # G(x) when already computed (pool workers)
    ) -> None:
        self.generator, self.batch, self.threads, self.x = generator, batch, threads, x
        self.providers = providers
        self._name = None if generator is None else str(generator.path)
        if clean is None and generator is not None:
            clean = self.fuse(generator.clean_bytes())
        self.clean = clean

    def fuse(self, model_bytes: bytes) -> np.ndarray:
        fused = run_logits(
            make_session(
                model_bytes, threads=self.threads, name=self._name, providers=self.providers
            ),
            self.x,
            batch_size=self.batch,
        )
        if fused.shape != self.x.shape and self.generator is not None:
            raise NfdeployError(
                f"{self.generator.path}: not a generator: it maps {list(self.x.shape)} to "
                f"{list(fused.shape)}; pass the generator.onnx written by `nfdeploy export`."
            )
        return fused

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
    **options: Any,
) -> ValidationReport:
    """Accuracy of the vendor model, clean and under ``trials`` seeded fault patterns per BER."""
    generators = [generator] if generator else []
    return run_validations(model=model, data=data, bers=bers, generators=generators, **options)[0]


def run_validations(
    *,
    model: str | Path,
    data: str,
    bers: Sequence[float],
    generators: Sequence[str | Path] = (),
    trials: int = 10,
    seed: int = EVAL_SEED_START,
    fault_model: FaultModel = DEFAULT_FAULT_MODEL,
    storage: str = "auto",
    bit_positions: tuple[int, ...] | None = None,
    chip_map: Path | None = None,
    nested: bool = False,
    selection: TensorSelection | None = None,
    faulty_generator: bool = False,
    preprocess: str | None = None,
    split: str = "test",
    limit: int | None = None,
    threads: int = 0,
    batch_size: int = 256,
    workers: int = 1,
    backend: Backend = Backend.LOCAL,
    ray_address: str | None = None,
    provider: str = "cpu",
    progress: bool = True,
) -> list[ValidationReport]:
    """One report per generator (or one without NF), all from the same faulty vendor passes.

    Each trial builds the faulty vendor session once and runs it on the plain inputs once, then
    on each generator's fused inputs, so comparing k generators costs k + 1 passes, not 2k.
    With ``workers`` > 1 or the Ray backend, the trials of all BERs and generators run as one
    pool (:mod:`nfdeploy.validate.pool`, :mod:`nfdeploy.validate.ray_backend`); the results
    are the same.
    """
    if workers < 1:
        raise NfdeployError(f"--workers {workers}: need at least 1.")
    if trials < 1:
        raise NfdeployError(f"--trials {trials}: need at least 1 trial.")
    if batch_size < 1:
        raise NfdeployError(f"--batch-size {batch_size}: need at least 1.")
    if threads < 0:
        raise NfdeployError(f"--threads {threads}: use 0 (all cores) or more.")
    if not bers:
        raise NfdeployError("--ber: give at least one bit error rate, e.g. --ber 0.01.")
    if fault_model is FaultModel.CHIP_MAP:
        trials = 1  # a chip map is the same every trial
    seeds = check_seeds(seed, trials)
    if fault_model is FaultModel.REF_TILED:
        check_ref_seed(seeds[-1])  # before any work, not in the first trial
    providers = resolve_providers(provider)
    vendor = load_faultable(model, storage=storage, selection=selection)
    if not vendor.targets:
        raise NfdeployError(
            f"{model}: no Conv/Gemm/MatMul weight tensors selected; check --tensors."
        )
    classes = classifier_classes(vendor.proto, str(model))
    chip_note = _chip_map_note(chip_map, vendor) if fault_model is FaultModel.CHIP_MAP else None
    # a faulty generator is stored like the vendor (a float G emulates int8 storage)
    gen_storage = "auto" if vendor.storage is Storage.QDQ else vendor.storage.value
    gens = [load_faultable(g, storage=gen_storage, namespace="generator/") for g in generators]
    for gen in gens:
        _check_generator(gen, vendor)
    pre = _shared_preprocess(preprocess, vendor, gens)
    dataset = load_dataset(data, split=split, limit=limit, seed=0, progress=progress)
    check_labels(dataset.labels, classes, data=str(data), model=str(model))
    x, labels = pre.apply(dataset.images), dataset.labels
    specs = [
        FaultSpec(fault_model, float(b), vendor.storage, bit_positions, chip_map, nested=nested)
        for b in bers
    ]
    slots: list[FaultableModel | None] = [*gens] or [None]  # one report each; None: no G
    fusers = [Fuser(gen, x, batch_size, threads, providers=providers) for gen in slots]
    clean_vendor = make_session(
        vendor.clean_bytes(), threads=threads, name=str(vendor.path), providers=providers
    )
    clean_pred = predict(clean_vendor, x, batch_size)
    ca = float(np.mean(clean_pred == labels))
    ca_nf = [
        None
        if f.clean is None
        else float(np.mean(predict(clean_vendor, f.clean, batch_size) == labels))
        for f in fusers
    ]
    bar = tqdm(
        total=len(specs) * trials, desc="validate", unit="trial", file=sys.stderr,
        disable=True if not progress else None,
    )  # fmt: skip

    def done(job: Job, outcome: list[TrialOutcome]) -> None:
        bar.update(1)
        bar.set_postfix(ber=f"{specs[job[0]].ber:g}", pa=f"{outcome[0][0].pa:.3f}")

    jobs = [(i, trial, s) for i in range(len(specs)) for trial, s in enumerate(seeds)]
    if workers > 1 or backend is Backend.RAY:
        inputs = PoolInputs(
            str(model), storage, selection, tuple(str(g) for g in generators), gen_storage, x,
            labels, tuple(f.clean for f in fusers), faulty_generator,
            threads_per_worker(threads, workers), batch_size, providers,
        )  # fmt: skip
        outcomes = run_backend(
            backend, inputs, specs, jobs, workers=workers, ray_address=ray_address, on_done=done
        )
    else:
        outcomes = {}
        for job in jobs:
            i, trial, trial_seed = job
            outcomes[(i, trial)] = outcome = run_trial(
                vendor, fusers, specs[i], trial, trial_seed, x, labels, faulty_generator, threads,
                batch_size, providers,
            )  # fmt: skip
            done(job, outcome)
    rows: list[list[BerResult]] = [[] for _ in fusers]
    samples: list[Samples | None] = [None for _ in fusers]
    for i, spec in enumerate(specs):
        for k in range(len(fusers)):
            rows[k].append(BerResult(ber=spec.ber, ca=ca, ca_nf=ca_nf[k]))
        for trial, trial_seed in enumerate(seeds):
            for k, (result, pred, pred_nf) in enumerate(outcomes[(i, trial)]):
                rows[k][-1].trials.append(result)
                if trial == 0 and spec is specs[-1]:
                    samples[k] = _samples(
                        dataset, pre, fusers[k].clean, clean_pred, pred, pred_nf, spec.ber,
                        trial_seed,
                    )  # fmt: skip
    bar.close()
    reports = [
        ValidationReport(
            header=_header(vendor, fuser.generator, dataset.source, len(x), pre, specs[0], seeds,
                           faulty_generator),
            results=rows[k], timing=_timing(rows[k], len(x)), samples=samples[k],
        )
        for k, fuser in enumerate(fusers)
    ]  # fmt: skip
    for report in reports if chip_note else []:
        report.header["fault"]["chip_map_note"] = chip_note
    for report in reports:
        report.header["execution_provider"] = providers[0]
    return reports


def _chip_map_note(chip_map: Path | None, vendor: FaultableModel) -> str | None:
    """Load the map now (a corrupt one is refused before any work) and say how it lines up."""
    if chip_map is None:
        return None  # FaultSpec says --chip-map is needed
    note = ChipMap.load(chip_map).coverage_note(vendor.stored_bytes() * 8)
    if note:
        print(f"note: {chip_map}: {note}", file=sys.stderr)
    return note


def _shared_preprocess(
    text: str | None, vendor: FaultableModel, gens: list[FaultableModel]
) -> Preprocess:
    """All generators must agree on the preprocessing they were trained with."""
    slots: list[FaultableModel | None] = [*gens] or [None]
    choices = [resolve_preprocess(text, vendor, gen) for gen in slots]
    for gen, other in zip(gens[1:], choices[1:], strict=True):
        if other != choices[0]:
            raise NfdeployError(
                f"{gen.path}: stored preprocessing differs from {gens[0].path}'s; "
                "validate them separately or pass --preprocess."
            )
    return choices[0]


def predict(session: ort.InferenceSession, x: np.ndarray, batch_size: int) -> np.ndarray:
    logits = run_logits(session, x, batch_size=batch_size)
    if logits.ndim != 2 or logits.shape[0] != len(x):
        raise NfdeployError(
            f"the vendor model returned {list(logits.shape)} for {len(x)} images, not "
            "[N, classes]; nfdeploy needs a classifier with one row of class scores per image."
        )
    return np.argmax(logits, axis=1)


TrialOutcome = tuple[TrialResult, np.ndarray, np.ndarray | None]  # result, PA preds, PA(NF) preds


def run_trial(
    vendor: FaultableModel, fusers: list[Fuser], spec: FaultSpec, trial: int, seed: int,
    x: np.ndarray, labels: np.ndarray, faulty_generator: bool, threads: int, batch_size: int,
    providers: tuple[str, ...] = CPU_ONLY,
) -> list[TrialOutcome]:  # fmt: skip
    """One fault pattern: build the faulty session once, then PA and each generator's PA(NF)."""
    start = time.perf_counter()
    faulty, changed = vendor.faulty_bytes(spec, seed=seed, threads=max(threads, 1))
    session = make_session(faulty, threads=threads, name=str(vendor.path), providers=providers)
    inject_s = time.perf_counter() - start
    start = time.perf_counter()
    pred = predict(session, x, batch_size)
    base_s = time.perf_counter() - start
    pa = float(np.mean(pred == labels))
    out = []
    for fuser in fusers:
        fused, gen_changed = fuser.for_trial(spec if faulty_generator else None, seed)
        start = time.perf_counter()
        pred_nf = None if fused is None else predict(session, fused, batch_size)
        infer_s = base_s + time.perf_counter() - start
        pa_nf = None if pred_nf is None else float(np.mean(pred_nf == labels))
        result = TrialResult(trial, seed, changed, pa, pa_nf, inject_s, infer_s, gen_changed)
        out.append((result, pred, pred_nf))
    return out


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


def sample_index(labels: np.ndarray, count: int = SAMPLE_COUNT) -> np.ndarray:
    """The first image of each class (data sets are often sorted by class), then the next ones."""
    classes = np.unique(labels)
    firsts = [int(np.flatnonzero(labels == c)[0]) for c in classes][:count]
    taken = set(firsts)
    rest = [i for i in range(min(len(labels), 2 * count)) if i not in taken]
    return np.array(sorted(firsts + rest[: count - len(firsts)]), dtype=np.int64)


def _samples(
    dataset: Dataset, pre: Preprocess, fused: np.ndarray | None, clean: np.ndarray,
    perturbed: np.ndarray, perturbed_nf: np.ndarray | None, ber: float, seed: int,
) -> Samples:  # fmt: skip
    idx = sample_index(dataset.labels)
    predictions = {"clean": clean[idx], "perturbed": perturbed[idx]}
    if perturbed_nf is not None:
        predictions["perturbed+NF"] = perturbed_nf[idx]
    fused_pixels = None if fused is None else to_pixels(fused[idx], pre)
    return Samples(
        dataset.images[idx],
        fused_pixels,
        dataset.labels[idx],
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
