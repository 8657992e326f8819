"""How each FaultModel changes stored codes: one injector factory per model, in one table.

``injector(spec=..., seed=..., threads=...)`` prepares what a trial needs once (a loaded chip
map, the ref-tiled map of the seed) and returns ``inject(codes, name, address) -> bits
changed``, applied in place to each tensor's codes. ``name`` picks the kernel stream
(FNV-1a-64 of the namespaced tensor name), ``address`` is the tensor's first byte when the
tensors are laid out back to back (chip maps). A FaultModel without an entry is an error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

import numpy as np

import nfdeploy.faults.kernel as kernel
import nfdeploy.faults.nested as nested
from nfdeploy.faults.chipmap import ChipMap
from nfdeploy.faults.ref_tiled import RefTiledMap
from nfdeploy.faults.spec import FaultModel, FaultSpec

Inject = Callable[[np.ndarray, str, int], int]  # (codes, stream name, address) -> bits changed
MakeInjector = Callable[[FaultSpec, int, int], Inject]  # (spec, trial seed, threads)
KernelFn = Callable[..., int]


def _iid(kernel_fn: KernelFn, nested_model: nested.Nested) -> MakeInjector:
    """flip / stuck-at: the kernel's i.i.d. cells, or their nested variant (--nested)."""

    def make(spec: FaultSpec, seed: int, threads: int) -> Inject:
        def inject(codes: np.ndarray, name: str, address: int) -> int:
            if spec.ber == 0.0 or codes.size == 0:
                return 0
            args = {"seed": seed, "stream": kernel.stream_key(name), "bit_mask": spec.bit_mask}
            if spec.nested:
                return nested.inject(codes, spec.ber, model=nested_model, threads=threads, **args)
            return kernel_fn(codes, spec.ber, threads=threads, **args)

        return inject

    return make


def _chip_map(spec: FaultSpec, seed: int, threads: int) -> Inject:
    if spec.chip_map is None:
        raise ValueError("chip-map injection needs spec.chip_map")  # FaultSpec refuses this
    chip = ChipMap.load(spec.chip_map)

    def inject(codes: np.ndarray, name: str, address: int) -> int:
        return chip.apply(kernel.byte_view(codes), address=address, bit_mask=spec.bit_mask)

    return inject


def _ref_tiled(spec: FaultSpec, seed: int, threads: int) -> Inject:
    fault_map = RefTiledMap.draw(seed=seed, p=spec.ber, bit_mask=spec.bit_mask)

    def inject(codes: np.ndarray, name: str, address: int) -> int:
        kernel.byte_view(codes)  # refuses non-contiguous or read-only codes, as the kernel does
        return fault_map.apply(codes)

    return inject


INJECTORS: Mapping[FaultModel, MakeInjector] = MappingProxyType(
    {
        FaultModel.FLIP: _iid(kernel.flip_bits, nested.Nested.FLIP),
        FaultModel.STUCK_AT: _iid(kernel.stuck_at, nested.Nested.STUCK_AT),
        FaultModel.CHIP_MAP: _chip_map,
        FaultModel.REF_TILED: _ref_tiled,
    }
)


def injector(*, spec: FaultSpec, seed: int, threads: int = 1) -> Inject:
    """The injector of ``spec.model`` for one trial seed."""
    make = INJECTORS.get(spec.model)
    if make is None:
        raise LookupError(
            f"fault model {spec.model.value!r} has no injector; add one to INJECTORS in "
            "nfdeploy/faults/injectors.py"
        )
    return make(spec, seed, threads)
