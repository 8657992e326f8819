"""Generator -> ONNX (parity check, provenance metadata), optional merged pipeline and int8."""
