"""Smoke test: run.py classifies PNG/JPEG files through G -> vendor without torch."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from nfdeploy.data import Preprocess

SCRIPT = Path(__file__).resolve().parent / "run.py"
PREPROCESS = {"channels": 3, "height": 8, "width": 8, "scale": 1 / 255, "mean": [0.5], "std": [0.5]}
CLASS_NAMES = ["alpha", "beta", "gamma", "delta", "epsilon"]


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with RGB, gray, larger (resized) and JPEG images, plus a labels file beside it."""
    root = tmp_path_factory.mktemp("device_runner")
    folder = root / "images"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(folder / "b_gray.png")
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / "c_big.png")
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / "sub/d.jpg")
    (folder / "notes.txt").write_text("not an image; skipped when scanning folders\n")
    (root / "labels.txt").write_text("\n".join(CLASS_NAMES) + "\n")
    (root / "broken.png").write_bytes(b"this is not a png")
    (root / "empty").mkdir()
    return folder


def expected(files: list[Path], models: dict[str, Path]) -> list[tuple[int, float]]:
    """Reference: Preprocess -> generator session -> vendor session -> softmax, by hand."""
    pre = Preprocess.from_dict(PREPROCESS)
    x = np.concatenate([pre.apply(np.asarray(Image.open(f).convert("RGB"))[None]) for f in files])
    gen = ort.InferenceSession(str(models["generator"]), providers=["CPUExecutionProvider"])
    ven = ort.InferenceSession(str(models["vendor"]), providers=["CPUExecutionProvider"])
    logits = ven.run(None, {"input": gen.run(None, {"input": x})[0]})[0].astype(np.float64)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    return [(int(p.argmax()), float(p.max())) for p in probs]


def test_batch_json_torch_free(
    images: Path, tiny_models: dict[str, Path], run_torch_free: Callable[..., Any]
) -> None:
    """The whole script runs with torch blocked and matches the hand-made G -> vendor chain."""
    result = run_torch_free(
        SCRIPT, "--model", str(tiny_models["vendor"]), "--generator",
        str(tiny_models["generator"]), "--labels", str(images.parent / "labels.txt"),
        "--batch-size", "3", "--json", str(images),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    files = sorted(p for p in images.rglob("*") if p.suffix in (".png", ".jpg"))
    assert [Path(r["path"]) for r in doc["predictions"]] == files
    assert doc["preprocess"] == PREPROCESS
    for record, (index, confidence) in zip(
        doc["predictions"], expected(files, tiny_models), strict=True
    ):
        assert record["class"] == index
        assert record["name"] == CLASS_NAMES[index]
        assert record["confidence"] == pytest.approx(confidence, abs=1e-5)


def test_single_image_one_line(
    images: Path,
    tiny_models: dict[str, Path],
    load_example: Callable[[str], Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = load_example("device_runner/run.py")
    image = images / "a.png"
    # A vendor whose batch is fixed at 1 in the file works unchanged, without a generator.
    code = run.main(
        ["--model", str(tiny_models["vendor_batch1"]), "--preprocess", "pm1", str(image)]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert out.count("\n") == 1 and out.startswith(f"{image}: class ")
    assert out.rstrip().endswith("%")
    # Batches over a fixed-batch vendor (padded to its batch of 1) with G in front.
    code = run.main(
        ["--model", str(tiny_models["vendor_batch1"]), "--generator",
         str(tiny_models["generator"]), str(images)]
    )  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and len(lines) == 4
    files = sorted(p for p in images.rglob("*") if p.suffix in (".png", ".jpg"))
    for line, (index, confidence) in zip(lines, expected(files, tiny_models), strict=True):
        head, percent = line.rsplit(" ", 1)
        assert head.endswith(f": class {index}")
        assert float(percent.rstrip("%")) == pytest.approx(confidence * 100, abs=0.051)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing_model", "no such ONNX file"),
        ("garbage_model", "not a readable ONNX model"),
        ("missing_image", "no such file or folder"),
        ("broken_image", "cannot read image"),
        ("empty_folder", "holds no .png/.jpg/.jpeg images"),
        ("wrong_generator", "does not match the vendor input"),
        ("labels_count", "2 class names, but the model has 5 classes"),
        ("bad_preprocess", "preprocess"),
        ("bad_batch", "--batch-size 0"),
    ],
)
def test_bad_input_one_line_error(
    case: str,
    message: str,
    images: Path,
    tiny_models: dict[str, Path],
    load_example: Callable[[str], Any],
    capsys: pytest.CaptureFixture[str],
    one_line_error: Callable[[int, str], str],
) -> None:
    root = images.parent
    (root / "two_labels.txt").write_text("x\ny\n")
    model, generator = str(tiny_models["vendor"]), str(tiny_models["generator"])
    image = str(images / "a.png")
    argv = {
        "missing_model": ["--model", str(root / "nope.onnx"), image],
        "garbage_model": ["--model", str(root / "broken.png"), image],
        "missing_image": ["--model", model, str(root / "nope.png")],
        "broken_image": ["--model", model, "--generator", generator, str(root / "broken.png")],
        "empty_folder": ["--model", model, str(root / "empty")],
        "wrong_generator": ["--model", model, "--generator", str(tiny_models["generator_wrong_size"]), image],
        "labels_count": ["--model", model, "--generator", generator, "--labels", str(root / "two_labels.txt"), image],
        "bad_preprocess": ["--model", model, "--preprocess", "size=abc", image],
        "bad_batch": ["--model", model, "--generator", generator, "--batch-size", "0", image],
    }[case]  # fmt: skip
    code = load_example("device_runner/run.py").main(argv)
    captured = capsys.readouterr()
    assert message in one_line_error(code, captured.err)
    assert captured.out == ""


def test_usage_error_is_one_line(
    load_example: Callable[[str], Any],
    capsys: pytest.CaptureFixture[str],
    one_line_error: Callable[[int, str], str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        load_example("device_runner/run.py").main(["image.png"])  # --model missing
    assert "--model" in one_line_error(int(str(exit_info.value.code)), capsys.readouterr().err)
