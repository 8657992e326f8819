"""Validation trials in a local process pool (``validate --workers K``).

Each worker receives the model paths and the preprocessed data once (pool initializer),
loads the models itself and builds every onnxruntime session inside the process. A trial is
a pure function of (fault spec, trial seed), so the results equal a single-process run.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np

from nfdeploy.faults.onnx_weights import TensorSelection
from nfdeploy.faults.spec import FaultSpec
from nfdeploy.runtime.session import available_cores

if TYPE_CHECKING:
    from nfdeploy.faults.onnx_model import FaultableModel
    from nfdeploy.validate.trial import TrialOutcome

Job = tuple[int, int, int]  # (spec index, trial index, trial seed)
OnDone = Callable[[Job, "list[TrialOutcome]"], Any]


class Backend(str, Enum):
    LOCAL = "local"  # this machine: in-process (--workers 1) or a process pool
    RAY = "ray"  # Ray actors, local or on a cluster


@dataclass(frozen=True)
class PoolInputs:
    """What every worker needs, sent to each worker once."""

    model: str
    storage: str
    selection: TensorSelection | None
    generators: tuple[str, ...]
    generator_storage: str
    x: np.ndarray
    labels: np.ndarray
    clean_fused: tuple[np.ndarray | None, ...]  # per report slot, computed once by the parent
    faulty_generator: bool
    threads: int
    batch_size: int
    providers: tuple[str, ...]


def threads_per_worker(threads: int, workers: int) -> int:
    """--threads, or the cores shared out between the workers (at least 1 each)."""
    return threads or max(1, available_cores() // workers)


class TrialWorker:
    """One worker's models and generator slots, loaded once; runs trials (pool and Ray)."""

    def __init__(self, inputs: PoolInputs) -> None:
        from nfdeploy.faults.onnx_model import load_faultable
        from nfdeploy.validate.trial import Fuser, TrialInputs

        i = inputs
        vendor = load_faultable(i.model, storage=i.storage, selection=i.selection)
        generators: list[FaultableModel | None] = [
            load_faultable(g, storage=i.generator_storage, namespace="generator/")
            for g in i.generators
        ] or [None]
        fusers = [
            Fuser(gen, i.x, i.batch_size, i.threads, providers=i.providers, clean=clean)
            for gen, clean in zip(generators, i.clean_fused, strict=True)
        ]
        self.trial_inputs = TrialInputs(vendor, fusers, i.x, i.labels, i.faulty_generator,
                                        i.threads, i.batch_size, i.providers)  # fmt: skip

    def run(self, spec: FaultSpec, trial: int, seed: int) -> list[TrialOutcome]:
        from nfdeploy.validate.trial import run_trial

        return run_trial(self.trial_inputs, spec, trial, seed)


_worker: TrialWorker | None = None  # this worker process's models, set once by _start


def _start(inputs: PoolInputs) -> None:
    global _worker
    _worker = TrialWorker(inputs)


def _run(spec: FaultSpec, trial: int, seed: int) -> list[TrialOutcome]:
    assert _worker is not None, "the pool initializer did not run"
    return _worker.run(spec, trial, seed)


def run_pool(
    inputs: PoolInputs,
    specs: Sequence[FaultSpec],
    jobs: Sequence[Job],
    *,
    workers: int,
    on_done: OnDone,
) -> dict[tuple[int, int], list[TrialOutcome]]:
    """Every job on ``workers`` processes (spawned: no state forked from onnxruntime)."""
    context = multiprocessing.get_context("spawn")
    outcomes: dict[tuple[int, int], list[TrialOutcome]] = {}
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_start, initargs=(inputs,)
    ) as pool:
        futures = {
            pool.submit(_run, specs[s], trial, seed): (s, trial, seed) for s, trial, seed in jobs
        }
        for future in as_completed(futures):
            job = futures[future]
            outcomes[job[:2]] = result = future.result()
            on_done(job, result)
    return outcomes


def run_backend(
    backend: Backend,
    inputs: PoolInputs,
    specs: Sequence[FaultSpec],
    jobs: Sequence[Job],
    *,
    workers: int,
    ray_address: str | None,
    on_done: OnDone,
) -> dict[tuple[int, int], list[TrialOutcome]]:
    """All jobs on the chosen backend; every backend returns the same outcomes."""
    if backend is Backend.RAY:
        from nfdeploy.validate.ray_backend import run_ray

        return run_ray(inputs, specs, jobs, workers=workers, address=ray_address, on_done=on_done)
    return run_pool(inputs, specs, jobs, workers=workers, on_done=on_done)
