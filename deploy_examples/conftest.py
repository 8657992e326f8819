"""Shared fixtures for the deploy_examples smoke tests: tiny ONNX models built with
onnx.helper (no training, no torch) and a runner that executes a script with torch blocked."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

EXAMPLES = Path(__file__).resolve().parent
REPO = EXAMPLES.parent
CHANNELS, SIZE, MID, CLASSES = 3, 8, 6, 5
INPUT, OUTPUT = "input", "logits"
# Pixels -> [-1, 1]; stored in the generator's metadata as `nfdeploy export` does.
PREPROCESS = {
    "channels": CHANNELS,
    "height": SIZE,
    "width": SIZE,
    "scale": 1 / 255,
    "mean": [0.5],
    "std": [0.5],
}

# Runs `python BLOCKER script.py args...`: any import of torch raises ImportError, so a
# script that needs torch anywhere on its path fails loudly.
TORCH_BLOCKER = """
import runpy, sys

class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"torch is blocked in this smoke test (import {name!r})")
        return None

sys.meta_path.insert(0, _NoTorch())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def vendor_model(*, seed: int = 0, batch: int | str = "N") -> onnx.ModelProto:
    """Conv 3x3 -> Relu -> GlobalAveragePool -> Flatten -> Gemm: (N,3,8,8) -> (N,5) logits."""
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(
            rng.normal(0, 0.6, (MID, CHANNELS, 3, 3)).astype(np.float32), "conv.weight"
        ),
        numpy_helper.from_array(rng.normal(0, 0.1, MID).astype(np.float32), "conv.bias"),
        numpy_helper.from_array(rng.normal(0, 1.5, (CLASSES, MID)).astype(np.float32), "fc.weight"),
        numpy_helper.from_array(rng.normal(0, 0.1, CLASSES).astype(np.float32), "fc.bias"),
    ]
    nodes = [
        helper.make_node(
            "Conv", [INPUT, "conv.weight", "conv.bias"], ["c"], pads=[1, 1, 1, 1], name="conv"
        ),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], [OUTPUT], transB=1, name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_vendor",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [batch, CHANNELS, SIZE, SIZE])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [batch, CLASSES])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def generator_model(*, seed: int = 1, size: int = SIZE) -> onnx.ModelProto:
    """F(x) = clip(x + Conv1x1(x), -1, 1) with the vendor's input name, like `nfdeploy export`."""
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(
            rng.normal(0, 0.3, (CHANNELS, CHANNELS, 1, 1)).astype(np.float32), "g.weight"
        ),
        numpy_helper.from_array(rng.normal(0, 0.1, CHANNELS).astype(np.float32), "g.bias"),
        numpy_helper.from_array(np.array(-1.0, np.float32), "lo"),
        numpy_helper.from_array(np.array(1.0, np.float32), "hi"),
    ]
    fused = f"{INPUT}_fused"
    nodes = [
        helper.make_node("Conv", [INPUT, "g.weight", "g.bias"], ["delta"], name="g_conv"),
        helper.make_node("Add", [INPUT, "delta"], ["sum"]),
        helper.make_node("Clip", ["sum", "lo", "hi"], [fused]),
    ]
    shape: list[int | str] = ["N", CHANNELS, size, size]
    graph = helper.make_graph(
        nodes,
        "tiny_generator",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(fused, TensorProto.FLOAT, shape)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    pre = dict(PREPROCESS, height=size, width=size)
    helper.set_model_props(
        model, {"nfdeploy.preprocess": json.dumps(pre), "nfdeploy.generator_arch": "tiny-test"}
    )
    onnx.checker.check_model(model)
    return model


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """vendor.onnx, generator.onnx, a second generator and a wrong-size one, on disk."""
    root = tmp_path_factory.mktemp("tiny_models")
    paths = {
        "vendor": root / "vendor.onnx",
        "generator": root / "generator.onnx",
        "generator_other": root / "generator_other.onnx",
        "generator_wrong_size": root / "generator_16.onnx",
        "vendor_batch1": root / "vendor_batch1.onnx",
    }
    onnx.save(vendor_model(), str(paths["vendor"]))
    onnx.save(generator_model(), str(paths["generator"]))
    onnx.save(generator_model(seed=7), str(paths["generator_other"]))
    onnx.save(generator_model(size=16), str(paths["generator_wrong_size"]))
    onnx.save(vendor_model(batch=1), str(paths["vendor_batch1"]))
    return paths


def _torch_free_argv(script: Path, *args: str) -> list[str]:
    return [sys.executable, "-c", TORCH_BLOCKER, str(script), *args]


@pytest.fixture(scope="session")
def torch_free_argv() -> Callable[..., list[str]]:
    """The command line that runs an example script with torch blocked (for Popen)."""
    return _torch_free_argv


@pytest.fixture(scope="session")
def run_torch_free() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run an example script in a fresh interpreter where importing torch raises ImportError."""

    def run(script: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            _torch_free_argv(script, *args),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
            check=False,
        )

    return run


@pytest.fixture(scope="session")
def load_example() -> Callable[[str], ModuleType]:
    """Import an example script as a module (for in-process checks of its main())."""
    cache: dict[str, ModuleType] = {}

    def load(relative: str) -> ModuleType:
        if relative not in cache:
            path = EXAMPLES / relative
            name = "nfdeploy_example_" + relative.replace("/", "_").removesuffix(".py")
            spec = importlib.util.spec_from_file_location(name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            cache[relative] = module
        return cache[relative]

    return load


@pytest.fixture(scope="session")
def one_line_error() -> Callable[[int, str], str]:
    """Check a non-zero exit with exactly one line on stderr and no traceback; return it."""

    def check(code: int, err: str) -> str:
        assert code != 0, err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1, err
        assert "Traceback" not in err
        return lines[0]

    return check
