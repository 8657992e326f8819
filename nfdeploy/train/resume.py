"""Resolve a stored run for --resume: its config, with moved files found and checked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nfdeploy.errors import NfdeployError
from nfdeploy.runs.config import upgraded
from nfdeploy.runs.run_dir import CONFIG, RunDir
from nfdeploy.train.paths import (
    absolute_data_spec,
    absolute_model_path,
    paths_from_run,
    split_data_spec,
)

#: Options that --resume takes; the CLI refuses any other one given with it.
RESUME_MAY_CHANGE = frozenset(
    {"resume", "epochs", "device", "precision", "amp", "compile_passes", "stop_after", "force",
     "quiet", "vendor", "data", "surrogates"}
)  # fmt: skip


def resume_config(run: Path, options: dict[str, Any], *, force: bool) -> dict[str, Any]:
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


def _stored_path(text: str, relative: str | None, run: Path) -> Path | None:
    """A path from config.json: absolute (or as typed by older runs, from here), then relative
    to the run folder."""
    path = Path(text).expanduser()
    candidates = [path] + ([run / relative] if relative else []) + [run / path]
    return next((c for c in candidates if c.exists()), None)


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
