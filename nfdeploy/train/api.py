"""Turn CLI-level options into a TrainConfig (new run or resume) and train."""

from __future__ import annotations

import math
from typing import Any

from nfdeploy.errors import NfdeployError
from nfdeploy.train.config import TrainConfig
from nfdeploy.train.loop import train
from nfdeploy.train.run_dir import RunDir

DEFAULT_EPOCHS = 10
DEFAULT_BATCH, DEFAULT_LR = 25, 1e-3  # the paper's batch and Adam lr


def default_lr(batch_size: int) -> float:
    """Square-root scaling from the paper's lr at batch 25 (Adam's update size is ~lr)."""
    return DEFAULT_LR * math.sqrt(batch_size / DEFAULT_BATCH)


def train_from_options(
    *,
    resume: str | None,
    out: str | None,
    quiet: bool = False,
    stop_after: int | None = None,
    **options: Any,
) -> dict[str, Any]:
    """New run: needs --model, --data and --out. Resume: reads config.json; only --epochs,
    --device, --precision and --compile may change (a run can move between machines)."""
    epochs, device = options.pop("epochs"), options.pop("device", None)
    precision = "bf16" if options.pop("amp", False) else options.pop("precision", None)
    options.pop("precision", None)
    compile_passes = options.pop("compile_passes", None)
    if resume:
        stored = RunDir(resume).read_config()["config"]
        if epochs is not None:
            stored["epochs"] = epochs
        if device is not None:
            stored["device"] = device
        if precision is not None:
            stored["precision"] = precision
        if compile_passes is not None:
            stored["compile"] = compile_passes
        return train(
            config=TrainConfig.from_dict(stored),
            out=resume,
            resume=True,
            quiet=quiet,
            stop_after=stop_after,
        )
    for key, flag in (("vendor", "--model"), ("data", "--data")):
        if not options.get(key):
            raise NfdeployError(f"{flag} is required for a new run (or use --resume RUN_DIR).")
    if not out:
        raise NfdeployError(
            "--out is required for a new run: the folder for config, metrics and checkpoints."
        )
    if options.get("lr") is None:
        options["lr"] = default_lr(int(options.get("batch_size") or DEFAULT_BATCH))
    config = TrainConfig(
        epochs=DEFAULT_EPOCHS if epochs is None else epochs,
        device=device or "cpu",
        precision=precision or "auto",
        compile=bool(compile_passes),
        **options,
    )
    return train(config=config, out=out, resume=False, quiet=quiet, stop_after=stop_after)
