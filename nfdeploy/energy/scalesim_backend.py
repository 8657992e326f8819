"""Optional SCALE-Sim backend: count filter-SRAM reads with SCALE-Sim's own compute model.

``pip install scalesim`` (the ``energy`` extra). SCALE-Sim is imported lazily, only here.
For each layer we build SCALE-Sim's topology entry, its operand matrices
(``operand_matrix``) and its output-stationary compute model (``systolic_compute_os``), and
read back the filter demand it generates -- the number SCALE-Sim reports as "SRAM filter
reads" in its detailed access report. SCALE-Sim's cycle-level memory simulation is not run:
it does not change that count, and in scalesim 3.0.0 it fails under numpy 2.x.

SCALE-Sim builds dense demand matrices and concatenates them fold by fold, so very large
layers (e.g. 224x224 feature maps) are refused here; the analytic backend gives the same
count in microseconds.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from nfdeploy.errors import NfdeployError

from .layers import LayerShape

__all__ = ["MAX_DEMAND_ELEMENTS", "scalesim_available", "scalesim_filter_reads"]

#: Refuse layers whose SCALE-Sim filter demand matrix would exceed this many entries.
MAX_DEMAND_ELEMENTS = 40_000_000

_MODULES: SimpleNamespace | None = None


def _import_scalesim() -> SimpleNamespace:
    global _MODULES
    if _MODULES is None:
        try:
            from scalesim.compute.operand_matrix import operand_matrix
            from scalesim.compute.systolic_compute_os import systolic_compute_os
            from scalesim.layout_utils import layouts
            from scalesim.scale_config import scale_config
            from scalesim.topology_utils import topologies
        except ImportError as exc:
            raise NfdeployError(
                "the scalesim backend needs SCALE-Sim: pip install 'nfdeploy[energy]' "
                f"(or pip install scalesim); import failed: {exc}"
            ) from None
        _MODULES = SimpleNamespace(
            operand_matrix=operand_matrix,
            systolic_compute_os=systolic_compute_os,
            layouts=layouts,
            scale_config=scale_config,
            topologies=topologies,
        )
    return _MODULES


def scalesim_available() -> bool:
    """True when SCALE-Sim can be imported."""
    try:
        _import_scalesim()
    except NfdeployError:
        return False
    return True


def _config(mods: SimpleNamespace, rows: int, cols: int, weight_sram_kb: float) -> Any:
    cfg = mods.scale_config()
    # run name, array rows/cols, ifmap/filter/ofmap SRAM KB, offsets, dataflow, bandwidth mode
    cfg.update_from_list(
        ["nfdeploy", rows, cols, 256, max(1, round(weight_sram_kb)), 128,
         0, 10_000_000, 20_000_000, "os", "CALC", [10]]
    )  # fmt: skip
    return cfg


def scalesim_filter_reads(
    layer: LayerShape,
    *,
    array: Sequence[int] = (32, 32),
    weight_sram_kb: float = 256,
) -> int:
    """SCALE-Sim's filter-SRAM read count (words) for one layer, output-stationary, batch 1."""
    mods = _import_scalesim()
    rows, cols = (int(v) for v in array)
    folds = math.ceil(layer.ofmap_pixels / rows) * math.ceil(layer.num_filters / cols)
    demand = folds * (layer.window + rows + cols - 2) * cols
    if demand > MAX_DEMAND_ELEMENTS or layer.ofmap_pixels * layer.window > MAX_DEMAND_ELEMENTS:
        raise NfdeployError(
            f"layer '{layer.name}' is too large for the scalesim backend ({demand:,} demand "
            "entries); use --backend analytic (the same count in closed form)"
        )
    cfg = _config(mods, rows, cols, weight_sram_kb)
    topo = mods.topologies()
    row = layer.topology_row()
    topo.load_layer_params_from_list(row[0], [*row, 1, 1])  # + N:M sparsity 1:1 (dense)
    topo.topo_calc_hyperparams()
    with contextlib.redirect_stdout(io.StringIO()):
        opmat = mods.operand_matrix()
        opmat.set_params(config_obj=cfg, topoutil_obj=topo, layoututil_obj=mods.layouts())
        if opmat.create_operand_matrices() != 0:  # pragma: no cover - defensive
            raise NfdeployError(f"SCALE-Sim could not build operands for layer '{layer.name}'")
        compute = mods.systolic_compute_os()
        compute.set_params(
            config_obj=cfg,
            ifmap_op_mat=opmat.ifmap_addr_matrix,
            filter_op_mat=opmat.filter_addr_matrix,
            ofmap_op_mat=opmat.ofmap_addr_matrix,
        )
        compute.create_filter_demand_mat()
    return int(compute.filter_reads)
