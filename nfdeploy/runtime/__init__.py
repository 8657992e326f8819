"""Torch-free inference helpers shared by ``validate`` and ``deploy_examples`` (onnxruntime + numpy)."""

from nfdeploy.onnx.atomic import save_model_atomic
from nfdeploy.onnx.load import load_model_checked
from nfdeploy.onnx.metadata import metadata_dict
from nfdeploy.onnx.session import make_session
from nfdeploy.runtime.session import run_logits

__all__ = ["load_model_checked", "make_session", "metadata_dict", "run_logits", "save_model_atomic"]
