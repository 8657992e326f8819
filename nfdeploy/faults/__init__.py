"""THE fault model, shared by training and validation: spec, kernel, storage, ONNX targets."""

from nfdeploy.faults.spec import EVAL_SEED_START, TRAIN_SEED_RANGE, FaultModel, FaultSpec, Storage
from nfdeploy.faults.storage import StoredWeight, perturb

__all__ = [
    "EVAL_SEED_START",
    "TRAIN_SEED_RANGE",
    "FaultModel",
    "FaultSpec",
    "Storage",
    "StoredWeight",
    "perturb",
]
