"""run_validations: the trials of a ValidateConfig, on the chosen backend, into reports."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from nfdeploy.data import Dataset, Preprocess, load_dataset
from nfdeploy.errors import NfdeployError
from nfdeploy.faults.chipmap import ChipMap
from nfdeploy.faults.onnx_model import FaultableModel, load_faultable
from nfdeploy.faults.ref_tiled import check_seed as check_ref_seed
from nfdeploy.faults.spec import (
    EVAL_SEED_START,
    MAX_SEED,
    TRAIN_SEED_RANGE,
    FaultModel,
    FaultSpec,
    Storage,
)
from nfdeploy.onnx.session import make_session, resolve_providers
from nfdeploy.runtime.fit import check_generator, check_labels, classifier_classes
from nfdeploy.runtime.preprocessing import preprocess_for_model
from nfdeploy.validate.assemble import (
    Slot,
    report_header,
    sample_predictions,
    timing_summary,
)
from nfdeploy.validate.config import ValidateConfig
from nfdeploy.validate.pool import Backend, Job, PoolInputs, run_backend, threads_per_worker
from nfdeploy.validate.report import BerResult, ValidationReport
from nfdeploy.validate.trial import Fuser, TrialInputs, TrialOutcome, predict, run_trial

Outcomes = dict[tuple[int, int], list[TrialOutcome]]  # (BER index, trial) -> one per slot


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


def run_validation(*, generator: str | Path | None = None, **options: Any) -> ValidationReport:
    """One report (at most one generator); ``options`` are :class:`ValidateConfig` fields."""
    generators = (str(generator),) if generator else ()
    return run_validations(ValidateConfig(generators=generators, **options))[0]


def run_validations(config: ValidateConfig) -> list[ValidationReport]:
    """One report per generator (or one without NF), all from the same faulty vendor passes.

    Each trial builds the faulty vendor session once and runs it on the plain inputs once, then
    on each generator's fused inputs, so comparing k generators costs k + 1 passes, not 2k.
    With ``workers`` > 1 or the Ray backend, the trials of all BERs and generators run as one
    pool (:mod:`nfdeploy.validate.pool`, :mod:`nfdeploy.validate.ray_backend`); the results
    are the same.
    """
    c = config
    seeds = check_seeds(c.seed, c.seeds_count)
    if c.fault_model is FaultModel.REF_TILED:
        check_ref_seed(seeds[-1])  # before any work, not in the first trial
    providers = resolve_providers(c.provider)
    vendor, gens, chip_note = _load_models(c)
    pre = _shared_preprocess(c.preprocess, vendor, gens)
    dataset = load_dataset(c.data, split=c.split, limit=c.limit, seed=0, progress=c.progress)
    check_labels(dataset.labels, classifier_classes(vendor.proto, str(c.model)),
                 data=str(c.data), model=str(c.model))  # fmt: skip
    x = pre.apply(dataset.images)
    specs = [
        FaultSpec(c.fault_model, b, vendor.storage, c.bit_positions, c.chip_map, nested=c.nested)
        for b in c.bers
    ]
    slots: list[FaultableModel | None] = [*gens] or [None]  # one report each; None: no G
    fusers = [Fuser(g, x, c.batch_size, c.threads, providers=providers) for g in slots]
    inputs = TrialInputs(vendor, fusers, x, dataset.labels, c.faulty_generator, c.threads,
                         c.batch_size, providers)  # fmt: skip
    clean_pred, reports = _clean_pass(inputs)
    outcomes = _run_trials(c, inputs, specs, seeds)
    ca = float(np.mean(clean_pred == dataset.labels))
    _collect(reports, specs, seeds, outcomes, _SampleSource(dataset, pre, clean_pred, ca))
    return [
        _report(slot, c, vendor, dataset, pre, specs[0], seeds, chip_note, providers)
        for slot in reports
    ]


def _load_models(c: ValidateConfig) -> tuple[FaultableModel, list[FaultableModel], str | None]:
    vendor = load_faultable(c.model, storage=c.storage, selection=c.selection)
    if not vendor.targets:
        raise NfdeployError(
            f"{c.model}: no Conv/Gemm/MatMul weight tensors selected; check --tensors."
        )
    classifier_classes(vendor.proto, str(c.model))
    chip_note = _chip_map_note(c.chip_map, vendor) if c.fault_model is FaultModel.CHIP_MAP else None
    gens = [load_faultable(g, storage=_generator_storage(vendor), namespace="generator/")
            for g in c.generators]  # fmt: skip
    for gen in gens:
        _check_generator(gen, vendor)
    return vendor, gens, chip_note


def _generator_storage(vendor: FaultableModel) -> str:
    """A faulty generator is stored like the vendor (a float G emulates int8 storage)."""
    return "auto" if vendor.storage is Storage.QDQ else vendor.storage.value


def _clean_pass(inputs: TrialInputs) -> tuple[np.ndarray, list[Slot]]:
    """The fault-free vendor's predictions, and each slot's CA(NF)."""
    session = make_session(
        inputs.vendor.clean_bytes(), threads=inputs.threads, name=str(inputs.vendor.path),
        providers=inputs.providers,
    )  # fmt: skip
    clean_pred = predict(session, inputs.x, inputs.batch_size)
    slots = [
        Slot(f, None if f.clean is None else _accuracy(session, f.clean, inputs))
        for f in inputs.fusers
    ]
    return clean_pred, slots


def _accuracy(session: Any, x: np.ndarray, inputs: TrialInputs) -> float:
    return float(np.mean(predict(session, x, inputs.batch_size) == inputs.labels))


def _run_trials(
    c: ValidateConfig, inputs: TrialInputs, specs: list[FaultSpec], seeds: list[int]
) -> Outcomes:
    """Every (BER, trial) as one pool of jobs: in this process, a process pool or Ray."""
    jobs = [(i, trial, s) for i in range(len(specs)) for trial, s in enumerate(seeds)]
    bar = tqdm(total=len(jobs), desc="validate", unit="trial", file=sys.stderr,
               disable=True if not c.progress else None)  # fmt: skip
    done = _progress(bar, specs)
    try:
        if c.workers == 1 and c.backend is Backend.LOCAL:
            return _run_here(inputs, specs, jobs, done)
        pool_inputs = PoolInputs(
            str(c.model), c.storage, c.selection, c.generators, _generator_storage(inputs.vendor),
            inputs.x, inputs.labels, tuple(f.clean for f in inputs.fusers), c.faulty_generator,
            threads_per_worker(c.threads, c.workers), c.batch_size, inputs.providers,
        )  # fmt: skip
        return run_backend(c.backend, pool_inputs, specs, jobs, workers=c.workers,
                           ray_address=c.ray_address, on_done=done)  # fmt: skip
    finally:
        bar.close()


def _progress(bar: Any, specs: list[FaultSpec]) -> Callable[[Job, list[TrialOutcome]], None]:
    def done(job: Job, outcome: list[TrialOutcome]) -> None:
        bar.update(1)
        bar.set_postfix(ber=f"{specs[job[0]].ber:g}", pa=f"{outcome[0][0].pa:.3f}")

    return done


def _run_here(
    inputs: TrialInputs, specs: list[FaultSpec], jobs: list[Job],
    done: Callable[[Job, list[TrialOutcome]], None],
) -> Outcomes:  # fmt: skip
    outcomes: Outcomes = {}
    for job in jobs:
        i, trial, seed = job
        outcomes[(i, trial)] = outcome = run_trial(inputs, specs[i], trial, seed)
        done(job, outcome)
    return outcomes


class _SampleSource:
    """The clean pass: CA, and what the last BER's first-trial sample figure is drawn from."""

    def __init__(
        self, dataset: Dataset, pre: Preprocess, clean_pred: np.ndarray, ca: float
    ) -> None:
        self.dataset, self.pre, self.clean_pred, self.ca = dataset, pre, clean_pred, ca


def _collect(
    slots: list[Slot], specs: list[FaultSpec], seeds: list[int], outcomes: Outcomes,
    source: _SampleSource,
) -> None:  # fmt: skip
    """Outcomes, ordered by BER and trial index (never by finishing order), into the slots."""
    for i, spec in enumerate(specs):
        for slot in slots:
            slot.rows.append(BerResult(ber=spec.ber, ca=source.ca, ca_nf=slot.ca_nf))
        for trial, seed in enumerate(seeds):
            for slot, (result, pred, pred_nf) in zip(slots, outcomes[(i, trial)], strict=True):
                slot.rows[-1].trials.append(result)
                if trial == 0 and spec is specs[-1]:
                    slot.samples = sample_predictions(
                        source.dataset, source.pre, slot.fuser.clean, source.clean_pred, pred,
                        pred_nf, spec.ber, seed,
                    )  # fmt: skip


def _report(
    slot: Slot, c: ValidateConfig, vendor: FaultableModel, dataset: Dataset, pre: Preprocess,
    spec: FaultSpec, seeds: list[int], chip_note: str | None, providers: tuple[str, ...],
) -> ValidationReport:  # fmt: skip
    header = report_header(vendor, slot.fuser.generator, dataset.source, len(dataset.images),
                           pre, spec, seeds, c.faulty_generator)  # fmt: skip
    if chip_note:
        header["fault"]["chip_map_note"] = chip_note
    header["execution_provider"] = providers[0]
    return ValidationReport(header=header, results=slot.rows,
                            timing=timing_summary(slot.rows, len(dataset.images)),
                            samples=slot.samples)  # fmt: skip


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
