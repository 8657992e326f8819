"""Torch-free inference helpers shared by ``validate`` and ``deploy_examples`` (onnxruntime + numpy)."""

from nfdeploy.runtime.onnx_io import load_model_checked, metadata_dict, save_model_atomic
from nfdeploy.runtime.session import make_session, run_logits

__all__ = ["load_model_checked", "make_session", "metadata_dict", "run_logits", "save_model_atomic"]
