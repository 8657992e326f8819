"""Run folder: config.json, metrics.jsonl, atomic checkpoints (last.pt every epoch, best.pt)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch

from nfdeploy.errors import NfdeployError
from nfdeploy.onnx.atomic import write_bytes_atomic

CONFIG = "config.json"
METRICS = "metrics.jsonl"
LAST = "last.pt"
BEST = "best.pt"


class RunDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def write_config(self, config: dict[str, Any]) -> None:
        write_bytes_atomic(self.path / CONFIG, (json.dumps(config, indent=2) + "\n").encode())

    def read_config(self) -> dict[str, Any]:
        path = self.path / CONFIG
        if not path.is_file():
            raise NfdeployError(
                f"{self.path}: no {CONFIG}; is this a run folder from `nfdeploy train`?"
            )
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise NfdeployError(
                f"{path}: not readable JSON ({exc}); the run folder is damaged."
            ) from None
        if not isinstance(data, dict):
            raise NfdeployError(
                f"{path}: not a run config (a JSON object); the run folder is damaged."
            )
        return data

    def append_metrics(self, row: dict[str, Any]) -> None:
        with open(self.path / METRICS, "a") as handle:
            handle.write(json.dumps(row) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        path = self.path / METRICS
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def truncate_metrics(self, epochs_done: int) -> None:
        """Drop rows past the last checkpoint (written before a crash), so resume does not repeat them."""
        rows = [r for r in self.read_metrics() if r.get("epoch", 0) <= epochs_done]
        text = "".join(json.dumps(r) + "\n" for r in rows)
        write_bytes_atomic(self.path / METRICS, text.encode())

    def save_checkpoint(self, state: dict[str, Any], *, best: bool) -> None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        data = buffer.getvalue()
        write_bytes_atomic(self.path / LAST, data)
        if best:
            write_bytes_atomic(self.path / BEST, data)

    def checkpoint_path(self, which: str = LAST) -> Path:
        return self.path / which


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise NfdeployError(f"{path}: no checkpoint here; train first or pass a run folder.")
    try:
        return dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as exc:
        raise NfdeployError(
            f"{path}: not a readable nfdeploy checkpoint ({type(exc).__name__})."
        ) from None


HELD_OUT_KEYS = ("data", "limit", "seed", "holdout")  # together they draw the held-out slice


def warm_start_weights(
    source: str | Path, *, generator: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The generator weights of another run (its best.pt; or a checkpoint file) for --init-from,
    and the config that run stored (empty if none).

    Refuses a checkpoint of another generator architecture."""
    path = Path(source)
    checkpoint = path / BEST if path.is_dir() else path
    if not checkpoint.is_file():
        raise NfdeployError(
            f"--init-from {source}: no {BEST} there; give a run folder of `nfdeploy train` "
            "that finished at least one epoch, or its .pt file."
        )
    state = load_checkpoint(checkpoint)
    if not isinstance(state.get("generator"), dict):
        raise NfdeployError(
            f"--init-from {source}: {checkpoint.name} holds no generator weights; give a "
            "best.pt or last.pt of `nfdeploy train`."
        )
    source_config = dict(state.get("config") or {})
    trained = source_config.get("generator")
    if trained and trained != generator:
        raise NfdeployError(
            f"--init-from {source}: that run trained a {trained}, this one a {generator}; "
            f"pass --generator {trained}, or start from a run of the same generator."
        )
    return dict(state["generator"]), source_config


def held_out_drift(source: str, source_config: dict[str, Any], config: dict[str, Any]) -> str:
    """A one-line warning when a warm start draws another held-out slice than its source did
    (its held-out figures may then score images the source trained on); "" when it does not."""
    changed = [
        f"{key} {source_config[key]!r} there, {config.get(key)!r} here"
        for key in HELD_OUT_KEYS
        if key in source_config and source_config[key] != config.get(key)
    ]
    if not changed:
        return ""
    return (
        f"warning: --init-from {source}: another held-out slice than that run's "
        f"({'; '.join(changed)}), so held-out CA(NF)/PA(NF) may score images it trained on; "
        "keep --data, --limit, --seed and --holdout as in that run, and judge on a test split."
    )
