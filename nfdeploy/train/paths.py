"""Model and data paths as config.json stores them: absolute, and relative to the run folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

DATA_PREFIXES = ("imagefolder", "cifar", "idx", "npz")


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
