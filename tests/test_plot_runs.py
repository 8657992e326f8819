"""bench/cifar10/plot_runs.py: curves from run folders, with the right target lines."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "cifar10" / "plot_runs.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("plot_runs", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_folder(root: Path, name: str, pa_nf: float) -> Path:
    folder = root / name
    folder.mkdir()
    config = {"limit": 1000, "holdout": 100, "n_perturbed": 2, "train_ber": 0.015}
    (folder / "config.json").write_text(json.dumps({"config": config}))
    rows = [{"epoch": 0, "ca": 0.8, "pa": 0.4}]
    rows += [{"epoch": e, "ca_nf": 0.75, "pa_nf": 0.5 + 0.01 * e} for e in (1, 2)]
    (folder / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    result = {"ber": 0.01, "ca": 0.8, "ca_nf": 0.76, "pa": {"mean": 0.45, "std": 0.05}}
    result["pa_nf"] = {"mean": pa_nf, "std": 0.05}
    (folder / "validate.json").write_text(json.dumps({"results": [result]}))
    return folder


class _Axis:
    def __init__(self) -> None:
        self.lines: list[tuple[float, str]] = []

    def axvline(self, x: float, **style: Any) -> None:
        self.lines.append((round(x, 6), style["label"]))


@pytest.mark.parametrize(
    ("targets", "expected"),
    [
        ("restricted", [55.0]),
        ("recovery", [56.0, 68.0, 77.0]),
    ],
)
def test_target_lines(targets: str, expected: list[float]) -> None:
    axis = _Axis()
    _script()._target_lines(axis, {"ca": 0.8, "pa": {"mean": 0.45}}, targets)
    assert [x for x, _ in axis.lines] == expected


def test_writes_the_plot_and_chains_a_warm_start(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    script = _script()
    first = _run_folder(tmp_path, "a", 0.55)
    second = _run_folder(tmp_path, "b", 0.6)
    out = tmp_path / "runs.png"
    script.main(["--targets", "restricted", "--out", str(out), str(first), f"{second}:a"])
    assert out.read_bytes().startswith(b"\x89PNG")
    runs = {p.name: script.load_run(p) for p in (first, second)}
    script.chain(runs, {"b": "a"})
    assert runs["b"]["passes"] == [900 * 3 * 3, 900 * 3 * 4]
