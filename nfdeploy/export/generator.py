"""Export a trained generator to ONNX: same input tensor as the vendor model, parity-checked."""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from nfdeploy import __version__
from nfdeploy.data import Preprocess
from nfdeploy.errors import NfdeployError
from nfdeploy.generators import FusedInput
from nfdeploy.generators.build import build_fused_input
from nfdeploy.onnx import metadata as keys
from nfdeploy.onnx.graph import opset_version
from nfdeploy.onnx.load import load_model_checked
from nfdeploy.onnx.metadata import merge_metadata
from nfdeploy.onnx.session import make_session
from nfdeploy.runs.config import TrainConfig
from nfdeploy.runs.run_dir import BEST, LAST, load_checkpoint
from nfdeploy.runtime.batching import graph_input

MIN_OPSET, MAX_OPSET = 9, 21
PARITY_ATOL = 1e-4


@dataclass
class LoadedGenerator:
    fused: FusedInput
    config: TrainConfig
    preprocess: Preprocess
    provenance: dict[str, object]
    epoch: int
    checkpoint: Path


def resolve_checkpoint(run: str | Path) -> Path:
    path = Path(run)
    if path.is_dir():
        best = path / BEST
        return best if best.is_file() else path / LAST
    return path


def load_generator(run: str | Path) -> LoadedGenerator:
    checkpoint = resolve_checkpoint(run)
    state = load_checkpoint(checkpoint)
    if state.get("format") != "nfdeploy-generator-checkpoint-v1":
        raise NfdeployError(f"{checkpoint}: not an nfdeploy generator checkpoint.")
    config = TrainConfig.from_dict(state["config"])
    preprocess = Preprocess.from_dict(state["provenance"]["preprocess"])
    fused = build_fused_input(
        generator=config.generator, seed=config.seed, pre=preprocess
    )  # contiguous: the ONNX export needs no channels_last
    fused.load_state_dict(state["generator"])
    return LoadedGenerator(
        fused.eval(), config, preprocess, state["provenance"], int(state["epoch"]), checkpoint
    )


def vendor_opset(model: onnx.ModelProto) -> int:
    return opset_version(model, default=13)


def to_onnx(
    fused: FusedInput, *, input_name: str, output_name: str, shape: list[int], opset: int
) -> onnx.ModelProto:
    """Legacy TorchScript exporter: single file, dynamic batch, the minimal IR for ``opset``."""
    buffer = io.BytesIO()
    dummy = torch.zeros(1, *shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            fused,
            (dummy,),
            buffer,  # type: ignore[arg-type]
            dynamo=False,
            opset_version=opset,
            input_names=[input_name], output_names=[output_name],
            dynamic_axes={input_name: {0: "N"}, output_name: {0: "N"}},
        )  # fmt: skip
    return onnx.load_from_string(buffer.getvalue())


def check_parity(
    fused: FusedInput, model: onnx.ModelProto, pre: Preprocess, *, seed: int = 0
) -> float:
    """Max |onnxruntime - torch| over random in-range inputs at batch 1 and 3; error if too large."""
    lo, hi = pre.valid_range()
    rng = np.random.default_rng(seed)
    session = make_session(model.SerializeToString(), threads=1)
    name = session.get_inputs()[0].name
    worst = 0.0
    for batch in (1, 3):
        u = rng.random((batch, pre.channels, pre.height, pre.width), dtype=np.float32)
        x = (lo.reshape(1, -1, 1, 1) + u * (hi - lo).reshape(1, -1, 1, 1)).astype(np.float32)
        with torch.no_grad():
            expected = fused(torch.from_numpy(x)).numpy()
        worst = max(worst, float(np.max(np.abs(session.run(None, {name: x})[0] - expected))))
    if worst > PARITY_ATOL:
        raise NfdeployError(
            f"export parity failed: onnxruntime differs from torch by {worst:.2e} (> {PARITY_ATOL})."
        )
    return worst


def provenance_props(loaded: LoadedGenerator) -> dict[str, str]:
    config, prov = loaded.config, loaded.provenance
    fault = prov["fault"]
    assert isinstance(fault, dict)
    return {
        keys.VERSION: __version__,
        keys.VENDOR_SHA256: str(prov["vendor_sha256"]),
        keys.GRADIENT_MODEL_SHA256: _joined(prov["gradient_model_sha256"]),
        keys.GENERATOR_ARCH: config.generator,
        keys.TRAIN_BER: str(config.train_ber),
        keys.FAULT_MODEL: config.fault_model,
        keys.STORAGE: str(fault["storage"]),
        keys.PREPROCESS: json.dumps(loaded.preprocess.to_dict()),
        keys.SEED: str(config.seed),
        keys.EPOCH: str(loaded.epoch),
    }


def _joined(value: object) -> str:
    """A provenance entry as text: an ensemble's list of surrogates comma-separated."""
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def build_generator_onnx(
    loaded: LoadedGenerator, vendor_path: str | Path
) -> tuple[onnx.ModelProto, onnx.ModelProto, float]:
    """(generator model, vendor model, parity error)."""
    vendor = load_model_checked(vendor_path)
    vendor_input = graph_input(vendor)
    opset = min(max(vendor_opset(vendor), MIN_OPSET), MAX_OPSET)
    pre = loaded.preprocess
    model = to_onnx(
        loaded.fused, input_name=vendor_input.name, output_name=f"{vendor_input.name}_fused",
        shape=[pre.channels, pre.height, pre.width], opset=opset,
    )  # fmt: skip
    merge_metadata(model, provenance_props(loaded))
    parity = check_parity(loaded.fused, model, pre)
    return model, vendor, parity
