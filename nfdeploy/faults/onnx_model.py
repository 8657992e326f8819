"""Load a vendor (or generator) ONNX file once for repeated injection: batch made dynamic, fault targets and stored codes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import onnx

from nfdeploy.faults.onnx_weights import (
    FaultTarget,
    TensorSelection,
    constants_to_initializers,
    find_fault_targets,
    resolve_storage,
    stored_weights,
    write_weights,
)
from nfdeploy.faults.spec import FaultSpec, Storage
from nfdeploy.faults.storage import StoredWeight, perturb
from nfdeploy.onnx.load import ModelFile, open_model
from nfdeploy.onnx.metadata import metadata_dict
from nfdeploy.runtime.batching import input_dims, make_batch_dynamic


@dataclass
class FaultableModel:
    """An ONNX model ready for repeated fault injection (the file itself is never written)."""

    path: Path
    sha256: str
    proto: onnx.ModelProto  # working copy; initializers are overwritten per trial
    batch_note: str
    dynamic_batch: bool
    targets: list[FaultTarget]
    stored: list[StoredWeight]
    storage: Storage
    metadata: dict[str, str]
    namespace: str = ""  # prefixes tensor names in the seed stream (keeps G and M independent)

    @property
    def input_dims(self) -> list[int | None]:
        return input_dims(self.proto)

    def clean_bytes(self) -> bytes:
        """The model with its stored (quantized, fault-free) weights."""
        write_weights(self.proto, self.targets, self.stored, [w.codes for w in self.stored])
        return self.proto.SerializeToString()

    def faulty_bytes(self, spec: FaultSpec, *, seed: int, threads: int = 1) -> tuple[bytes, int]:
        """Serialized model with the faults of ``seed`` baked in, and the number of bits changed.

        Re-serializing (rather than ``SessionOptions.add_initializer``) keeps the faults when
        onnxruntime fuses Conv+BatchNormalization, which silently drops overrides.
        """
        if spec.storage is not self.storage:
            raise ValueError(
                f"spec storage {spec.storage.value} != loaded storage {self.storage.value}"
            )
        faulty = perturb(self.stored, spec, seed=seed, threads=threads, namespace=self.namespace)
        write_weights(self.proto, self.targets, self.stored, [codes for codes, _ in faulty])
        return self.proto.SerializeToString(), sum(changed for _, changed in faulty)

    def stored_bytes(self) -> int:
        return sum(w.nbytes for w in self.stored)


def load_faultable(
    path: str | os.PathLike[str],
    *,
    storage: str = "auto",
    selection: TensorSelection | None = None,
    namespace: str = "",
    opened: ModelFile | None = None,
) -> FaultableModel:
    """``opened``: the file already read by :func:`open_model` (its proto is then modified)."""
    path = Path(path)
    opened = opened or open_model(path)
    model = opened.proto
    constants_to_initializers(model)
    batch = make_batch_dynamic(model)
    targets = find_fault_targets(batch.model, selection)
    resolved = resolve_storage(targets, storage, name=str(path))
    return FaultableModel(
        path=path,
        sha256=opened.sha256,
        proto=batch.model,
        batch_note=batch.note,
        dynamic_batch=batch.dynamic,
        targets=targets,
        stored=stored_weights(batch.model, targets, resolved),
        storage=resolved,
        metadata=metadata_dict(model),
        namespace=namespace,
    )
