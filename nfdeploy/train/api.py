"""Turn CLI-level options into a TrainConfig (new run or resume) and train."""

from __future__ import annotations

import math
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nfdeploy.errors import NfdeployError
from nfdeploy.runs.config import TrainConfig, upgraded
from nfdeploy.runs.run_dir import BEST, CONFIG, LAST, METRICS, RunDir
from nfdeploy.train.loop import train

DEFAULT_EPOCHS = 10
DEFAULT_BATCH, DEFAULT_LR = 25, 1e-3  # the paper's batch and Adam lr

#: What a run folder holds after train and export; --force removes these, nothing else.
RUN_FILES = (CONFIG, METRICS, LAST, BEST, "generator.onnx", "generator.int8.onnx", "pipeline.onnx")
DATA_PREFIXES = ("imagefolder", "cifar", "idx", "npz")
#: Options that --resume takes; the CLI refuses any other one given with it.
RESUME_MAY_CHANGE = frozenset(
    {"resume", "epochs", "device", "precision", "amp", "compile_passes", "stop_after", "force",
     "quiet", "vendor", "data", "surrogates"}
)  # fmt: skip


def default_lr(batch_size: int) -> float:
    """Square-root scaling from the paper's lr at batch 25 (Adam's update size is ~lr)."""
    return DEFAULT_LR * math.sqrt(batch_size / DEFAULT_BATCH)


def _is_main_rank() -> bool:
    return os.environ.get("RANK", "0") == "0"


def absolute_model_path(path: str) -> str:
    """Model paths are stored absolute, so --resume works from any working directory."""
    return os.path.abspath(os.path.expanduser(path))


def split_data_spec(spec: str) -> tuple[str, str | None]:
    """('npz:', 'x.npz') for a prefixed path, ('', 'folder') for a plain one, (spec, None) for
    the built-in 'synthetic[:N[:SEED]]'."""
    head, sep, rest = spec.partition(":")
    if head.lower() == "synthetic":
        return spec, None
    if sep and len(head) > 1 and head.lower() in DATA_PREFIXES:
        return head + sep, rest
    return "", spec


def absolute_data_spec(spec: str) -> str:
    """Like :func:`absolute_model_path` for data: 'synthetic' stays; 'npz:x.npz' keeps its prefix."""
    prefix, path = split_data_spec(spec)
    if path is None or not Path(path).expanduser().exists():
        return spec  # load_dataset says what is wrong with it
    return prefix + absolute_model_path(path)


def paths_from_run(config: dict[str, Any], run: Path) -> dict[str, Any]:
    """The model and data paths relative to the run folder, stored beside the absolute ones,
    so that a tree moved as a whole (another machine, another checkout) still resolves."""
    base = run.absolute()
    paths = {"vendor": config["vendor"]} if config.get("vendor") else {}
    _, data = split_data_spec(str(config.get("data", "")))
    if data:
        paths["data"] = data
    relative: dict[str, Any] = {
        key: os.path.relpath(path, base) for key, path in paths.items() if Path(path).is_absolute()
    }
    surrogates = [str(p) for p in config.get("surrogates") or ()]
    if surrogates and all(Path(p).is_absolute() for p in surrogates):
        relative["surrogates"] = [os.path.relpath(p, base) for p in surrogates]
    return relative


def _stored_path(text: str, relative: str | None, run: Path) -> Path | None:
    """A path from config.json: absolute (or as typed by older runs, from here), then relative
    to the run folder."""
    path = Path(text).expanduser()
    candidates = [path] + ([run / relative] if relative else []) + [run / path]
    return next((c for c in candidates if c.exists()), None)


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
    if resume:
        stored = _resume_config(Path(resume), options, force=force)
        if epochs is not None:
            stored["epochs"] = epochs
        if device is not None:
            stored["device"] = device
        if precision is not None:
            stored["precision"] = precision
        if compile_passes is not None:
            stored["compile"] = compile_passes
        config = TrainConfig.from_dict(stored)
        preflight(config)
        started = (Path(resume) / LAST).is_file()
        if not started and not quiet and _is_main_rank():
            print(f"{resume}: stopped before its first checkpoint; starting it again from epoch 1.",
                  file=sys.stderr)  # fmt: skip
        return train(
            config=config,
            out=resume,
            resume=started,
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
    options["vendor"] = absolute_model_path(options["vendor"])
    options["data"] = absolute_data_spec(options["data"])
    options["surrogates"] = tuple(absolute_model_path(p) for p in options.get("surrogates") or ())
    if options.get("init_from"):
        options["init_from"] = absolute_model_path(options["init_from"])
    if options.get("lr") is None:
        options["lr"] = default_lr(int(options.get("batch_size") or DEFAULT_BATCH))
    options["from_run"] = paths_from_run(options, Path(out))
    config = TrainConfig(
        epochs=DEFAULT_EPOCHS if epochs is None else epochs,
        device=device or "cpu",
        precision=precision or "auto",
        compile=bool(compile_passes),
        **options,
    )
    run = Path(out)
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


def _model_facts(path: str) -> _ModelFacts:
    from nfdeploy.onnx.load import open_model
    from nfdeploy.runtime.batching import input_dims
    from nfdeploy.runtime.fit import classifier_classes

    opened = open_model(path)
    classes = classifier_classes(opened.proto, path)
    return _ModelFacts(classes, input_dims(opened.proto)[1:], opened.sha256)


def preflight(config: TrainConfig) -> None:
    """What can be checked before training: the models are classifiers of the same classes,
    the surrogates take the vendor's input shape, and no surrogate is given twice.

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


def _dims_text(dims: list[int | None]) -> str:
    return "[N, " + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def _resume_config(run: Path, options: dict[str, Any], *, force: bool) -> dict[str, Any]:
    """The stored config with moved files resolved; refuses a changed vendor or surrogate
    file unless --force."""
    full = RunDir(run).read_config()
    stored = full.get("config")
    if not isinstance(stored, dict):
        raise NfdeployError(f"{run / CONFIG}: has no 'config' section; the run folder is damaged.")
    stored = upgraded(stored)
    from_run = dict(stored.get("from_run") or {})
    if options.get("vendor") or stored.get("vendor"):
        recorded = _Stored(stored.get("vendor"), from_run.get("vendor"), full.get("vendor_sha256"))
        stored["vendor"] = _resolved_model(
            run, recorded, options.get("vendor"), flag="--model", what="vendor", force=force
        )
    stored["surrogates"] = _resolved_surrogates(
        run, stored, full, tuple(options.get("surrogates") or ()), force=force
    )
    stored["data"] = _resolved_data(run, stored, from_run, options.get("data"))
    stored["from_run"] = paths_from_run(stored, run)
    return stored


@dataclass(frozen=True)
class _Stored:
    """A model as config.json records it: absolute path, path from the run folder, sha256."""

    path: str | None
    relative: str | None
    sha256: str | None


def _resolved_model(
    run: Path,
    stored: _Stored,
    given: str | None,
    *,
    flag: str,
    what: str,
    force: bool,
    how: str = "",
) -> str:
    """Where the model is now (given, else as stored), checked unchanged unless --force."""
    from nfdeploy.onnx.load import file_sha256

    if given and not Path(given).is_file():
        raise NfdeployError(f"{flag} {given}: no such file.")
    found = Path(given) if given else _stored_path(str(stored.path), stored.relative, run)
    if found is None:
        raise NfdeployError(
            f"{run / CONFIG}: the {what} model {stored.path} is not there any more; "
            f"pass {flag} PATH{how} to say where it is now."
        )
    current = file_sha256(found)
    if stored.sha256 and current != stored.sha256 and not force:
        raise NfdeployError(
            f"{found}: changed since this run started (sha256 {stored.sha256} recorded in "
            f"{run / CONFIG}, {current} now); resume with the original file, or pass "
            "--force to continue against this one."
        )
    return absolute_model_path(str(found))


def _resolved_surrogates(
    run: Path, stored: dict[str, Any], full: dict[str, Any], given: tuple[str, ...], *, force: bool
) -> tuple[str, ...]:
    """The run's surrogates where they are now; ``given`` (repeated --surrogate) replaces
    them one for one, in the run's order."""
    paths = [str(p) for p in stored.get("surrogates") or ()]
    if given and not paths:
        raise NfdeployError(
            f"--surrogate: {run} trains on the vendor's gradients (no surrogate), and that "
            "cannot change on --resume; start a new run with --out for a surrogate."
        )
    if given and len(given) != len(paths):
        raise NfdeployError(
            f"--surrogate: given {len(given)} time(s), but {run} has {len(paths)} surrogates "
            f"({', '.join(Path(p).name for p in paths)}); on --resume, give each one's path "
            "now, in that order, or none."
        )
    relative = list((stored.get("from_run") or {}).get("surrogates") or [])
    recorded = full.get("gradient_model_sha256")  # one surrogate: a str; several: a list
    shas = [recorded] if isinstance(recorded, str) else list(recorded or [])
    how = f" (once for each of its {len(paths)} surrogates, in order)" if len(paths) > 1 else ""
    return tuple(
        _resolved_model(
            run,
            _Stored(path, _item(relative, k), _item(shas, k)),
            given[k] if given else None,
            flag="--surrogate",
            what="surrogate",
            force=force,
            how=how,
        )
        for k, path in enumerate(paths)
    )


def _item(values: list[Any], index: int) -> Any:
    return values[index] if index < len(values) else None


def _resolved_data(
    run: Path, stored: dict[str, Any], from_run: dict[str, Any], given: str | None
) -> str:
    if given:
        return absolute_data_spec(str(given))
    spec = str(stored.get("data", ""))
    prefix, text = split_data_spec(spec)
    if not text:
        return spec
    found = _stored_path(text, from_run.get("data"), run)
    if found is None:
        raise NfdeployError(
            f"{run / CONFIG}: the training data {spec} is not there any more; pass "
            "--data PATH to say where it is now."
        )
    return prefix + absolute_model_path(str(found))
