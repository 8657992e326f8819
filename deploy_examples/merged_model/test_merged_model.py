"""Smoke test: build_and_run.py merges G + vendor without torch and proves pipeline == chain."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from nfdeploy.export.merge import merge_pipeline
from nfdeploy.runtime import metadata_dict

SCRIPT = Path(__file__).resolve().parent / "build_and_run.py"
EXAMPLE = "merged_model/build_and_run.py"


def max_diff(stdout: str) -> float:
    match = re.search(r"max \|pipeline - chain\| = (\S+)", stdout)
    assert match, stdout
    return float(match.group(1))


def test_merge_and_run_torch_free(
    tmp_path: Path, tiny_models: dict[str, Path], run_torch_free: Callable[..., Any]
) -> None:
    pipeline = tmp_path / "pipeline.onnx"
    result = run_torch_free(
        SCRIPT, "--generator", str(tiny_models["generator"]), "--model",
        str(tiny_models["vendor"]), "--pipeline", str(pipeline), "--n", "6", "--batch-size", "4",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "built " in result.stderr
    assert max_diff(result.stdout) <= 1e-5
    assert "argmax agrees on 6/6" in result.stdout
    # A drop-in: the vendor's own tensor names, and the generator's preprocessing metadata.
    merged = onnx.load(str(pipeline))
    assert [i.name for i in merged.graph.input] == ["input"]
    assert [o.name for o in merged.graph.output] == ["logits"]
    assert "nfdeploy.preprocess" in metadata_dict(merged)


def test_reuse_data_and_mismatch(
    tmp_path: Path,
    tiny_models: dict[str, Path],
    load_example: Callable[[str], Any],
    capsys: pytest.CaptureFixture[str],
    one_line_error: Callable[[int, str], str],
) -> None:
    main = load_example(EXAMPLE).main
    pipeline = tmp_path / "pipeline.onnx"
    generator, vendor = str(tiny_models["generator"]), str(tiny_models["vendor"])
    onnx.save(
        merge_pipeline(onnx.load(generator), onnx.load(vendor)), str(pipeline)
    )  # already built: reused, not rebuilt
    rng = np.random.default_rng(0)
    data = tmp_path / "data.npz"
    np.savez(data, x=rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8), y=np.arange(10) % 5)
    base = ["--generator", generator, "--model", vendor, "--pipeline", str(pipeline)]
    assert main([*base, "--data", str(data)]) == 0
    captured = capsys.readouterr()
    assert "using existing" in captured.err
    assert "inputs: 10 images from" in captured.out
    assert max_diff(captured.out) <= 1e-5
    # A pipeline built from another generator is caught by the comparison.
    other = tmp_path / "other_pipeline.onnx"
    onnx.save(
        merge_pipeline(onnx.load(str(tiny_models["generator_other"])), onnx.load(vendor)),
        str(other),
    )
    code = main(["--generator", generator, "--model", vendor, "--pipeline", str(other)])
    captured = capsys.readouterr()
    err = "\n".join(line for line in captured.err.splitlines() if "using existing" not in line)
    assert "differs from generator -> vendor" in one_line_error(code, err)
    assert max_diff(captured.out) > 1e-3


def test_run_folder_calls_nfdeploy_export(
    tmp_path: Path,
    tiny_models: dict[str, Path],
    load_example: Callable[[str], Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--run with pipeline.onnx missing runs `nfdeploy export --run RUN --merge` (faked here)."""
    module = load_example(EXAMPLE)
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(tiny_models["generator"], run / "generator.onnx")
    (run / "config.json").write_text(json.dumps({"config": {"vendor": str(tiny_models["vendor"])}}))
    calls: list[list[str]] = []

    def fake_export(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        merged = merge_pipeline(
            onnx.load(str(run / "generator.onnx")), onnx.load(str(tiny_models["vendor"]))
        )
        onnx.save(merged, str(run / "pipeline.onnx"))
        return subprocess.CompletedProcess(command, 0, "", "wrote run/pipeline.onnx\n")

    monkeypatch.setattr(module.subprocess, "run", fake_export)
    assert module.main(["--run", str(run), "--n", "3"]) == 0
    assert calls == [[sys.executable, "-m", "nfdeploy", "export", "--run", str(run), "--merge"]]
    assert max_diff(capsys.readouterr().out) <= 1e-5
    assert module.main(["--run", str(run), "--n", "3"]) == 0  # now reused
    assert len(calls) == 1

    def failing_export(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 1, "", "Error: no module named torch\n")

    monkeypatch.setattr(module.subprocess, "run", failing_export)
    capsys.readouterr()
    assert module.main(["--run", str(run), "--rebuild"]) == 1
    err = capsys.readouterr().err
    assert (
        err.splitlines()[-1]
        == "error: nfdeploy export failed (exit 1): Error: no module named torch"
    )
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--n", "2"], "give --run RUN, or both --generator"),
        (["--generator", "{root}/nope.onnx", "--model", "{vendor}"], "no such ONNX file"),
        (["--run", "{root}/no_run"], "no such run folder"),
        (["--run", "{root}", "--generator", "{vendor}"], "not both"),
        (["--generator", "{generator}", "--model", "{vendor}", "--pipeline", "{root}/p.onnx", "--n", "0"], "--n 0"),
    ],
)  # fmt: skip
def test_bad_input_one_line_error(
    argv: list[str],
    message: str,
    tmp_path: Path,
    tiny_models: dict[str, Path],
    load_example: Callable[[str], Any],
    capsys: pytest.CaptureFixture[str],
    one_line_error: Callable[[int, str], str],
) -> None:
    values = {
        "root": tmp_path,
        "vendor": tiny_models["vendor"],
        "generator": tiny_models["generator"],
    }
    code = load_example(EXAMPLE).main([a.format(**values) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith("built ")]
    assert message in one_line_error(code, "\n".join(lines))
