"""An ensemble of surrogates (`train --surrogate A --surrogate B`): step k of the run takes
its passes from surrogate k mod M, resume is exact, bad ensembles are refused in one line,
and run folders from before the ensemble still resume. These train for real (tiny)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from onnx import numpy_helper

from nfdeploy.cli import main
from nfdeploy.onnx.load import file_sha256
from nfdeploy.runs.config import TrainConfig
from nfdeploy.train.setup import gradient_model_index
from tests.onnx_builders import MID, SIZE, colour_patches_npz, conv_bn_model
from tests.test_train import _generator_state, _train_args

pytestmark = [
    pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export"),
    pytest.mark.usefixtures("one_torch_thread"),
]

# 100 training images in batches of 20: 5 steps per epoch, an odd count, so that a step
# index counted per epoch (instead of over the run) would pick another surrogate in epoch 2.
FIVE_STEPS = ["--batch-size", "20"]


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


@pytest.fixture
def vendor_path(tmp_path: Path) -> Path:
    return _save(conv_bn_model(seed=1), tmp_path / "vendor.onnx")


@pytest.fixture
def data_path(tmp_path: Path) -> Path:
    return colour_patches_npz(tmp_path / "data.npz", 120)


@pytest.fixture
def surrogates(tmp_path: Path) -> tuple[Path, Path]:
    return (
        _save(conv_bn_model(seed=2), tmp_path / "a.onnx"),
        _save(conv_bn_model(seed=3), tmp_path / "b.onnx"),
    )


def _with(*paths: Path) -> list[str]:
    return [arg for path in paths for arg in ("--surrogate", str(path))]


def _run(args: list[str]) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output


def _fails(args: list[str]) -> str:
    """The one-line error of a refused command."""
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def _same(a: Path, b: Path) -> bool:
    first, second = _generator_state(a), _generator_state(b)
    return all(torch.equal(first[key], second[key]) for key in first)


def _metrics(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_step_to_model_mapping() -> None:
    assert [gradient_model_index(k, 2) for k in range(6)] == [0, 1, 0, 1, 0, 1]
    assert [gradient_model_index(k, 3) for k in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    assert {gradient_model_index(k, 1) for k in range(10)} == {0}


def test_steps_alternate_between_the_surrogates_across_a_resume(
    vendor_path: Path,
    data_path: Path,
    tmp_path: Path,
    surrogates: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Written-out oracle: global step k runs its vendor passes on surrogate k mod 2, on
    weight chunks built by that surrogate's StepWeights (prefetched or not), with soft
    targets from that surrogate, counting steps over the run, also after --resume."""
    from nfdeploy.train import loop, perturbed, recipe

    setups: list[Any] = []
    built: list[tuple[Any, Any]] = []  # (StepWeights, the chunk it built), kept alive
    steps: list[tuple[Any, list[Any]]] = []  # (module the passes ran on, their chunks)
    target_sources: list[Any] = []
    real_setup, real_step = loop.build_setup, loop.eopm_step
    real_targets, real_build = recipe.vendor_targets, perturbed.StepWeights.build

    def build_setup(*args: Any, **kwargs: Any) -> Any:
        setups.append(real_setup(*args, **kwargs))
        return setups[-1]

    def build(self: Any, job: Any) -> Any:
        chunk = real_build(self, job)
        built.append((self, chunk))
        return chunk

    def eopm_step(fused: Any, vendor: Any, x: Any, targets: Any, chunks: Any, **kw: Any) -> Any:
        chunks = list(chunks)
        steps.append((vendor, chunks))
        return real_step(fused, vendor, x, targets, chunks, **kw)

    def vendor_targets(setup: Any, source: Any, x: Any, labels: Any) -> Any:
        target_sources.append(source)
        return real_targets(setup, source, x, labels)

    monkeypatch.setattr(loop, "build_setup", build_setup)
    monkeypatch.setattr(loop, "eopm_step", eopm_step)
    monkeypatch.setattr(recipe, "vendor_targets", vendor_targets)
    monkeypatch.setattr(perturbed.StepWeights, "build", build)
    run = tmp_path / "run"
    args = [*_train_args(vendor_path, data_path, run), *FIVE_STEPS, *_with(*surrogates)]
    _run([*args, "--epochs", "2", "--stop-after", "1"])
    _run(["train", "-q", "--resume", str(run)])
    assert len(setups) == 2 and len(steps) == 10 and len(target_sources) == 10
    builder = {id(chunk): weights for weights, chunk in built}
    names = []
    for k, (module, chunks) in enumerate(steps):
        expected = setups[k // 5].models[k % 2]
        names.append(expected.faultable.path.name)
        assert module is expected.step_module
        assert target_sources[k] is expected
        assert len(chunks) == 3  # clean + N = 2, one by one
        assert all(builder[id(chunk)] is expected.step_weights for chunk in chunks)
    assert names == ["a.onnx", "b.onnx"] * 5


def test_ensemble_differs_from_each_surrogate_and_from_the_swapped_order(
    vendor_path: Path, data_path: Path, tmp_path: Path, surrogates: tuple[Path, Path]
) -> None:
    a, b = surrogates
    runs = {}
    for name, chosen in {"a": [a], "b": [b], "ab": [a, b], "ba": [b, a]}.items():
        runs[name] = tmp_path / name
        _run([*_train_args(vendor_path, data_path, runs[name]), "--epochs", "1", *_with(*chosen)])
    assert not _same(runs["ab"], runs["a"]) and not _same(runs["ab"], runs["b"])
    assert not _same(runs["ab"], runs["ba"])
    row = _metrics(runs["ab"])[-1]
    assert len(row["pa_nf_by_model"]) == len(row["ca_nf_by_model"]) == 2
    assert row["pa_nf"] == pytest.approx(np.mean(row["pa_nf_by_model"]))
    assert row["ca_nf"] == pytest.approx(np.mean(row["ca_nf_by_model"]))
    assert "pa_nf_by_model" not in _metrics(runs["a"])[-1]  # one surrogate: keys as ever
    config = json.loads((runs["ab"] / "config.json").read_text())
    assert config["config"]["surrogates"] == [str(a), str(b)]
    assert config["config"]["from_run"]["surrogates"] == ["../a.onnx", "../b.onnx"]
    assert config["gradient_model"] == ["a.onnx", "b.onnx"]
    assert config["gradient_model_sha256"] == [file_sha256(a), file_sha256(b)]


def test_a_one_step_ensemble_run_equals_its_first_surrogate(
    vendor_path: Path, data_path: Path, tmp_path: Path, surrogates: tuple[Path, Path]
) -> None:
    """Step 0 is the first surrogate's, with today's seeds: one step of [A, B] is one of [A]."""
    a, b = surrogates
    one_step = ["--epochs", "1", "--batch-size", "100"]
    for name, chosen in {"ab": [a, b], "a": [a], "ba": [b, a], "b": [b]}.items():
        _run([*_train_args(vendor_path, data_path, tmp_path / name), *one_step, *_with(*chosen)])
    assert _same(tmp_path / "ab", tmp_path / "a") and _same(tmp_path / "ba", tmp_path / "b")


def test_ensemble_resume_continues_exactly(
    vendor_path: Path, data_path: Path, tmp_path: Path, surrogates: tuple[Path, Path]
) -> None:
    straight, split = tmp_path / "straight", tmp_path / "split"
    args = [*FIVE_STEPS, "--epochs", "2", *_with(*surrogates)]
    _run([*_train_args(vendor_path, data_path, straight), *args])
    _run([*_train_args(vendor_path, data_path, split), *args, "--stop-after", "1"])
    _run(["train", "-q", "--resume", str(split)])
    assert _same(straight, split)
    drop = {"seconds"}
    assert [{k: v for k, v in row.items() if k not in drop} for row in _metrics(straight)] == [
        {k: v for k, v in row.items() if k not in drop} for row in _metrics(split)
    ]


def test_moved_surrogates_resume_with_repeated_surrogate_in_order(
    vendor_path: Path, data_path: Path, tmp_path: Path, surrogates: tuple[Path, Path]
) -> None:
    run = tmp_path / "run"
    args = [*_train_args(vendor_path, data_path, run), "--epochs", "3", "--stop-after", "1"]
    _run([*args, *_with(*surrogates)])
    moved = tmp_path / "moved"
    moved.mkdir()
    for path in surrogates:
        shutil.move(path, moved / path.name)
    message = _fails(["train", "-q", "--resume", str(run), "--stop-after", "2"])
    assert "--surrogate PATH (once for each of its 2 surrogates" in message
    assert str(surrogates[0]) in message
    message = _fails(["train", "-q", "--resume", str(run), *_with(moved / "a.onnx")])
    assert "--surrogate" in message and "given 1 time(s)" in message and "2 surrogates" in message
    _run(
        ["train", "-q", "--resume", str(run), "--stop-after", "2", *_with(*sorted(moved.iterdir()))]
    )
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["surrogates"] == [str(moved / "a.onnx"), str(moved / "b.onnx")]
    assert [row["epoch"] for row in _metrics(run)] == [0, 1, 2]


def _other_classes(path: Path, classes: int) -> Path:
    model = conv_bn_model(seed=4)
    rng = np.random.default_rng(4)
    for init in model.graph.initializer:
        if init.name == "fc.weight":
            weight = rng.normal(0, 2.0, (classes, MID)).astype(np.float32)
            init.CopyFrom(numpy_helper.from_array(weight, "fc.weight"))
        elif init.name == "fc.bias":
            init.CopyFrom(numpy_helper.from_array(np.zeros(classes, np.float32), "fc.bias"))
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_value = classes
    return _save(model, path)


def _other_size(path: Path) -> Path:
    model = conv_bn_model(seed=4)
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_value = SIZE + 2
    return _save(model, path)


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("classes", ["--surrogate", "bad.onnx", "5 classes", "the same classes"]),
        ("size", ["--surrogate", "bad.onnx", "input shape"]),
        ("twice", ["--surrogate", "a.onnx", "give each surrogate once"]),
        ("copy", ["--surrogate", "bad.onnx", "the same model as --surrogate", "a.onnx"]),
    ],
)
def test_bad_ensembles_are_refused_before_the_run_folder(
    vendor_path: Path,
    data_path: Path,
    tmp_path: Path,
    surrogates: tuple[Path, Path],
    bad: str,
    expected: list[str],
) -> None:
    a, _ = surrogates
    second = {
        "classes": lambda: _other_classes(tmp_path / "bad.onnx", 5),
        "size": lambda: _other_size(tmp_path / "bad.onnx"),
        "twice": lambda: a,
        "copy": lambda: Path(shutil.copy(a, tmp_path / "bad.onnx")),
    }[bad]()
    run = tmp_path / "run"
    message = _fails([*_train_args(vendor_path, data_path, run), *_with(a, second)])
    assert all(part in message for part in expected), message
    assert not run.exists()


def test_resume_refuses_a_changed_surrogate_unless_force(
    vendor_path: Path, data_path: Path, tmp_path: Path, surrogates: tuple[Path, Path]
) -> None:
    run = tmp_path / "run"
    args = [*_train_args(vendor_path, data_path, run), "--epochs", "2", "--stop-after", "1"]
    _run([*args, *_with(*surrogates)])
    recorded = file_sha256(surrogates[1])
    _save(conv_bn_model(seed=9), surrogates[1])  # the second surrogate changes under the run
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    message = _fails(["train", "-q", "--resume", str(run)])
    assert str(surrogates[1]) in message and recorded in message and "--force" in message
    assert file_sha256(surrogates[1]) in message
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # nothing written
    _run(["train", "-q", "--resume", str(run), "--force"])
    config = json.loads((run / "config.json").read_text())
    assert config["gradient_model_sha256"] == [file_sha256(p) for p in surrogates]
    assert [row["epoch"] for row in _metrics(run)] == [0, 1, 2]


def test_a_vendor_run_refuses_a_surrogate_on_resume(
    vendor_path: Path, data_path: Path, tmp_path: Path, surrogates: tuple[Path, Path]
) -> None:
    run = tmp_path / "run"
    _run([*_train_args(vendor_path, data_path, run), "--epochs", "2", "--stop-after", "1"])
    message = _fails(["train", "-q", "--resume", str(run), *_with(surrogates[0])])
    assert "--surrogate" in message and "no surrogate" in message
    assert [row["epoch"] for row in _metrics(run)] == [0, 1]


def test_old_config_with_one_surrogate_path_still_resumes(
    vendor_path: Path, data_path: Path, tmp_path: Path, surrogates: tuple[Path, Path]
) -> None:
    """A run folder from before the ensemble ("surrogate": path, from_run "surrogate") resumes
    exactly, after its whole tree moved too (the old relative path resolves)."""
    tree, reference = tmp_path / "tree", tmp_path / "reference"
    tree.mkdir()
    files = [shutil.copy(p, tree / p.name) for p in (vendor_path, data_path, surrogates[0])]
    vendor, data, surrogate = map(Path, files)
    run = tree / "runs" / "old"
    args = [*_train_args(vendor, data, run), *FIVE_STEPS, "--epochs", "2", *_with(surrogate)]
    _run([*args, "--stop-after", "1"])
    _run([*_train_args(vendor, data, reference), *FIVE_STEPS, "--epochs", "2", *_with(surrogate)])
    full = json.loads((run / "config.json").read_text())
    config = full["config"]
    config["surrogate"] = config.pop("surrogates")[0]
    config["from_run"]["surrogate"] = config["from_run"].pop("surrogates")[0]
    full["gradient_model_sha256"] = file_sha256(surrogate)
    (run / "config.json").write_text(json.dumps(full))
    moved = tmp_path / "moved"
    shutil.move(tree, moved)
    _run(["train", "-q", "--resume", str(moved / "runs" / "old")])
    assert _same(moved / "runs" / "old", reference)
    resumed = json.loads((moved / "runs" / "old" / "config.json").read_text())["config"]
    assert resumed["surrogates"] == [str(moved / "a.onnx")] and "surrogate" not in resumed


def test_old_config_fields_map_to_the_surrogate_list() -> None:
    base = {"vendor": "/v.onnx", "data": "synthetic"}
    assert TrainConfig.from_dict({**base, "surrogate": None}).surrogates == ()
    assert TrainConfig.from_dict(base).surrogates == ()
    old = TrainConfig.from_dict({**base, "surrogate": "/s.onnx", "from_run": {"surrogate": "s"}})
    assert old.surrogates == ("/s.onnx",) and old.from_run == {"surrogates": ["s"]}
    new = TrainConfig.from_dict({**base, "surrogates": ["/s.onnx", "/t.onnx"]})
    assert new.surrogates == ("/s.onnx", "/t.onnx")
    assert TrainConfig.from_dict(new.to_dict()) == new


def _storing(model: onnx.ModelProto, path: Path, preprocess: str) -> Path:
    from nfdeploy.data import Preprocess
    from nfdeploy.onnx.metadata import PREPROCESS

    spec = json.dumps(Preprocess.parse(preprocess).to_dict())
    onnx.helper.set_model_props(model, {PREPROCESS: spec})
    return _save(model, path)


def _without_preprocess(args: list[str]) -> list[str]:
    at = args.index("--preprocess")
    return args[:at] + args[at + 2 :]


def test_the_vendors_stored_preprocessing_wins_over_the_surrogates(
    data_path: Path, tmp_path: Path, surrogates: tuple[Path, Path]
) -> None:
    """G is deployed in front of the vendor: it learns in the vendor's input space."""
    vendor = _storing(conv_bn_model(seed=1), tmp_path / "v.onnx", "mean=.5/.5/.5,std=.25/.25/.25")
    run = tmp_path / "run"
    args = _without_preprocess(_train_args(vendor, data_path, run))
    _run([*args, *_with(*surrogates), "--epochs", "1", *FIVE_STEPS])
    stored = json.loads((run / "config.json").read_text())["preprocess"]
    assert stored["mean"] == [0.5, 0.5, 0.5] and stored["std"] == [0.25, 0.25, 0.25]


def test_a_surrogate_storing_other_preprocessing_is_refused(
    data_path: Path, tmp_path: Path, surrogates: tuple[Path, Path]
) -> None:
    vendor = _storing(conv_bn_model(seed=1), tmp_path / "v.onnx", "cifar10")
    other = _storing(conv_bn_model(seed=4), tmp_path / "other.onnx", "unit")
    run = tmp_path / "run"
    args = _without_preprocess(_train_args(vendor, data_path, run))
    message = _fails([*args, *_with(surrogates[0], other)])
    assert "--surrogate" in message and "other.onnx" in message and "--preprocess" in message
    assert not run.exists()
