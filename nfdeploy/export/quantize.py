"""Optional int8 (QDQ) generator, with an accuracy check against the float generator."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from nfdeploy.data import Preprocess, load_dataset
from nfdeploy.onnx.load import load_model_checked
from nfdeploy.onnx.session import make_session
from nfdeploy.runtime.session import run_logits

CALIBRATION_IMAGES = 256
CHECK_IMAGES = 1000


class _Reader(CalibrationDataReader):
    """onnxruntime's data-reader protocol over preprocessed images."""

    def __init__(self, name: str, x: np.ndarray, batch: int = 32) -> None:
        self._batches: Iterator[dict[str, np.ndarray]] = iter(
            {name: x[i : i + batch]} for i in range(0, len(x), batch)
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def quantize_generator(
    generator: onnx.ModelProto, vendor: onnx.ModelProto, *, data: str, pre: Preprocess, seed: int
) -> tuple[onnx.ModelProto, dict[str, float]]:
    """QDQ int8 generator calibrated on training images; check = vendor accuracy on test images."""
    name = generator.graph.input[0].name
    calib = pre.apply(
        load_dataset(
            data, split="train", limit=CALIBRATION_IMAGES, seed=seed, progress=False
        ).images
    )
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "g.onnx", Path(tmp) / "g.int8.onnx"
        onnx.save(generator, str(src))
        quantize_static(
            str(src), str(dst), _Reader(name, calib), quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
        )  # fmt: skip
        quantized = load_model_checked(dst)
    test = load_dataset(data, split="test", limit=CHECK_IMAGES, seed=seed, progress=False)
    x = pre.apply(test.images)
    vendor_session = make_session(vendor.SerializeToString())
    accuracies = {}
    for label, model in (("float", generator), ("int8", quantized)):
        fused = run_logits(make_session(model.SerializeToString()), x, batch_size=256)
        logits = run_logits(vendor_session, fused, batch_size=256)
        accuracies[f"ca_nf_{label}"] = float(np.mean(logits.argmax(1) == test.labels))
    accuracies["images"] = float(len(x))
    return quantized, accuracies
