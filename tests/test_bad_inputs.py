"""Bad inputs across every command: a non-zero exit, one line naming the input, no traceback,
and no output left behind (or an existing one left unchanged).

Each case runs the CLI on tiny models and data made here; nothing is downloaded. ``{name}``
in a case's arguments is a file from the ``files`` fixture; ``{out}`` is the case's own
empty folder, where outputs would go.
"""

from __future__ import annotations

import ast
import json
import math
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from nfdeploy.cli import main
from nfdeploy.onnx.load import file_sha256
from tests.onnx_builders import CLASSES, IN_CHANNELS, SIZE, conv_bn_model
from tests.test_validate_cli import _identity_generator

REPO = Path(__file__).resolve().parents[1]
SERVER = REPO / "deploy_examples" / "remote_api" / "server.py"
BIG = str(2**70)


def _conv_only(path: Path, *, declare_output: bool) -> Path:
    """x -> Conv: an output [N, 4, 6, 6], not [N, classes]."""
    weight = np.random.default_rng(0).normal(0, 0.5, (4, IN_CHANNELS, 3, 3)).astype(np.float32)
    out_shape = ["N", 4, SIZE, SIZE] if declare_output else None
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
        "conv_only",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", IN_CHANNELS, SIZE, SIZE])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.save(model, str(path))
    return path


def _external_missing(folder: Path) -> Path:
    """The conv_bn model with conv.weight in an external file that is not there."""
    folder.mkdir()
    model = conv_bn_model(seed=1)
    init = next(i for i in model.graph.initializer if i.name == "conv.weight")
    init.ClearField("raw_data")
    del init.float_data[:]
    init.data_location = TensorProto.EXTERNAL
    init.external_data.add(key="location", value="weights.bin")
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def _images(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 256, (n, 1, 1, IN_CHANNELS))
    return np.clip(colours + rng.integers(-20, 21, (n, SIZE, SIZE, IN_CHANNELS)), 0, 255).astype(
        np.uint8
    )


def _chip_maps(root: Path, vendor: Path) -> dict[str, Path]:
    good = root / "chip.npz"
    made = CliRunner().invoke(
        main, ["chipmap", "--model", str(vendor), "--ber", "0.05", "--out", str(good)]
    )
    assert made.exit_code == 0, made.output
    with np.load(good) as data:
        arrays = {k: data[k] for k in data.files}
    truncated = root / "chip_truncated.npz"
    np.savez(truncated, **{**arrays, "faulty": arrays["faulty"][:3]})
    wrong_dtype = root / "chip_wrong_dtype.npz"
    np.savez(wrong_dtype, **{**arrays, "stuck_value": arrays["stuck_value"].astype(np.int32)})
    cut = root / "chip_cut.npz"
    raw = good.read_bytes()
    cut.write_bytes(raw[: len(raw) // 2])
    not_map = root / "chip_not_a_map.npz"
    np.savez(not_map, something=np.zeros(3))
    npy = root / "chip_array.npy"
    np.save(npy, np.zeros(8, np.uint8))
    return {
        "chip": good,
        "chip_truncated": truncated,
        "chip_wrong_dtype": wrong_dtype,
        "chip_cut": cut,
        "chip_not_a_map": not_map,
        "chip_npy": npy,
    }


def _absurd_idx(root: Path) -> Path:
    """MNIST-style IDX files whose image header claims 2**32 - 1 in every dimension."""
    folder = root / "idx"
    folder.mkdir()
    dims = (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
    (folder / "t10k-images-idx3-ubyte").write_bytes(
        bytes([0, 0, 0x08, 3]) + struct.pack(">3I", *dims) + bytes(100)
    )
    (folder / "t10k-labels-idx1-ubyte").write_bytes(
        bytes([0, 0, 0x08, 1]) + struct.pack(">I", 4) + bytes(4)
    )
    return folder


def _fake_run(folder: Path, vendor: Path, data: Path, *, sha: str) -> Path:
    """A run folder as `train` leaves it (config.json and metrics), without training."""
    folder.mkdir()
    config = {
        "vendor": str(vendor), "data": str(data), "generator": "ConvS", "batch_size": 10,
        "n_perturbed": 2, "holdout": 20, "preprocess": "unit", "epochs": 2,
    }  # fmt: skip
    (folder / "config.json").write_text(
        json.dumps({"config": config, "vendor_sha256": sha, "gradient_model_sha256": sha})
    )
    (folder / "metrics.jsonl").write_text('{"epoch": 0, "ca": 0.5, "pa": 0.4}\n')
    return folder


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad_inputs")
    vendor = root / "vendor.onnx"
    onnx.save(conv_bn_model(seed=1), str(vendor))
    labels = np.random.default_rng(1).integers(0, CLASSES, 60)
    data = root / "data.npz"
    np.savez(data, x=_images(60), y=labels)
    bad_labels = root / "labels7.npz"
    np.savez(bad_labels, x=_images(60), y=np.where(labels == 0, 7, labels))
    empty = root / "empty.npz"
    np.savez(empty, x=_images(0), y=np.zeros(0, np.int64))
    garbage = root / "garbage.onnx"
    garbage.write_bytes(b"\x00not a model" * 10)
    text = root / "notes.txt"
    text.write_text("not data\n")
    run_pt = root / "broken.pt"
    run_pt.write_bytes(b"not a checkpoint")
    a_file = root / "a_file"
    a_file.write_text("a file, not a folder\n")
    corrupt_run = root / "corrupt_run"
    corrupt_run.mkdir()
    (corrupt_run / "config.json").write_text("{not json")
    empty_run = root / "empty_run"
    empty_run.mkdir()
    two = conv_bn_model(seed=1)
    two.graph.input.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, [1]))
    onnx.save(two, str(root / "two_inputs.onnx"))
    ints = conv_bn_model(seed=1)
    ints.graph.input[0].type.tensor_type.elem_type = TensorProto.INT64
    onnx.save(ints, str(root / "int_input.onnx"))
    moved = root / "moved.onnx"
    shutil.copy(vendor, moved)
    files = {
        "vendor": vendor,
        "data": data,
        "labels7": bad_labels,
        "empty": empty,
        "generator": _identity_generator(root / "generator.onnx"),
        "conv_only": _conv_only(root / "conv_only.onnx", declare_output=True),
        "conv_open": _conv_only(root / "conv_open.onnx", declare_output=False),
        "ext_missing": _external_missing(root / "ext"),
        "garbage": garbage,
        "two_inputs": root / "two_inputs.onnx",
        "int_input": root / "int_input.onnx",
        "missing": root / "missing.onnx",
        "text": text,
        "broken_pt": run_pt,
        "a_file": a_file,
        "idx": _absurd_idx(root),
        "corrupt_run": corrupt_run,
        "empty_run": empty_run,
        "changed_run": _fake_run(root / "changed_run", vendor, data, sha="0" * 64),
        "moved_run": _fake_run(root / "moved_run", moved, data, sha=file_sha256(vendor)),
        **_chip_maps(root, vendor),
    }
    moved.unlink()  # moved_run's vendor is gone
    return files


@dataclass(frozen=True)
class Case:
    id: str
    args: list[str]
    needle: str  # the one stderr line must contain this (the input it names)
    outputs: tuple[str, ...] = ()  # must not exist afterwards (relative to {out})
    existing: dict[str, str] = field(default_factory=dict)  # made before, must stay unchanged
    code: int | None = None  # exact exit code where it matters; else any non-zero


V = ["validate", "-q", "--model", "{vendor}", "--data", "{data}", "--ber", "0.01"]
VR = [*V, "--report", "{out}/r.json"]
T = [
    "train", "-q", "--model", "{vendor}", "--data", "{data}", "--out", "{out}/run",
    "--generator", "ConvS", "--batch-size", "10", "--n-perturbed", "2", "--holdout", "20",
    "--preprocess", "unit", "--epochs", "1", "--threads", "1",
]  # fmt: skip
RUN = ("run",)


def _train(*extra: str, model: str = "{vendor}", data: str = "{data}") -> list[str]:
    args = [*T, *extra]
    args[args.index("--model") + 1] = model
    args[args.index("--data") + 1] = data
    return args


CASES = [
    # --- option values, refused by click (exit 2) before any library code runs
    Case("validate-seed-negative", [*VR, "--seed", "-1"], "--seed", ("r.json",), code=2),
    Case("validate-seed-2**70", [*VR, "--seed", BIG], "--seed", ("r.json",), code=2),
    Case("validate-seed-overflows-trials", [*VR, "--seed", str(2**63 - 5)], "--seed", ("r.json",)),
    Case("validate-seed-training-range", [*VR, "--seed", "100"], "training range", ("r.json",)),
    Case("validate-batch-size-0", [*VR, "--batch-size", "0"], "--batch-size", ("r.json",), code=2),
    Case("validate-batch-size-neg", [*VR, "--batch-size", "-5"], "--batch-size", code=2),
    Case("validate-threads-neg", [*VR, "--threads", "-3"], "--threads", ("r.json",), code=2),
    Case("validate-tensors-regex", [*VR, "--tensors", "("], "--tensors", ("r.json",), code=2),
    Case("validate-storage-bogus", [*VR, "--storage", "bogus"], "--storage", code=2),
    Case("validate-trials-0", [*VR, "--trials", "0"], "--trials", ("r.json",), code=2),
    Case("validate-limit-0", [*VR, "--limit", "0"], "--limit", ("r.json",), code=2),
    Case("validate-ber-2", [*VR, "--ber", "2"], "--ber 2", ("r.json",)),
    Case("validate-ber-nan", [*VR, "--ber", "nan"], "--ber nan", ("r.json",)),
    Case("validate-bits-9", [*VR, "--bits", "9"], "--bits", ("r.json",)),
    Case("validate-fail-under-500", [*VR, "--fail-under", "500"], "--fail-under", ("r.json",)),
    Case("validate-preprocess-bad", [*VR, "--preprocess", "mean=abc"], "mean", ("r.json",)),
    Case("validate-unknown-option", [*VR, "--sead", "1"], "--sead", ("r.json",), code=2),
    Case("validate-model-is-folder", [*V, "--model", "{out}"], "--model", code=2),
    # --- models that are not what validate needs
    Case("validate-model-missing", [*VR, "--model", "{missing}"], "missing.onnx", ("r.json",)),
    Case("validate-model-garbage", [*VR, "--model", "{garbage}"], "garbage.onnx", ("r.json",)),
    Case("validate-output-not-classes", [*VR, "--model", "{conv_only}"], "conv_only.onnx"),
    Case("validate-output-undeclared", [*VR, "--model", "{conv_open}"], "conv_open.onnx"),
    Case("validate-external-missing", [*VR, "--model", "{ext_missing}"], "weights.bin"),
    Case("validate-two-inputs", [*VR, "--model", "{two_inputs}"], "two_inputs.onnx", ("r.json",)),
    Case("validate-int-input", [*VR, "--model", "{int_input}"], "int_input.onnx", ("r.json",)),
    Case("validate-generator-two-inputs", [*VR, "--generator", "{two_inputs}"], "two_inputs"),
    Case("validate-storage-qdq-float", [*VR, "--storage", "qdq"], "--storage qdq", ("r.json",)),
    Case("validate-generator-is-vendor", [*VR, "--generator", "{vendor}"], "not a generator"),
    Case("validate-generator-conv", [*VR, "--generator", "{conv_only}"], "conv_only.onnx"),
    Case("validate-generator-missing", [*VR, "--generator", "{missing}"], "missing.onnx"),
    Case("validate-generator-garbage", [*VR, "--generator", "{garbage}"], "garbage.onnx"),
    # --- data that does not fit
    Case("validate-labels-beyond-classes", [*VR, "--data", "{labels7}"], "label 7", ("r.json",)),
    Case("validate-data-missing", [*VR, "--data", "{out}/nodata"], "nodata", ("r.json",)),
    Case("validate-data-text-file", [*VR, "--data", "{text}"], "notes.txt", ("r.json",)),
    Case("validate-data-absurd-idx", [*VR, "--data", "{idx}"], "t10k-images", ("r.json",)),
    Case("validate-data-synthetic-bad", [*VR, "--data", "synthetic:x"], "synthetic:x"),
    Case("validate-data-empty", [*VR, "--data", "{empty}"], "empty.npz", ("r.json",)),
    Case("validate-split-bogus", [*VR, "--split", "bogus"], "split 'bogus'", ("r.json",)),
    # --- chip maps
    Case("validate-chip-map-needed", [*VR, "--fault-model", "chip-map"], "--chip-map"),
    Case(
        "validate-chip-map-truncated",
        [*VR, "--fault-model", "chip-map", "--chip-map", "{chip_truncated}"],
        "chip_truncated.npz",
        ("r.json",),
    ),
    Case(
        "validate-chip-map-wrong-dtype",
        [*VR, "--fault-model", "chip-map", "--chip-map", "{chip_wrong_dtype}"],
        "chip_wrong_dtype.npz",
    ),
    Case(
        "validate-chip-map-cut-file",
        [*VR, "--fault-model", "chip-map", "--chip-map", "{chip_cut}"],
        "chip_cut.npz",
        ("r.json",),
    ),
    Case(
        "validate-chip-map-not-a-map",
        [*VR, "--fault-model", "chip-map", "--chip-map", "{chip_not_a_map}"],
        "chip_not_a_map.npz",
    ),
    Case(
        "validate-chip-map-npy",
        [*VR, "--fault-model", "chip-map", "--chip-map", "{chip_npy}"],
        "chip_array.npy",
    ),
    # --- destinations
    Case("validate-report-under-file", [*V, "--report", "{a_file}/r.json"], "a_file/r.json"),
    Case("validate-report-is-folder", [*V, "--report", "{out}"], "--report"),
    Case("validate-plots-is-file", [*V, "--plots", "{a_file}"], "--plots", code=2),
    Case(
        "validate-existing-report-unchanged",
        [*VR, "--seed", "-1"],
        "--seed",
        existing={"r.json": '{"old": true}\n'},
        code=2,
    ),
    Case(
        "validate-existing-report-bad-model",
        [*VR, "--model", "{conv_only}"],
        "conv_only.onnx",
        existing={"r.json": '{"old": true}\n'},
    ),
    # --- inspect
    Case(
        "inspect-storage-bogus", ["inspect", "{vendor}", "--storage", "bogus"], "--storage", code=2
    ),
    Case("inspect-tensors-regex", ["inspect", "{vendor}", "--tensors", "[a-"], "--tensors", code=2),
    Case("inspect-storage-qdq-float", ["inspect", "{vendor}", "--storage", "qdq"], "vendor.onnx"),
    Case("inspect-missing", ["inspect", "{missing}"], "missing.onnx"),
    Case("inspect-garbage", ["inspect", "{garbage}"], "garbage.onnx"),
    Case("inspect-external-missing", ["inspect", "{ext_missing}"], "weights.bin"),
    # --- chipmap
    *[
        Case(
            f"chipmap-{name}",
            ["chipmap", "--model", "{vendor}", "--ber", "0.01", "--out", "{out}/c.npz", *extra],
            needle,
            ("c.npz",),
            code=code,
        )
        for name, extra, needle, code in [
            ("seed-negative", ["--seed", "-1"], "--seed", 2),
            ("seed-2**70", ["--seed", BIG], "--seed", 2),
            ("storage-bogus", ["--storage", "bogus"], "--storage", 2),
            ("storage-qdq-float", ["--storage", "qdq"], "--storage qdq", 1),
            ("ber-2", ["--ber", "2"], "--ber 2", 1),
            ("model-missing", ["--model", "{missing}"], "missing.onnx", 1),
            ("model-garbage", ["--model", "{garbage}"], "garbage.onnx", 1),
        ]
    ],
    Case(
        "chipmap-out-under-file",
        ["chipmap", "--model", "{vendor}", "--ber", "0.01", "--out", "{a_file}/c.npz"],
        "a_file/c.npz",
    ),
    # --- train: options, refused before a run folder exists
    Case("train-seed-negative", _train("--seed", "-1"), "--seed", RUN, code=2),
    Case("train-seed-2**70", _train("--seed", BIG), "--seed", RUN, code=2),
    Case("train-threads-neg", _train("--threads", "-3"), "--threads", RUN, code=2),
    Case("train-batch-size-0", _train("--batch-size", "0"), "--batch-size", RUN, code=2),
    Case("train-tensors-regex", _train("--tensors", "("), "--tensors", RUN, code=2),
    Case("train-storage-bogus", _train("--storage", "bogus"), "--storage", RUN, code=2),
    Case("train-limit-0", _train("--limit", "0"), "--limit", RUN, code=2),
    Case("train-stop-after-0", _train("--stop-after", "0"), "--stop-after", RUN, code=2),
    Case("train-lr-negative", _train("--lr", "-1"), "--lr", RUN),
    # --- train: models and data that do not fit, refused before a run folder exists
    Case("train-storage-qdq-float", _train("--storage", "qdq"), "--storage qdq", RUN),
    Case("train-output-not-classes", _train(model="{conv_only}"), "conv_only.onnx", RUN),
    Case("train-output-undeclared", _train(model="{conv_open}"), "conv_open.onnx", RUN),
    Case("train-labels-beyond-classes", _train(data="{labels7}"), "label 7", RUN),
    Case("train-model-missing", _train(model="{missing}"), "missing.onnx", RUN),
    Case("train-two-inputs", _train(model="{two_inputs}"), "two_inputs.onnx", RUN),
    Case("train-model-garbage", _train(model="{garbage}"), "garbage.onnx", RUN),
    Case("train-external-missing", _train(model="{ext_missing}"), "weights.bin", RUN),
    Case("train-surrogate-not-classes", _train("--surrogate", "{conv_only}"), "conv_only", RUN),
    Case("train-data-missing", _train(data="{out}/nodata"), "nodata", RUN),
    Case("train-data-empty", _train(data="{empty}"), "empty.npz", RUN),
    Case("train-batch-beyond-data", _train("--batch-size", "1000"), "--batch-size 1000", RUN),
    # --- train: run folders
    Case(
        "train-out-existing-run",
        _train(),
        "--resume",
        existing={"run/config.json": '{"config": {}}\n', "run/metrics.jsonl": "{}\n"},
    ),
    Case("train-out-not-empty", _train(), "not empty", existing={"run/notes.txt": "mine\n"}),
    Case(
        "train-force-needs-a-run",
        _train("--force"),
        "not a run folder",
        existing={"run/notes.txt": "mine\n"},
    ),
    Case("train-out-is-file", _train(), "--out", existing={"run": "a file\n"}, code=2),
    Case("train-resume-vendor-changed", ["train", "-q", "--resume", "{changed_run}"], "0" * 64),
    Case("train-resume-vendor-moved", ["train", "-q", "--resume", "{moved_run}"], "--model"),
    Case(
        "train-resume-model-missing",
        ["train", "-q", "--resume", "{moved_run}", "--model", "{missing}"],
        "missing.onnx",
    ),
    Case(
        "train-resume-with-new-lr",
        ["train", "-q", "--resume", "{corrupt_run}", "--lr", "5"],
        "--lr cannot change on --resume",
        code=2,
    ),
    Case("train-resume-corrupt-config", ["train", "-q", "--resume", "{corrupt_run}"], "config"),
    Case("train-resume-no-config", ["train", "-q", "--resume", "{empty_run}"], "empty_run"),
    # --- export
    Case("export-no-checkpoint", ["export", "--run", "{empty_run}"], "empty_run"),
    Case("export-broken-checkpoint", ["export", "--run", "{broken_pt}"], "broken.pt"),
    # --- energy
    Case("energy-model-missing", ["energy", "--model", "{missing}"], "missing.onnx"),
    Case("energy-model-garbage", ["energy", "--model", "{garbage}"], "garbage.onnx"),
    Case("energy-input-shape", ["energy", "--model", "{vendor}", "--input-shape", "0x3"], "0x3"),
    Case(
        "energy-generator-is-vendor",
        ["energy", "--model", "{vendor}", "--generator", "{vendor}", "--json", "{out}/e.json"],
        "vendor model itself",
        ("e.json",),
    ),
    Case(
        "energy-json-under-file",
        ["energy", "--model", "{vendor}", "--json", "{a_file}/e.json"],
        "a_file/e.json",
    ),
    Case("energy-array", ["energy", "--model", "{vendor}", "--array", "32"], "--array", code=2),
    # --- demo
    Case("demo-epochs-0", ["demo", "--epochs", "0", "--out", "{out}/demo"], "--epochs", ("demo",)),
    Case("demo-ber-2", ["demo", "--ber", "2", "--out", "{out}/demo"], "--ber", ("demo",)),
]


def _fill(args: list[str], files: dict[str, Path], out: Path) -> list[str]:
    names = {key: str(value) for key, value in files.items()}
    return [arg.format(out=out, **names) for arg in args]


def _check_one_line(stderr: str, needle: str) -> None:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert needle in lines[0], lines[0]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for name, content in case.existing.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(content)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    result = CliRunner().invoke(main, _fill(case.args, files, out))
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code != 0, result.output
    if case.code is not None:
        assert result.exit_code == case.code, result.output
    _check_one_line(result.stderr, case.needle.format(**{k: str(v) for k, v in files.items()}))
    assert "Traceback" not in result.output
    for name in case.outputs:
        assert not (out / name).exists(), name
    for name, content in case.existing.items():
        assert (out / name).read_text() == content
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before  # nothing new


def test_battery_size() -> None:
    assert len(CASES) >= 50


def test_absurd_idx_message_states_the_exact_size(files: dict[str, Path], tmp_path: Path) -> None:
    result = CliRunner().invoke(main, _fill([*V, "--data", "{idx}"], files, tmp_path))
    need = 16 + math.prod((0xFFFFFFFF,) * 3)
    assert f"needs {need} bytes" in result.stderr, result.stderr


def test_resume_refusal_names_both_hashes(files: dict[str, Path]) -> None:
    result = CliRunner().invoke(main, ["train", "-q", "--resume", str(files["changed_run"])])
    assert result.exit_code == 1
    assert "0" * 64 in result.stderr and file_sha256(files["vendor"]) in result.stderr
    assert "--force" in result.stderr


def _message_texts(tree: ast.AST) -> list[str]:
    """The literal parts of every string passed to an exception constructor."""
    texts = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute):
            name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
            if name.endswith(("Error", "Exception", "BadParameter")):
                for arg in ast.walk(node):
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        texts.append(arg.value)
    return texts


def test_no_message_names_python_api_parameters() -> None:
    texts = [
        text
        for path in (REPO / "nfdeploy").rglob("*.py")
        for text in _message_texts(ast.parse(path.read_text()))
    ]
    assert any("--seed" in t for t in texts)  # the scan does see the messages
    for name in ("check_parity", "parity_input_shape", "=False", "=True"):
        assert not [t for t in texts if name in t], name


SERVER_CASES = {
    "seed-negative": (["--ber", "0.01", "--seed", "-1"], "--seed -1"),
    "seed-2**70": (["--ber", "0.01", "--seed", BIG], f"--seed {BIG}"),
    "threads-negative": (["--threads", "-2"], "--threads -2"),
    "ber-3": (["--ber", "3"], "--ber 3"),
    "model-missing": (["--model", "{missing}"], "missing.onnx"),
    "port-out-of-range": (["--port", "70000"], "--port 70000"),
}


@pytest.mark.parametrize("name", sorted(SERVER_CASES))
def test_remote_api_server_bad_options(files: dict[str, Path], name: str) -> None:
    extra, needle = SERVER_CASES[name]
    argv = [sys.executable, str(SERVER), "--model", "{vendor}", "--port", "0", *extra]
    result = subprocess.run(
        _fill(argv, files, Path(".")), capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    _check_one_line(result.stderr, needle)
    assert result.stdout == ""


def test_chip_map_wrap_around_is_stated(files: dict[str, Path], tmp_path: Path) -> None:
    """A map sized for the weights without biases, used with --include-bias, wraps around:
    validate says so on stderr and in the report."""
    report = tmp_path / "r.json"
    args = [*V, "--preprocess", "unit", "--fault-model", "chip-map", "--chip-map", "{chip}",
            "--include-bias", "--report", str(report)]  # fmt: skip
    result = CliRunner().invoke(main, _fill(args, files, tmp_path))
    assert result.exit_code == 0, result.output
    assert "wraps around" in result.stderr
    assert "wraps around" in json.loads(report.read_text())["fault"]["chip_map_note"]


def _runtime_cases(files: dict[str, Path], tmp: Path) -> dict[str, tuple[object, str]]:
    from nfdeploy.faults.chipmap import ChipMap
    from nfdeploy.faults.onnx_weights import TensorSelection
    from nfdeploy.onnx.atomic import write_bytes_atomic
    from nfdeploy.runtime import load_model_checked, make_session
    from nfdeploy.runtime.fit import check_generator, classifier_classes

    return {
        "write-under-a-file": (
            lambda: write_bytes_atomic(files["a_file"] / "x.bin", b"1"),
            "x.bin",
        ),
        "write-onto-a-folder": (lambda: write_bytes_atomic(tmp, b"1"), str(tmp)),
        "external-data-missing": (lambda: load_model_checked(files["ext_missing"]), "weights.bin"),
        "session-from-garbage": (lambda: make_session(b"garbage"), "onnxruntime cannot load"),
        "classes-of-a-conv": (
            lambda: classifier_classes(onnx.load(str(files["conv_only"])), "conv.onnx"),
            "[N, classes]",
        ),
        "vendor-as-generator": (
            lambda: check_generator(onnx.load(str(files["vendor"])), "v.onnx"),
            "not a generator",
        ),
        "tensor-regex": (lambda: TensorSelection(pattern="("), "--tensors"),
        "chip-map-truncated": (lambda: ChipMap.load(files["chip_truncated"]), "truncated"),
    }


RUNTIME_CASES = [
    "write-under-a-file", "write-onto-a-folder", "external-data-missing", "session-from-garbage",
    "classes-of-a-conv", "vendor-as-generator", "tensor-regex", "chip-map-truncated",
]  # fmt: skip


@pytest.mark.parametrize("name", RUNTIME_CASES)
def test_runtime_bad_input(name: str, files: dict[str, Path], tmp_path: Path) -> None:
    """The library raises NfdeployError (one line, naming the input), and leaves no temp file."""
    from nfdeploy.errors import NfdeployError

    call, needle = _runtime_cases(files, tmp_path)[name]
    with pytest.raises(NfdeployError) as info:
        call()  # type: ignore[operator]
    assert needle in str(info.value) and "\n" not in str(info.value)
    assert not list(tmp_path.glob(".*.tmp")) and not list(files["a_file"].parent.glob(".x.bin*"))


EXAMPLES = REPO / "deploy_examples"
EXAMPLE_CASES = {
    "merged-seed-negative": ("merged_model/build_and_run.py", ["--seed", "-1"], "--seed -1"),
    "merged-seed-2**70": ("merged_model/build_and_run.py", ["--seed", BIG], f"--seed {BIG}"),
    "merged-threads-negative": ("merged_model/build_and_run.py", ["--threads", "-2"], "--threads"),
    "merged-n-0": ("merged_model/build_and_run.py", ["--n", "0"], "--n 0"),
    "merged-batch-size-0": ("merged_model/build_and_run.py", ["--batch-size", "0"], "--batch"),
    "runner-threads-negative": ("device_runner/run.py", ["--threads", "-3"], "--threads -3"),
    "runner-batch-size-0": ("device_runner/run.py", ["--batch-size", "0"], "--batch-size 0"),
}


@pytest.mark.parametrize("name", sorted(EXAMPLE_CASES))
def test_deploy_examples_bad_options(files: dict[str, Path], tmp_path: Path, name: str) -> None:
    """The merged_model and device_runner examples refuse bad options before writing anything."""
    script, extra, needle = EXAMPLE_CASES[name]
    pipeline = tmp_path / "pipeline.onnx"
    if script.startswith("merged"):
        base = ["--generator", str(files["generator"]), "--model", str(files["vendor"]),
                "--pipeline", str(pipeline)]  # fmt: skip
    else:
        image = tmp_path / "a.png"
        from PIL import Image

        Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(image)
        base = ["--model", str(files["vendor"]), str(image)]
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *base, *extra],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    _check_one_line(result.stderr, needle)
    assert not pipeline.exists()
