"""ONNX vendor model -> frozen, differentiable torch module, parity-checked against onnxruntime.

vendor = load_vendor("resnet18.onnx")        # VendorModule, every buffer frozen
logits = vendor(x)                            # gradients reach x only
with vendor.weight_overrides({"fc.weight": w_faulty}):
    logits_faulty = vendor(x)
"""

from nfdeploy.torchify.loading import load_vendor
from nfdeploy.torchify.module import VendorModule
from nfdeploy.torchify.parity import ParityReport, check_parity
from nfdeploy.torchify.plan import QuantizedWeight
from nfdeploy.torchify.registry import supported_ops

__all__ = [
    "ParityReport",
    "QuantizedWeight",
    "VendorModule",
    "check_parity",
    "load_vendor",
    "supported_ops",
]
