"""`train()`: EOPM training of a generator against a frozen vendor model, with resume."""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from nfdeploy import __version__
from nfdeploy.data import Dataset
from nfdeploy.errors import NfdeployError
from nfdeploy.runs.config import TrainConfig
from nfdeploy.runs.run_dir import (
    LAST,
    RunDir,
    held_out_drift,
    load_checkpoint,
    warm_start_weights,
)
from nfdeploy.train import recipe
from nfdeploy.train.distributed import DistContext, check_resume_world
from nfdeploy.train.eopm import WeightChunk, eopm_step
from nfdeploy.train.perturbed import ChunkJob, draw_train_seeds, prefetched
from nfdeploy.train.setup import GradientModel, TrainSetup, build_setup, make_optimizer

# Held-out evaluation during training uses its own seeds: outside both the training range
# [0, 30000) and validate's range (50000+).
HOLDOUT_SEED_START = 40_000


def _batches(
    setup: TrainSetup, indices: np.ndarray, batch_size: int, rng: np.random.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    data = setup.train_set
    for start in range(0, len(indices) - batch_size + 1, batch_size):
        index = indices[start : start + batch_size]
        images = recipe.augment(setup.config, data.images[index], rng)
        yield _on_device(setup, images, data.labels[index])


def _on_device(
    setup: TrainSetup, images: np.ndarray, labels: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """Preprocessed inputs and int64 labels on the training device."""
    x = torch.from_numpy(setup.preprocess.apply(images))
    y = torch.from_numpy(labels.astype(np.int64))
    if setup.device.type == "cpu":
        return x, y
    return (
        x.pin_memory().to(setup.device, non_blocking=True),
        y.pin_memory().to(setup.device, non_blocking=True),
    )


@torch.no_grad()
def evaluate(
    setup: TrainSetup,
    source: GradientModel,
    data: Dataset,
    *,
    use_generator: bool,
    batch: int = 250,
) -> dict[str, float]:
    """CA and mean PA of ``source`` over ``holdout_trials`` fixed seeds at the training BER
    (torch side)."""
    config, module, weights = setup.config, source.module, source.weights
    fused = setup.fused_input.eval()
    seeds = [HOLDOUT_SEED_START + k for k in range(config.holdout_trials)]
    overrides = [weights.clean()] + [weights.for_seed(s) for s in seeds]
    correct = np.zeros(len(overrides))
    for start in range(0, len(data), batch):
        x, y = _on_device(
            setup, data.images[start : start + batch], data.labels[start : start + batch]
        )
        inputs = fused(x) if use_generator else x
        for k, override in enumerate(overrides):
            with module.weight_overrides(override):
                correct[k] += float((module(inputs).argmax(1) == y).sum().item())
    fused.train()
    accuracy = correct / max(len(data), 1)
    return {
        "ca": float(accuracy[0]),
        "pa": float(accuracy[1:].mean()) if len(seeds) else float("nan"),
    }


def held_out(
    setup: TrainSetup, holdouts: list[Dataset], *, use_generator: bool, suffix: str
) -> dict[str, Any]:
    """The metrics row's CA/PA: of the one gradient model, or the mean over the ensemble
    (best-epoch selection uses it) with each model's figures in ``*_by_model`` lists."""
    scores = [
        evaluate(setup, source, data, use_generator=use_generator)
        for source, data in zip(setup.models, holdouts, strict=True)
    ]
    if len(scores) == 1:
        return _prefixed(scores[0], suffix)
    row: dict[str, Any] = {
        f"{k}{suffix}": float(np.mean([s[k] for s in scores])) for k in scores[0]
    }
    row.update({f"{k}{suffix}_by_model": [s[k] for s in scores] for k in scores[0]})
    return row


def _holdouts(setup: TrainSetup) -> list[Dataset]:
    """The held-out images per gradient model; label-free, each scored against its own
    clean predictions."""
    if setup.config.labels != "vendor":
        return [setup.holdout_set] * len(setup.models)
    return [recipe.relabel_with_vendor(setup, m, setup.holdout_set) for m in setup.models]


def _state(
    setup: TrainSetup, optimizer: Any, scheduler: Any, epoch: int, best: float, world: int
) -> dict[str, Any]:
    return {
        "format": "nfdeploy-generator-checkpoint-v1",
        "nfdeploy_version": __version__,
        "epoch": epoch,
        "best_pa_nf": best,
        "generator": setup.fused_input.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "config": setup.config.to_dict(),
        "provenance": setup.provenance(),
        "world_size": world,
    }


def _warm_start(setup: TrainSetup, source: str, *, warn: bool) -> None:
    generator = setup.config.generator
    weights, source_config = warm_start_weights(source, generator=generator)
    drift = held_out_drift(source, source_config, setup.config.to_dict())
    if drift and warn:
        print(drift, file=sys.stderr)
    try:
        setup.fused_input.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise NfdeployError(
            f"--init-from {source}: its weights do not fit this {generator} "
            f"({first}); start from a run with the same generator and input shape."
        ) from None


def train(
    *,
    config: TrainConfig,
    out: str | Path,
    resume: bool = False,
    quiet: bool = False,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train (or resume) a generator; writes config.json, metrics.jsonl, last.pt and best.pt in ``out``."""
    dist = DistContext.from_env()
    run = RunDir(out)
    if config.threads:
        torch.set_num_threads(config.threads)
    progress = not quiet and dist.is_main
    setup = build_setup(config, progress=progress)
    holdouts = _holdouts(setup)  # label-free: figures score agreement with the clean model
    model = dist.wrap(setup.fused_input)
    steps = (len(dist.shard(np.arange(len(setup.train_set))))) // config.batch_size
    if steps == 0:
        raise NfdeployError(
            f"--batch-size {config.batch_size}: larger than the training data per process."
        )
    optimizer, scheduler = make_optimizer(setup.fused_input, config, steps)
    start_epoch, best = 1, -1.0
    if resume:
        state = load_checkpoint(run.checkpoint_path(LAST))
        check_resume_world(
            trained_with=int(state.get("world_size", 1)), now=dist.world, run=str(out)
        )
        setup.fused_input.load_state_dict(state["generator"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, best = int(state["epoch"]) + 1, float(state["best_pa_nf"])
    elif config.init_from:
        _warm_start(setup, config.init_from, warn=dist.is_main)
    if dist.is_main:
        run.path.mkdir(parents=True, exist_ok=True)
        run.write_config(
            {
                "config": config.to_dict(),
                **setup.provenance(),
                "world_size": dist.world,
                "nfdeploy": __version__,
            }
        )
        if progress:
            print(setup.speed_line(), file=sys.stderr)
        if resume:
            run.truncate_metrics(start_epoch - 1)
        else:
            run.truncate_metrics(0)
            run.append_metrics(
                {"epoch": 0, **held_out(setup, holdouts, use_generator=False, suffix="")}
            )
    last_epoch = min(config.epochs, stop_after or config.epochs)
    for epoch in range(start_epoch, last_epoch + 1):
        row = _run_epoch(setup, model, optimizer, scheduler, epoch, dist, progress)
        if not dist.is_main:
            continue
        row.update(held_out(setup, holdouts, use_generator=True, suffix="_nf"))
        is_best = row["pa_nf"] > best
        best = max(best, row["pa_nf"])
        run.save_checkpoint(
            _state(setup, optimizer, scheduler, epoch, best, dist.world), best=is_best
        )
        run.append_metrics(row)
        if progress:
            print(_epoch_line(row), file=sys.stderr)
    dist.barrier()
    dist.close()
    return {
        "out": str(run.path),
        "best_pa_nf": best,
        "metrics": run.read_metrics() if dist.is_main else [],
    }


def _prefixed(metrics: dict[str, float], suffix: str) -> dict[str, float]:
    return {f"{key}{suffix}": value for key, value in metrics.items()}


def _epoch_line(row: dict[str, Any]) -> str:
    return (
        f"epoch {row['epoch']}: loss {row['loss']:.4f}  CA(NF) {row['ca_nf'] * 100:.1f}  "
        f"PA(NF) {row['pa_nf'] * 100:.1f}  ({row['seconds']:.0f}s)"
    )


def _run_epoch(
    setup: TrainSetup,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    epoch: int,
    dist: DistContext,
    progress: bool,
) -> dict[str, Any]:
    config = setup.config
    order = dist.shard(
        np.random.default_rng([config.seed, epoch]).permutation(len(setup.train_set))
    )
    steps = len(order) // config.batch_size
    sources, plans = _plan_epoch(setup, epoch, steps, dist.rank)
    jobs = [(source, job) for source, plan in zip(sources, plans, strict=True) for job in plan]
    chunks = prefetched(_build_chunk, jobs) if setup.prefetch else map(_build_chunk, jobs)
    bar = tqdm(
        _batches(setup, order, config.batch_size, np.random.default_rng([config.seed, epoch, 31, dist.rank])),
        total=steps, desc=f"epoch {epoch}/{config.epochs}",
        file=sys.stderr, disable=None if progress else True, leave=False,
    )  # fmt: skip
    start, losses = time.perf_counter(), []
    for (x, y), source, plan in zip(bar, sources, plans, strict=True):
        if config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        loss = eopm_step(
            model,
            source.step_module,
            x,
            recipe.vendor_targets(setup, source, x, y),
            itertools.islice(chunks, len(plan)),
            precision=setup.precision.precision,
            temperature=config.soft_targets or 1.0,
            worst_k=config.worst_k,
        )
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        losses.append(loss)
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
    bar.close()
    return {
        "epoch": epoch,
        "loss": dist.mean(float(np.mean(losses))),
        "lr": scheduler.get_last_lr()[0],
        "seconds": time.perf_counter() - start,
    }


def _plan_epoch(
    setup: TrainSetup, epoch: int, steps: int, rank: int
) -> tuple[list[GradientModel], list[list[ChunkJob]]]:
    """Each step's gradient model (by the run's global step, so --resume is exact) and its
    chunk jobs, from the same fault seeds whichever model the step runs on."""
    config = setup.config
    fault_rng = np.random.default_rng([config.seed, epoch, 7919, rank])
    first, total = (epoch - 1) * steps, config.epochs * steps
    sources = [setup.model_for_step(first + i) for i in range(steps)]
    plans = [
        source.step_weights.plan(
            draw_train_seeds(fault_rng, config.n_perturbed),
            recipe.step_ber(config, first + i, total),
        )
        for i, source in enumerate(sources)
    ]
    return sources, plans


def _build_chunk(item: tuple[GradientModel, ChunkJob]) -> WeightChunk:
    """One chunk of weight sets, built by the StepWeights of the model whose step it is."""
    source, job = item
    return source.step_weights.build(job)
