"""Moved to :mod:`nfdeploy.onnx` (load, metadata, atomic); kept while callers move over."""

from nfdeploy.onnx.atomic import save_model_atomic, write_bytes_atomic
from nfdeploy.onnx.load import load_model_checked
from nfdeploy.onnx.metadata import merge_metadata, metadata_dict

__all__ = [
    "load_model_checked",
    "merge_metadata",
    "metadata_dict",
    "save_model_atomic",
    "write_bytes_atomic",
]
