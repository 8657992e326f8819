"""Everything nfdeploy does with ONNX files, in one place (numpy + onnx + onnxruntime only).

- :mod:`.load`: safe loading (external data stays inside the model's folder), hashing.
- :mod:`.graph`: the opset reader and the graph index (initializers, producers, consumers).
- :mod:`.weight_ops`: which operators hold weights, and in which inputs.
- :mod:`.session`: the onnxruntime session factory and execution providers.
- :mod:`.metadata`: the ``nfdeploy.*`` keys stamped into saved models.
- :mod:`.atomic`: atomic writes (temp name, then rename).
"""
