"""Which preprocessing a model expects: an explicit spec, else the one stored with the models."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence

from nfdeploy.data import Preprocess
from nfdeploy.errors import NfdeployError
from nfdeploy.onnx.metadata import PREPROCESS as PREPROCESS_KEY


def preprocess_for_model(
    *,
    text: str | None,
    metadata: Sequence[Mapping[str, str]],
    dims: Sequence[int | None],
    name: str,
) -> Preprocess:
    """``text`` wins; then the first ``metadata`` holding a stored spec; then 'unit'.

    Channels and size always come from the model's fixed NCHW input ``dims``.
    """
    stored = next((m[PREPROCESS_KEY] for m in metadata if PREPROCESS_KEY in m), None)
    if text is not None:
        pre = Preprocess.parse(text)
    elif stored is not None:
        try:
            pre = Preprocess.from_dict(json.loads(stored))
        except json.JSONDecodeError:
            raise NfdeployError(
                f"{name}: metadata {PREPROCESS_KEY!r} is not JSON; pass --preprocess."
            ) from None
    else:
        pre = Preprocess.parse("unit")
    if len(dims) != 4 or not all(dims[1:]):
        raise NfdeployError(
            f"{name}: expected a fixed-size NCHW image input, got dims {list(dims)}."
        )
    return dataclasses.replace(
        pre, channels=int(dims[1] or 0), height=int(dims[2] or 0), width=int(dims[3] or 0)
    )
