"""Turn CLI-level options into a TrainConfig and train: a new run, or one resumed from its
run folder (resolved by :mod:`nfdeploy.train.resume`)."""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nfdeploy.errors import NfdeployError
from nfdeploy.runs.config import TrainConfig
from nfdeploy.runs.run_dir import BEST, CONFIG, LAST, METRICS
from nfdeploy.train.loop import train
from nfdeploy.train.paths import absolute_data_spec, absolute_model_path, paths_from_run
from nfdeploy.train.resume import resume_config

DEFAULT_EPOCHS = 10
DEFAULT_BATCH, DEFAULT_LR = 25, 1e-3  # the paper's batch and Adam lr

#: What a run folder holds after train and export; --force removes these, nothing else.
RUN_FILES = (CONFIG, METRICS, LAST, BEST, "generator.onnx", "generator.int8.onnx", "pipeline.onnx")


def default_lr(batch_size: int) -> float:
    """Square-root scaling from the paper's lr at batch 25 (Adam's update size is ~lr)."""
    return DEFAULT_LR * math.sqrt(batch_size / DEFAULT_BATCH)


def _is_main_rank() -> bool:
    return os.environ.get("RANK", "0") == "0"


def train_from_options(
    *,
    resume: str | None,
    out: str | None,
    quiet: bool = False,
    stop_after: int | None = None,
    force: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """New run: needs --model, --data and --out. Resume: reads config.json; only --epochs,
    --device, --precision and --compile may change (a run can move between machines), and
    --model, --data and --surrogate say where moved files are now."""
    epochs, device = options.pop("epochs"), options.pop("device", None)
    precision = "bf16" if options.pop("amp", False) else options.pop("precision", None)
    options.pop("precision", None)
    compile_passes = options.pop("compile_passes", None)
    given = {"epochs": epochs, "device": device, "precision": precision, "compile": compile_passes}
    if resume:
        return _train_resumed(
            resume, options, given, force=force, quiet=quiet, stop_after=stop_after
        )
    return _train_new(out, options, given, force=force, quiet=quiet, stop_after=stop_after)


def _train_resumed(
    resume: str,
    options: dict[str, Any],
    given: dict[str, Any],
    *,
    force: bool,
    quiet: bool,
    stop_after: int | None,
) -> dict[str, Any]:
    """Continue the run in ``resume``; ``given`` overrides what is stored where not None."""
    stored = resume_config(Path(resume), options, force=force)
    stored.update({key: value for key, value in given.items() if value is not None})
    config = TrainConfig.from_dict(stored)
    preflight(config)
    started = (Path(resume) / LAST).is_file()
    if not started and not quiet and _is_main_rank():
        print(f"{resume}: stopped before its first checkpoint; starting it again from epoch 1.",
              file=sys.stderr)  # fmt: skip
    return train(config=config, out=resume, resume=started, quiet=quiet, stop_after=stop_after)


def _train_new(
    out: str | None,
    options: dict[str, Any],
    given: dict[str, Any],
    *,
    force: bool,
    quiet: bool,
    stop_after: int | None,
) -> dict[str, Any]:
    """Start a run in ``out``; a failure before its first checkpoint leaves no new folder."""
    out = _required_out(out, options)
    run = Path(out)
    config = _new_config(run, options, given)
    existed = _check_new_run_folder(run, force=force)
    preflight(config)
    if force and existed and _is_main_rank():
        for name in RUN_FILES:
            (run / name).unlink(missing_ok=True)
    try:
        return train(config=config, out=out, resume=False, quiet=quiet, stop_after=stop_after)
    except BaseException:
        if not existed and _is_main_rank():
            _remove_unfinished(run)
        raise


def _required_out(out: str | None, options: dict[str, Any]) -> str:
    """``out``, after checking that a new run has --model, --data and --out."""
    for key, flag in (("vendor", "--model"), ("data", "--data")):
        if not options.get(key):
            raise NfdeployError(f"{flag} is required for a new run (or use --resume RUN_DIR).")
    if not out:
        raise NfdeployError(
            "--out is required for a new run: the folder for config, metrics and checkpoints."
        )
    return out


def _new_config(run: Path, options: dict[str, Any], given: dict[str, Any]) -> TrainConfig:
    """The new run's config: paths made absolute, defaults where ``given`` is None."""
    options["vendor"] = absolute_model_path(options["vendor"])
    options["data"] = absolute_data_spec(options["data"])
    options["surrogates"] = tuple(absolute_model_path(p) for p in options.get("surrogates") or ())
    if options.get("init_from"):
        options["init_from"] = absolute_model_path(options["init_from"])
    if options.get("lr") is None:
        options["lr"] = default_lr(int(options.get("batch_size") or DEFAULT_BATCH))
    options["from_run"] = paths_from_run(options, run)
    return TrainConfig(
        epochs=DEFAULT_EPOCHS if given["epochs"] is None else given["epochs"],
        device=given["device"] or "cpu",
        precision=given["precision"] or "auto",
        compile=bool(given["compile"]),
        **options,
    )


def _check_new_run_folder(run: Path, *, force: bool) -> bool:
    """Whether ``run`` already exists; refuses a folder with files in it unless --force."""
    if not run.exists():
        return False
    if not run.is_dir():
        raise NfdeployError(f"--out {run}: is a file; give a folder for the run.")
    entries = sorted(p.name for p in run.iterdir())
    if entries and not force:
        if (run / CONFIG).is_file():
            raise NfdeployError(
                f"--out {run}: already holds a run; continue it with --resume {run}, or pass "
                "--force to start over (deletes its metrics, checkpoints and generator.onnx)."
            )
        raise NfdeployError(
            f"--out {run}: the folder is not empty ({', '.join(entries[:3])}"
            f"{', ...' if len(entries) > 3 else ''}); give a new folder, or pass --force."
        )
    if force and entries and not (run / CONFIG).is_file():
        raise NfdeployError(
            f"--out {run}: not a run folder (no {CONFIG}) and not empty; --force only starts "
            "over in a run folder. Give a new folder."
        )
    return True


def _remove_unfinished(run: Path) -> None:
    """A new run that failed before its first checkpoint leaves no folder behind."""
    if not run.is_dir() or (run / LAST).exists():
        return
    for name in RUN_FILES:
        (run / name).unlink(missing_ok=True)
    for leftover in run.glob(".*.tmp"):
        leftover.unlink(missing_ok=True)
    if not any(run.iterdir()):
        shutil.rmtree(run, ignore_errors=True)


@dataclass(frozen=True)
class _ModelFacts:
    """What preflight compares between the vendor and each surrogate."""

    classes: int | None  # None: neither the file nor a probe run tells
    image: list[int | None]  # input dims after the batch (None: open)
    sha256: str
    preprocess: str | None  # the stored nfdeploy.preprocess spec (JSON), if any


def _model_facts(path: str) -> _ModelFacts:
    from nfdeploy.onnx.load import open_model
    from nfdeploy.onnx.metadata import PREPROCESS, metadata_dict
    from nfdeploy.runtime.batching import input_dims
    from nfdeploy.runtime.fit import classifier_classes

    opened = open_model(path)
    classes = classifier_classes(opened.proto, path)
    stored = metadata_dict(opened.proto).get(PREPROCESS)
    return _ModelFacts(classes, input_dims(opened.proto)[1:], opened.sha256, stored)


def preflight(config: TrainConfig) -> None:
    """What can be checked before training: the models are classifiers of the same classes,
    the surrogates take the vendor's input shape (and, without --preprocess, its stored
    preprocessing), and no surrogate is given twice.

    Runs before the run folder is created, so a mismatch leaves nothing behind (the labels
    are checked against the classes in ``build_setup``, also before the folder exists).
    """
    vendor = _model_facts(config.vendor)
    seen: dict[str, str] = {}  # sha256 -> the path first given with it
    for path in config.surrogates:
        facts = _model_facts(path)
        if facts.sha256 in seen:
            raise NfdeployError(
                f"--surrogate {path}: the same model as --surrogate {seen[facts.sha256]} "
                "(same sha256); give each surrogate once."
            )
        seen[facts.sha256] = path
        _check_surrogate_fits(path, facts, vendor)
        if config.preprocess is None:
            _check_same_preprocessing(path, facts, vendor)


def _check_surrogate_fits(path: str, facts: _ModelFacts, vendor: _ModelFacts) -> None:
    if None not in (facts.classes, vendor.classes) and facts.classes != vendor.classes:
        raise NfdeployError(
            f"--surrogate {path}: {facts.classes} classes, but the vendor model has "
            f"{vendor.classes}; the surrogate must predict the same classes."
        )
    if not (facts.image and vendor.image):  # a rank left open: the data decides
        return
    known = [(a, b) for a, b in zip(facts.image, vendor.image, strict=False) if a and b]
    if len(facts.image) != len(vendor.image) or any(a != b for a, b in known):
        raise NfdeployError(
            f"--surrogate {path}: takes {_dims_text(facts.image)} inputs, but the vendor model "
            f"takes {_dims_text(vendor.image)}; a surrogate must take the vendor's input shape."
        )


def _check_same_preprocessing(path: str, facts: _ModelFacts, vendor: _ModelFacts) -> None:
    """G learns in one input space, the vendor's: a surrogate that stores another is refused."""
    if facts.preprocess is None or vendor.preprocess is None:
        return
    if _spec(facts.preprocess) != _spec(vendor.preprocess):
        raise NfdeployError(
            f"--surrogate {path}: stores preprocessing {facts.preprocess}, the vendor model "
            f"{vendor.preprocess}; pass --preprocess with the vendor's, or use a surrogate "
            "that takes the vendor's inputs."
        )


def _spec(stored: str) -> Any:
    try:
        return json.loads(stored)
    except json.JSONDecodeError:
        return stored


def _dims_text(dims: list[int | None]) -> str:
    return "[N, " + ", ".join("?" if d is None else str(d) for d in dims) + "]"
