"""Energy saving when some weight tensors stay at nominal voltage.

The energy model (:mod:`nfdeploy.energy`) normalises energies by M's weight-SRAM read energy
at nominal voltage: an access costs 1 at nominal and r when undervolted, so with every weight
undervolted ES = 1 - r. Keeping a set of tensors at nominal leaves only their complement U
undervolted:

    ES = (1 - r) * A_U / A_M

with A the weight-SRAM accesses (TWMA: SCALE-Sim filter reads on the 32x32 output-stationary
array, per layer) of the undervolted tensors and of all of M's weight layers. Layers that are
not fault targets (``--tensors``) count as nominal; biases have no accesses in the model.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import onnx

from nfdeploy.energy import count_network, operating_point
from nfdeploy.errors import NfdeployError
from nfdeploy.faults.onnx_model import FaultableModel
from nfdeploy.faults.onnx_weights import TensorSelection, find_fault_targets

FORMULA = "ES = (1 - r) * A_U / A_M (A = weight-SRAM accesses; U = undervolted tensors)"


@dataclass(frozen=True)
class AccessShares:
    """Weight reads (words, one image) of each fault target and of the whole model."""

    reads: dict[str, int]  # tensor name -> reads of the layer(s) it is the weight of
    total_reads: int
    twma_m: int
    r: float
    point: dict[str, Any]

    def share(self, names: Collection[str]) -> float:
        return sum(self.reads.get(n, 0) for n in names) / self.total_reads

    def energy_saving(self, undervolted: Collection[str]) -> float:
        return (1.0 - self.r) * self.share(undervolted)

    def to_dict(self) -> dict[str, Any]:
        return {
            "formula": FORMULA,
            "r": self.r,
            "operating_point": self.point,
            "twma_m": self.twma_m,
            "weight_reads_m": self.total_reads,
            "weight_reads": self.reads,
        }


def access_shares(vendor: FaultableModel) -> AccessShares:
    """Per-tensor weight reads at the paper's operating point (0.83 x Vmin, r = 0.694)."""
    named = onnx.ModelProto()
    named.CopyFrom(vendor.proto)
    for index, node in enumerate(named.graph.node):
        node.name = node.name or f"{node.op_type}_{index}"  # energy's own naming
    node_of = {
        t.name: t.node
        for t in find_fault_targets(named, TensorSelection(include_bias=True))
        if t.role == "weight"
    }
    count = count_network(named)
    layer_reads: dict[str, int] = {}
    for layer, reads in zip(count.layers, count.layer_reads, strict=True):
        layer_reads[layer.name] = layer_reads.get(layer.name, 0) + reads
    shares: dict[str, int] = {}
    for target in vendor.targets:
        if target.role != "weight":
            shares[target.name] = 0
            continue
        node = node_of.get(target.name)
        if node not in layer_reads:
            raise NfdeployError(
                f"{vendor.path}: the energy model has no layer for {target.name}; "
                "ES is not estimated."
            )
        shares[target.name] = layer_reads[node]
    point = operating_point()
    return AccessShares(
        shares,
        count.weight_reads,
        count.twma,
        point.r,
        {
            "voltage_ratio": point.voltage_ratio,
            "ber": point.ber,
            "r": point.r,
            "source": point.source,
        },
    )
