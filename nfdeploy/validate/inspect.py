"""Text listing of a model's fault targets (used by `nfdeploy inspect`)."""

from __future__ import annotations

from nfdeploy.faults.onnx_model import load_faultable
from nfdeploy.faults.onnx_weights import TensorSelection
from nfdeploy.onnx.graph import opset_version


def inspect_model(
    *,
    model_path: str,
    storage: str = "auto",
    include_bias: bool = False,
    pattern: str | None = None,
) -> str:
    model = load_faultable(
        model_path, storage=storage, selection=TensorSelection(include_bias, pattern)
    )
    lines = [
        f"{model.path}  sha256 {model.sha256[:16]}  opset "
        f"{opset_version(model.proto)}"
        f"  IR {model.proto.ir_version}",
        f"input {model.input_dims}; {model.batch_note}",
        f"{'#':>3} {'tensor':<40} {'op':<14} {'role':<6} {'shape':<18} {'stored as':<12} {'bytes':>10}",
    ]
    for index, (target, stored) in enumerate(zip(model.targets, model.stored, strict=True)):
        kind = "qdq-" + stored.codes.dtype.name if target.qdq else stored.storage.value
        lines.append(
            f"{index:>3} {target.name[:40]:<40} {target.op_type:<14} {target.role:<6} "
            f"{'x'.join(map(str, target.shape)):<18} {kind:<12} {stored.nbytes:>10,}"
        )
    lines.append(
        f"{len(model.targets)} tensors, {model.stored_bytes():,} stored bytes ({model.storage.value})"
    )
    return "\n".join(lines)
