"""`nfdeploy validate` end to end on tiny models and data made here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from nfdeploy.cli import main
from nfdeploy.onnx.session import make_session
from tests.onnx_builders import IN_CHANNELS, SIZE, conv_bn_model


def _identity_generator(path: Path, delta: float = 0.0) -> Path:
    """A stand-in generator.onnx: F(x) = clip(x + delta, 0, 1), weights in a 1x1 Conv."""
    weight = np.zeros((IN_CHANNELS, IN_CHANNELS, 1, 1), np.float32)
    for c in range(IN_CHANNELS):
        weight[c, c] = 1.0
    inits = [
        numpy_helper.from_array(weight, "g.weight"),
        numpy_helper.from_array(np.full(IN_CHANNELS, delta, np.float32), "g.bias"),
        numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
        numpy_helper.from_array(np.array(1.0, np.float32), "hi"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "g.weight", "g.bias"], ["g"]),
        helper.make_node("Clip", ["g", "lo", "hi"], ["fused"]),
    ]
    shape = ["N", IN_CHANNELS, SIZE, SIZE]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("fused", TensorProto.FLOAT, shape)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.save(model, str(path))
    return path


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    model = conv_bn_model(seed=1)  # a weight draw whose predictions depend on the input colour
    model_path = tmp_path / "vendor.onnx"
    onnx.save(model, str(model_path))
    rng = np.random.default_rng(0)
    # per-image colours, so that the model's predictions depend on the input
    colours = rng.integers(0, 256, (60, 1, 1, IN_CHANNELS))
    noise = rng.integers(-20, 21, (60, SIZE, SIZE, IN_CHANNELS))
    images = np.clip(colours + noise, 0, 255).astype(np.uint8)
    x = images.transpose(0, 3, 1, 2).astype(np.float32) / 255
    session = make_session(model.SerializeToString(), threads=1)
    labels = np.argmax(session.run(None, {"x": x})[0], axis=1)
    assert len(set(labels.tolist())) >= 2
    data = tmp_path / "data.npz"
    np.savez(data, x=images, y=labels)
    return {
        "model": model_path,
        "data": data,
        "generator": _identity_generator(tmp_path / "generator.onnx"),
    }


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["validate", "-q", *args])
    return result.exit_code, result.output


def test_validate_writes_report_with_trials_and_seeds(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    report = tmp_path / "out" / "report.json"
    code, output = _invoke(
        "--model", str(setup["model"]), "--data", str(setup["data"]), "--preprocess", "unit",
        "--ber", "0.0", "--ber", "0.1", "--trials", "3", "--fault-model", "stuck-at",
        "--generator", str(setup["generator"]), "--report", str(report),
    )  # fmt: skip
    assert code == 0, output
    assert "PA(NF)" in output and "stuck-at" in output
    data = json.loads(report.read_text())
    assert data["schema_version"] == 2
    assert data["seeds"] == [50_000, 50_001, 50_002]
    assert [t["name"] for t in data["tensors"]] == ["conv.weight", "fc.weight"]
    clean, faulty = data["results"]
    assert clean["ca"] > 0.9  # labels come from the float model; int8 storage keeps most
    assert clean["pa"]["mean"] == clean["ca"] and clean["pa"]["std"] == 0.0
    assert all(t["bits_changed"] == 0 for t in clean["trials"])
    assert all(t["bits_changed"] > 0 for t in faulty["trials"])
    assert faulty["pa"]["mean"] < clean["ca"]
    # identity generator: NF equals no-NF trial by trial
    assert [t["pa_nf"] for t in faulty["trials"]] == [t["pa"] for t in faulty["trials"]]
    assert faulty["rp"] == pytest.approx(0.0)
    low, high = faulty["pa"]["ci95"]
    assert low <= faulty["pa"]["mean"] <= high


def test_fail_under_exits_nonzero(setup: dict[str, Path]) -> None:
    base = ["--model", str(setup["model"]), "--data", str(setup["data"]), "--preprocess", "unit"]
    code, output = _invoke(*base, "--ber", "0.3", "--trials", "2", "--fail-under", "99")
    assert code == 1
    assert "FAIL: PA" in output
    assert _invoke(*base, "--ber", "0", "--trials", "1", "--fail-under", "0.5")[0] == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--ber", "2"], "--ber 2"),
        (["--ber", "0.01", "--seed", "100"], "training range"),
        (["--ber", "0.01", "--trials", "0"], "'--trials': 0 is not in the range"),
        (["--ber", "0.01", "--bits", "9"], "--bits"),
        (["--ber", "0.01", "--preprocess", "mean=abc"], "mean"),
    ],
)
def test_bad_options_give_one_line_errors(
    setup: dict[str, Path], tmp_path: Path, extra: list[str], message: str
) -> None:
    report = tmp_path / "r.json"
    code, output = _invoke(
        "--model", str(setup["model"]), "--data", str(setup["data"]), "--report", str(report), *extra
    )  # fmt: skip
    assert code != 0
    assert message in output
    assert "Traceback" not in output
    assert not report.exists()


def test_missing_model_and_data(setup: dict[str, Path], tmp_path: Path) -> None:
    code, output = _invoke(
        "--model", str(tmp_path / "nope.onnx"), "--data", str(setup["data"]), "--ber", "0.01"
    )
    assert code == 1 and "nope.onnx" in output and "Traceback" not in output
    code, output = _invoke(
        "--model", str(setup["model"]), "--data", str(tmp_path / "nodata"), "--ber", "0.01"
    )
    assert code == 1 and "nodata" in output and "Traceback" not in output


def test_generator_shape_mismatch_is_refused(setup: dict[str, Path], tmp_path: Path) -> None:
    other = conv_bn_model()
    other.graph.input[0].type.tensor_type.shape.dim[2].dim_value = SIZE + 2
    bad = tmp_path / "bad_gen.onnx"
    onnx.save(other, str(bad))
    code, output = _invoke(
        "--model", str(setup["model"]), "--data", str(setup["data"]), "--ber", "0.01",
        "--generator", str(bad),
    )  # fmt: skip
    assert code == 1 and "does not match" in output


def test_faulty_generator_changes_fused_inputs(setup: dict[str, Path], tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    code, output = _invoke(
        "--model", str(setup["model"]), "--data", str(setup["data"]), "--preprocess", "unit",
        "--ber", "0.2", "--trials", "2", "--generator", str(setup["generator"]),
        "--faulty-generator", "--report", str(report),
    )  # fmt: skip
    assert code == 0, output
    data = json.loads(report.read_text())
    assert data["generator"]["faulty"] is True
    trials = data["results"][0]["trials"]
    assert all(t["generator_bits_changed"] > 0 for t in trials)


def test_chip_map_is_persistent_across_runs(setup: dict[str, Path], tmp_path: Path) -> None:
    chip = tmp_path / "chip.npz"
    made = CliRunner().invoke(
        main,
        [
            "chipmap",
            "--model",
            str(setup["model"]),
            "--ber",
            "0.05",
            "--seed",
            "3",
            "--out",
            str(chip),
        ],
    )
    assert made.exit_code == 0, made.output
    reports = []
    for name in ("a.json", "b.json"):
        code, output = _invoke(
            "--model", str(setup["model"]), "--data", str(setup["data"]), "--preprocess", "unit",
            "--ber", "0", "--fault-model", "chip-map", "--chip-map", str(chip), "--report", str(tmp_path / name),
        )  # fmt: skip
        assert code == 0, output
        reports.append(json.loads((tmp_path / name).read_text()))
    first, second = (r["results"][0]["trials"] for r in reports)
    assert len(first) == 1 and first[0]["bits_changed"] > 0
    assert (
        first[0]["bits_changed"] == second[0]["bits_changed"] and first[0]["pa"] == second[0]["pa"]
    )
    assert reports[0]["fault"]["fault_model"] == "chip-map"


def test_chip_map_errors(setup: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    np.savez(bad, something=np.zeros(3))
    code, output = _invoke(
        "--model", str(setup["model"]), "--data", str(setup["data"]), "--ber", "0",
        "--fault-model", "chip-map", "--chip-map", str(bad),
    )  # fmt: skip
    assert code == 1 and "chip map" in output and "Traceback" not in output
    code, output = _invoke(
        "--model",
        str(setup["model"]),
        "--data",
        str(setup["data"]),
        "--ber",
        "0",
        "--fault-model",
        "chip-map",
    )
    assert code == 1 and "--chip-map" in output


def test_plots_written_and_optional(setup: dict[str, Path], tmp_path: Path) -> None:
    import subprocess
    import sys
    import textwrap

    args = [
        "validate", "-q", "--model", str(setup["model"]), "--data", str(setup["data"]), "--preprocess", "unit",
        "--ber", "0.05", "--trials", "2", "--generator", str(setup["generator"]),
    ]  # fmt: skip
    result = CliRunner().invoke(main, [*args, "--plots", str(tmp_path / "plots")])
    assert result.exit_code == 0, "".join(
        __import__("traceback").format_exception(result.exception)
    )
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "accuracy_vs_ber.png", "image_grid.png", "trial_distribution.png",
    ]  # fmt: skip
    blocked = textwrap.dedent(
        f"""
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "matplotlib":
                    raise ImportError("no matplotlib here")
        sys.meta_path.insert(0, Block())
        from nfdeploy.cli import main
        main({[*args, "--plots", str(tmp_path / "none")]!r})
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", blocked], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "pip install 'nfdeploy[plots]'" in result.stderr
    assert not (tmp_path / "none").exists()


def _trial_accuracies(report: Path) -> tuple[list[float], list[float]]:
    rows = json.loads(report.read_text())["results"]
    return (
        [t["pa"] for row in rows for t in row["trials"]],
        [t["pa_nf"] for row in rows for t in row["trials"]],
    )


def test_several_generators_match_separate_runs(setup: dict[str, Path], tmp_path: Path) -> None:
    plain = _identity_generator(tmp_path / "plain.onnx")
    shifted = _identity_generator(tmp_path / "shifted.onnx", delta=0.3)
    common = ["--model", str(setup["model"]), "--data", str(setup["data"]), "--ber", "0.05",
              "--ber", "0.1", "--trials", "3", "--threads", "1"]  # fmt: skip
    for gen in (plain, shifted):
        code, output = _invoke(
            *common, "--generator", str(gen), "--report", str(tmp_path / f"one-{gen.stem}.json")
        )
        assert code == 0, output
    code, output = _invoke(
        *common, "--generator", str(plain), "--generator", str(shifted),
        "--report", str(tmp_path / "both-{generator}.json"),
    )  # fmt: skip
    assert code == 0, output
    for name in ("plain", "shifted"):
        assert _trial_accuracies(tmp_path / f"both-{name}.json") == _trial_accuracies(
            tmp_path / f"one-{name}.json"
        )
    pa_nf = [_trial_accuracies(tmp_path / f"both-{n}.json")[1] for n in ("plain", "shifted")]
    assert pa_nf[0] != pa_nf[1]  # the shift changes predictions, so the reports really differ


def test_several_generators_need_placeholder_and_distinct_names(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    other = _identity_generator(tmp_path / "g2.onnx")
    base = ["--model", str(setup["model"]), "--data", str(setup["data"]), "--ber", "0.05"]
    code, output = _invoke(*base, "--generator", str(setup["generator"]), "--generator",
                           str(other), "--report", str(tmp_path / "r.json"))  # fmt: skip
    assert code != 0 and "{generator}" in output and "Traceback" not in output
    assert not (tmp_path / "r.json").exists()
    code, output = _invoke(*base, "--generator", str(other), "--generator", str(other))
    assert code != 0 and "not distinct" in output
    code, output = _invoke(
        *base, "--generator", str(other), "--report", str(tmp_path / "{generator}.json")
    )
    assert code == 0 and (tmp_path / "g2.json").is_file()  # filled in for one generator too


def test_image_grid_samples_cover_the_classes() -> None:
    from nfdeploy.validate.assemble import sample_index

    sorted_labels = np.repeat(np.arange(10), 50)  # a data set sorted by class
    assert sorted(sorted_labels[sample_index(sorted_labels)].tolist()) == list(range(8))
    two_classes = np.array([0] * 30 + [1] * 30)
    index = sample_index(two_classes)
    assert len(index) == 8 and len(set(index.tolist())) == 8 and set(two_classes[index]) == {0, 1}
