"""Validation trials on a Ray cluster (``validate --backend ray``; extra ``nfdeploy[ray]``).

The same trial function as the process pool (:class:`nfdeploy.validate.pool.TrialWorker`)
runs in Ray actors. The models and data go into the object store once (``ray.put``); each
actor loads them once. An actor whose process dies is restarted by Ray and its unfinished
trial is retried with the same seed, so the results equal a single-process run.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nfdeploy.errors import NfdeployError
from nfdeploy.faults.spec import FaultSpec
from nfdeploy.validate.pool import Job, OnDone, PoolInputs, TrialWorker

if TYPE_CHECKING:
    from nfdeploy.validate.trial import TrialOutcome

INSTALL_HINT = "pip install 'nfdeploy[ray]'"
#: Tests only: "spec:trial:marker" makes the actor running that job exit once (retry test).
CRASH_ONCE_ENV = "NFDEPLOY_TEST_CRASH_ONCE"
TASK_RETRIES = 3
IN_FLIGHT_PER_ACTOR = 2  # one running, one queued: no idle gap between trials


class TrialActor:
    """One Ray worker process: the models of :class:`TrialWorker`, built on its first trial.

    The inputs come as an object-store reference inside a list (so Ray does not resolve it
    at the call), fetched once per process; a restarted actor fetches them again.
    """

    def __init__(self) -> None:
        self.worker: TrialWorker | None = None

    def run(
        self, shared: list[Any], spec_index: int, spec: FaultSpec, trial: int, seed: int
    ) -> list[TrialOutcome]:
        _crash_once_if_asked(spec_index, trial)
        if self.worker is None:
            import ray

            self.worker = TrialWorker(ray.get(shared[0]))
        return self.worker.run(spec, trial, seed)


def _crash_once_if_asked(spec_index: int, trial: int) -> None:
    wanted = os.environ.get(CRASH_ONCE_ENV)
    if not wanted:
        return
    s, t, marker = wanted.split(":", 2)
    if (int(s), int(t)) == (spec_index, trial) and not Path(marker).exists():
        Path(marker).touch()
        os._exit(1)  # a worker dying mid-trial, as a lost node would


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise NfdeployError(f"--backend ray: ray is not installed; {INSTALL_HINT}") from None
    return ray


def run_ray(
    inputs: PoolInputs,
    specs: Sequence[FaultSpec],
    jobs: Sequence[Job],
    *,
    workers: int,
    address: str | None,
    on_done: OnDone,
) -> dict[tuple[int, int], list[TrialOutcome]]:
    """Every job on ``workers`` Ray actors; ``address`` (or RAY_ADDRESS, or a local Ray)."""
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        _connect(ray, address)
    try:
        shared = [ray.put(inputs)]  # once into the object store, held until the last trial
        return _drain(ray, _start_actors(ray, workers), shared, specs, jobs, on_done)
    finally:
        if started_here:
            ray.shutdown()


def ray_target(address: str | None) -> str | None:
    return address or os.environ.get("RAY_ADDRESS") or None


def check_reachable(address: str | None, *, timeout_s: float = 5.0) -> None:
    """Fail fast on a cluster address nothing listens on (Ray itself retries for minutes)."""
    target = ray_target(address)
    if target is None or target in ("auto", "local"):
        return
    host, _, port = target.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s).close()
    except (OSError, ValueError) as exc:
        raise NfdeployError(
            f"--ray-address {target}: cannot reach it ({exc}); give host:6379 or "
            "ray://host:10001 of a running cluster, or unset RAY_ADDRESS for a local Ray."
        ) from None


def _connect(ray: Any, address: str | None) -> None:
    target = ray_target(address)
    try:
        ray.init(
            address=target,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NfdeployError(
            f"--ray-address {target}: cannot connect to Ray ({first_line}); check the address "
            "or unset RAY_ADDRESS for a local Ray."
        ) from None


def _start_actors(ray: Any, workers: int) -> list[Any]:
    cpus = int(ray.cluster_resources().get("CPU", 1))
    count = max(1, min(workers, cpus))
    if count < workers:
        print(f"ray: {count} actors (the cluster has {cpus} CPUs), not {workers}", file=sys.stderr)
    actor_class = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=TASK_RETRIES)(TrialActor)
    return [actor_class.remote() for _ in range(count)]


def _drain(
    ray: Any,
    actors: list[Any],
    shared: list[Any],
    specs: Sequence[FaultSpec],
    jobs: Sequence[Job],
    on_done: OnDone,
) -> dict[tuple[int, int], list[TrialOutcome]]:
    queue = list(reversed(jobs))
    pending: dict[Any, tuple[Job, Any]] = {}

    def submit(actor: Any) -> None:
        if queue:
            job = queue.pop()
            s, trial, seed = job
            pending[actor.run.remote(shared, s, specs[s], trial, seed)] = (job, actor)

    for actor in actors * IN_FLIGHT_PER_ACTOR:
        submit(actor)
    outcomes: dict[tuple[int, int], list[TrialOutcome]] = {}
    while pending:
        (ready,), _ = ray.wait(list(pending), num_returns=1)
        job, actor = pending.pop(ready)
        outcomes[job[:2]] = result = _result(ray, ready, job)
        on_done(job, result)
        submit(actor)
    return outcomes


def _result(ray: Any, ref: Any, job: Job) -> list[TrialOutcome]:
    try:
        result: list[TrialOutcome] = ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause if isinstance(exc.cause, NfdeployError) else None
        if cause is not None:
            raise cause from None
        raise
    except ray.exceptions.RayActorError:
        raise NfdeployError(
            f"trial {job[1]} (seed {job[2]}): its Ray worker died {TASK_RETRIES + 1} times; "
            "check the workers' memory (ray status) or use fewer --workers."
        ) from None
    return result
