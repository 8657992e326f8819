"""The ``nfdeploy.*`` keys stamped into the ``metadata_props`` of saved models (one place)."""

from __future__ import annotations

import onnx

PREPROCESS = "nfdeploy.preprocess"  # JSON of Preprocess.to_dict()
VERSION = "nfdeploy.version"
VENDOR_SHA256 = "nfdeploy.vendor_sha256"
GRADIENT_MODEL_SHA256 = "nfdeploy.gradient_model_sha256"
GENERATOR_ARCH = "nfdeploy.generator_arch"
TRAIN_BER = "nfdeploy.train_ber"
FAULT_MODEL = "nfdeploy.fault_model"
STORAGE = "nfdeploy.storage"
SEED = "nfdeploy.seed"
EPOCH = "nfdeploy.epoch"


def metadata_dict(model: onnx.ModelProto) -> dict[str, str]:
    return {prop.key: prop.value for prop in model.metadata_props}


def merge_metadata(model: onnx.ModelProto, props: dict[str, str]) -> None:
    """Merge provenance into ``metadata_props`` (existing keys are updated, others kept)."""
    merged = metadata_dict(model)
    merged.update({key: str(value) for key, value in props.items()})
    del model.metadata_props[:]
    for key in sorted(merged):
        model.metadata_props.add(key=key, value=merged[key])
