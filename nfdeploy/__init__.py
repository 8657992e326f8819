"""nfdeploy: train, export and validate NeuralFuse generators for vendor ONNX models."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("nfdeploy")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
