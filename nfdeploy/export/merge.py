"""Optional pipeline.onnx: generator -> vendor in one graph, names prefixed, versions reconciled."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import compose, version_converter

from nfdeploy.errors import NfdeployError
from nfdeploy.onnx.graph import opset_version
from nfdeploy.onnx.session import make_session
from nfdeploy.runtime.batching import graph_input, make_batch_dynamic

GENERATOR_PREFIX, VENDOR_PREFIX = "nf_generator/", "vendor/"


def _at_opset(model: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    if opset_version(model) == opset:
        return model
    try:
        return version_converter.convert_version(model, opset)
    except Exception as exc:
        raise NfdeployError(
            f"cannot convert a model from opset {opset_version(model)} to {opset}: {exc}"
        ) from None


def _rename(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        node.output[:] = [new if name == old else name for name in node.output]
    for value in list(graph.input) + list(graph.output):
        if value.name == old:
            value.name = new


def merge_pipeline(generator: onnx.ModelProto, vendor: onnx.ModelProto) -> onnx.ModelProto:
    """One graph with the vendor's own input and output names; parity-checked against the chain."""
    vendor = make_batch_dynamic(vendor).model
    opset = max(opset_version(generator), opset_version(vendor))
    gen, ven = _at_opset(generator, opset), _at_opset(vendor, opset)
    ir = max(gen.ir_version, ven.ir_version)
    gen.ir_version = ven.ir_version = ir
    in_name, out_name = graph_input(ven).name, ven.graph.output[0].name
    merged = compose.merge_models(
        gen, ven, io_map=[(gen.graph.output[0].name, in_name)],
        prefix1=GENERATOR_PREFIX, prefix2=VENDOR_PREFIX,
    )  # fmt: skip
    _rename(merged.graph, GENERATOR_PREFIX + graph_input(gen).name, in_name)
    _rename(merged.graph, VENDOR_PREFIX + out_name, out_name)
    del merged.metadata_props[:]
    merged.metadata_props.extend(generator.metadata_props)
    onnx.checker.check_model(merged)
    _check_chain_parity(merged, generator, vendor)
    return merged


def _check_chain_parity(
    merged: onnx.ModelProto, generator: onnx.ModelProto, vendor: onnx.ModelProto
) -> None:
    dims = [d.dim_value or 1 for d in graph_input(generator).type.tensor_type.shape.dim]
    x = np.random.default_rng(0).random((2, *dims[1:]), dtype=np.float32)
    gen_session = make_session(generator.SerializeToString(), threads=1)
    vendor_session = make_session(vendor.SerializeToString(), threads=1)
    merged_session = make_session(merged.SerializeToString(), threads=1)
    fused = gen_session.run(None, {gen_session.get_inputs()[0].name: x})[0]
    chain = vendor_session.run(None, {vendor_session.get_inputs()[0].name: fused})[0]
    merged_out = merged_session.run(None, {merged_session.get_inputs()[0].name: x})[0]
    if not np.allclose(merged_out, chain, rtol=1e-4, atol=1e-5):
        raise NfdeployError(
            "pipeline.onnx differs from the generator -> vendor chain; keeping the files separate."
        )
