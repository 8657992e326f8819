"""Turn CLI-level options into a TrainConfig (new run or resume) and train."""

from __future__ import annotations

from typing import Any

from nfdeploy.errors import NfdeployError
from nfdeploy.train.config import TrainConfig
from nfdeploy.train.loop import train
from nfdeploy.train.run_dir import RunDir

DEFAULT_EPOCHS = 10


def train_from_options(
    *,
    resume: str | None,
    out: str | None,
    quiet: bool = False,
    stop_after: int | None = None,
    **options: Any,
) -> dict[str, Any]:
    """New run: needs --model, --data and --out. Resume: reads config.json; only --epochs and
    --device may change (a run can move between machines)."""
    epochs, device = options.pop("epochs"), options.pop("device", None)
    if resume:
        stored = RunDir(resume).read_config()["config"]
        if epochs is not None:
            stored["epochs"] = epochs
        if device is not None:
            stored["device"] = device
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
    config = TrainConfig(
        epochs=DEFAULT_EPOCHS if epochs is None else epochs, device=device or "cpu", **options
    )
    return train(config=config, out=out, resume=False, quiet=quiet, stop_after=stop_after)
