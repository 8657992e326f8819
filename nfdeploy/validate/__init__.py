"""Device-like validation in onnxruntime (torch-free)."""
