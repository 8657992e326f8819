"""Energy model of NeuralFuse: ES = 1 - r - TWMA_G / TWMA_M (torch-free: numpy + onnx).

* :func:`layers_from_onnx` -- an ONNX graph's weight layers as SCALE-Sim topology rows.
* :func:`twma` -- total weight-SRAM accesses on a 32x32 output-stationary systolic array
  (closed form, or SCALE-Sim's own compute model with ``backend='scalesim'``).
* :func:`operating_point` -- voltage <-> BER <-> read-energy ratio r table.
* :func:`energy_report` -- the energy saving of a vendor model behind a generator.

See ``docs/energy.md``.
"""

from .layers import LayerShape, layers_from_onnx
from .report import EnergyReport, NetworkCount, count_network, energy_report
from .scalesim_backend import scalesim_available
from .twma import accesses_from_reads, filter_sram_reads, layer_filter_reads, twma
from .voltage import MEASURED_BERS, PAPER_POINT, OperatingPoint, operating_point, voltage_table

__all__ = [
    "MEASURED_BERS",
    "PAPER_POINT",
    "EnergyReport",
    "LayerShape",
    "NetworkCount",
    "OperatingPoint",
    "accesses_from_reads",
    "count_network",
    "energy_report",
    "filter_sram_reads",
    "layer_filter_reads",
    "layers_from_onnx",
    "operating_point",
    "scalesim_available",
    "twma",
    "voltage_table",
]
