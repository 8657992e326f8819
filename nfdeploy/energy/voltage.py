"""Supply voltage <-> SRAM bit error rate <-> read-energy ratio r.

What is known (NeuralFuse, NeurIPS 2024, and the sources it cites; see
``shared/reference/neuralfuse-facts.md``):

* 14 nm SRAM (512 x 64 arrays) at **0.83 x Vmin** has a bit error rate of **about 1 %**, and
  the read energy per access drops to **r = 0.694** of nominal.
* At Vmin (ratio 1.0) the SRAM is error-free and r = 1 by definition (nominal).
* The reference implementation lists measured BER points from undervolted SRAM
  (1.21e-2, 3.98e-3, 1.21e-3, 1.55e-4, 1.26e-4, 4.07e-5, 1.31e-5) **without** the voltages
  they were measured at, so their r is unknown; they are accepted only together with an
  explicit ``r``.

Between the two anchored voltages we interpolate r with the power law through both anchors,
``r = v ** 1.960`` (``1.960 = ln 0.694 / ln 0.83``). Dynamic read energy scales as C V^2, and
the anchors themselves sit on that law (0.83^2 = 0.689 vs 0.694), so this is defensible for
0.83 <= v <= 1. Below 0.83 x Vmin (more than ~1 % BER) nothing is anchored: pass ``r``. The
BER at an interpolated voltage is unknown (reported as ``None``): nothing measured maps the
voltages between 0.83 and 1.0 to a BER for the energy table (``ber`` stays ``None`` there).

**Voltage -> BER curve** (:func:`ber_at_voltage`, used by ``chipmap --voltage`` and
``validate --voltage``): ``log10 BER`` linear in V / Vmin between the paper's sourced point
(0.83, 1e-2) and an **assumed** onset point (0.95, 1.31e-5). The log-linear shape follows
the exponential rise of the fault rate below Vmin measured on undervolted FPGA BRAMs (Salami
et al., FPL 2018); the onset voltage is an assumption, chosen so that the reference's
measured but unlabelled BERs (1.31e-5 .. ~1e-2) span 0.83 .. 0.95 x Vmin. At Vmin the BER is 0;
between 0.95 and 1.0 and below 0.83 the curve gives no BER (refused with one line).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from nfdeploy.errors import NfdeployError

__all__ = [
    "BER_CURVE",
    "MEASURED_BERS",
    "PAPER_POINT",
    "CurvePoint",
    "OperatingPoint",
    "VoltageBer",
    "ber_at_voltage",
    "describe_rates",
    "operating_point",
    "rates_for_voltages",
    "voltage_table",
]

_SOURCE_PAPER = (
    "NeuralFuse (NeurIPS 2024) energy model: 14 nm SRAM at 0.83 x Vmin has ~1% BER and read "
    "energy r = 0.694 of nominal"
)
_SOURCE_NOMINAL = "nominal supply (Vmin): no bit errors, r = 1 by definition"
_SOURCE_INTERP = (
    "r interpolated with the power law through (1.0, 1.0) and (0.83, 0.694): "
    "r = v^{exp:.3f} (C V^2 scaling); BER at this voltage is not measured (the assumed "
    "voltage -> BER curve, ber_at_voltage, gives {ber})"
)
_SOURCE_USER = "r given by the user"

#: Measured BER points listed in the reference implementation (voltages not labelled).
MEASURED_BERS: tuple[float, ...] = (1.21e-2, 3.98e-3, 1.21e-3, 1.55e-4, 1.26e-4, 4.07e-5, 1.31e-5)

_V_LOW, _R_LOW, _BER_LOW = 0.83, 0.694, 0.01
_EXPONENT = math.log(_R_LOW) / math.log(_V_LOW)


@dataclass(frozen=True)
class OperatingPoint:
    """A weight-SRAM operating point. ``voltage_ratio`` is V / Vmin; ``ber`` and
    ``voltage_ratio`` are ``None`` where unknown; ``r`` is read energy relative to nominal."""

    voltage_ratio: float | None
    ber: float | None
    r: float
    source: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PAPER_POINT = OperatingPoint(_V_LOW, _BER_LOW, _R_LOW, _SOURCE_PAPER)
_NOMINAL = OperatingPoint(1.0, 0.0, 1.0, _SOURCE_NOMINAL)


def voltage_table() -> list[OperatingPoint]:
    """The anchored points (nominal and the paper's 1% BER point)."""
    return [_NOMINAL, PAPER_POINT]


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)


def _known() -> str:
    return (
        f"known: 0 and {_BER_LOW:g} (= 0.83 x Vmin, r = {_R_LOW}); the measured points "
        f"{', '.join(f'{b:g}' for b in MEASURED_BERS)} have no voltage label"
    )


def _check_ber(ber: float) -> float:
    ber = float(ber)
    if not (0.0 <= ber < 1.0) or math.isnan(ber):
        raise NfdeployError(f"BER {ber:g}: must be in [0, 1)")
    return ber


def _check_voltage(voltage: float) -> float:
    voltage = float(voltage)
    if not voltage > 0 or math.isnan(voltage):
        raise NfdeployError(f"voltage {voltage:g}: must be a positive ratio to Vmin (e.g. 0.83)")
    return voltage


def _from_ber(ber: float) -> OperatingPoint:
    if _close(ber, 0.0):
        return _NOMINAL
    if _close(ber, _BER_LOW):
        return PAPER_POINT
    if any(_close(ber, b) for b in MEASURED_BERS):
        raise NfdeployError(
            f"BER {ber:g} is a measured point in the reference list, but its supply voltage is "
            "not labelled, so its read-energy ratio is unknown; pass --r"
        )
    raise NfdeployError(f"BER {ber:g} is outside the voltage table ({_known()}); pass --r")


def _from_voltage(voltage: float) -> OperatingPoint:
    if _close(voltage, 1.0):
        return _NOMINAL
    if _close(voltage, _V_LOW):
        return PAPER_POINT
    if _V_LOW < voltage < 1.0:
        r = voltage**_EXPONENT
        assumed = _curve_ber_text(voltage)
        return OperatingPoint(voltage, None, r, _SOURCE_INTERP.format(exp=_EXPONENT, ber=assumed))
    if voltage > 1.0:
        raise NfdeployError(
            f"voltage {voltage:g} x Vmin: above nominal saves nothing; the table covers "
            "0.83..1.0 x Vmin"
        )
    raise NfdeployError(
        f"voltage {voltage:g} x Vmin is below 0.83 x Vmin (BER > ~1%), outside the voltage "
        "table; pass --r"
    )


def operating_point(
    ber: float | None = None, voltage: float | None = None, r: float | None = None
) -> OperatingPoint:
    """Resolve an operating point from a BER, a voltage ratio (V / Vmin), or both.

    With neither, the paper's point (0.83 x Vmin, 1% BER, r = 0.694). ``r`` (optional)
    overrides the table; it is required where the table cannot give r (a BER other than 0 or
    1%, or a voltage below 0.83 x Vmin). Raises NfdeployError with a one-line reason.
    """
    if ber is not None:
        ber = _check_ber(ber)
    if voltage is not None:
        voltage = _check_voltage(voltage)
    if r is not None:
        r = float(r)
        if not (0.0 < r <= 1.5) or math.isnan(r):
            raise NfdeployError(f"r = {r:g}: read-energy ratio must be in (0, 1.5]")
        return OperatingPoint(voltage, ber, r, _SOURCE_USER)
    if ber is None and voltage is None:
        return PAPER_POINT
    if voltage is None:
        assert ber is not None
        return _from_ber(ber)
    point = _from_voltage(voltage)
    if ber is not None and (point.ber is None or not _close(point.ber, ber)):
        raise NfdeployError(
            f"BER {ber:g} and voltage {voltage:g} x Vmin do not match the table "
            f"({_known()}); give one of them, or pass --r"
        )
    return point


# ----------------------------------------------------------------------------- BER curve


@dataclass(frozen=True)
class CurvePoint:
    """One anchor of the voltage -> BER curve; ``assumed`` marks a point nobody measured."""

    voltage_ratio: float
    ber: float
    source: str
    assumed: bool


@dataclass(frozen=True)
class VoltageBer:
    """The stuck-at BER (faulty-cell fraction) the curve gives at ``voltage_ratio`` x Vmin."""

    voltage_ratio: float
    ber: float
    source: str
    assumed: bool

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "curve": curve_description()}


_ONSET = CurvePoint(
    0.95,
    1.31e-5,
    "ASSUMPTION: onset of the curve at 0.95 x Vmin with the smallest BER the reference lists "
    "(1.31e-5, voltage unlabelled)",
    True,
)
#: Anchors, highest voltage first: nominal (sourced), the assumed onset, the paper's point.
BER_CURVE: tuple[CurvePoint, ...] = (
    CurvePoint(1.0, 0.0, _SOURCE_NOMINAL, False),
    _ONSET,
    CurvePoint(_V_LOW, _BER_LOW, _SOURCE_PAPER, False),
)
_SOURCE_CURVE = (
    "log10 BER interpolated linearly in V between 0.83 x Vmin (1e-2, NeuralFuse) and the "
    "assumed onset 0.95 x Vmin (1.31e-5); exponential rise below Vmin as measured on FPGA "
    "BRAMs (Salami et al., FPL 2018); values between the anchors are an ASSUMPTION"
)


def curve_description() -> str:
    return _SOURCE_CURVE


def ber_at_voltage(voltage: float) -> VoltageBer:
    """Stuck-at BER at ``voltage`` (V / Vmin) from :data:`BER_CURVE`; one-line error outside."""
    voltage = _check_voltage(voltage)
    for point in BER_CURVE:
        if _close(voltage, point.voltage_ratio):
            return VoltageBer(point.voltage_ratio, point.ber, point.source, point.assumed)
    low, high = _V_LOW, _ONSET.voltage_ratio
    if low < voltage < high:
        t = (voltage - low) / (high - low)
        log_ber = math.log10(_BER_LOW) + t * (math.log10(_ONSET.ber) - math.log10(_BER_LOW))
        return VoltageBer(voltage, 10.0**log_ber, _SOURCE_CURVE, True)
    if voltage > 1.0:
        reason = "above Vmin (error-free, nothing to inject)"
    elif voltage > high:
        reason = f"between {high:g} and 1.0 x Vmin, where the BER is below {_ONSET.ber:g} and not modelled"
    else:
        reason = f"below {low:g} x Vmin (BER > 1%), where nothing is sourced"
    raise NfdeployError(
        f"--voltage {voltage:g}: {reason}; the voltage -> BER curve covers {low:g}..{high:g} "
        "and 1.0 x Vmin; give --ber instead."
    )


def _curve_ber_text(voltage: float) -> str:
    try:
        return f"{ber_at_voltage(voltage).ber:.2g}"
    except NfdeployError:
        return "no BER"


#: Fault models whose rate p is a faulty-cell fraction, the BER the curve gives (NeuralFuse's
#: "1% BER" convention), and why the others do not take --voltage.
CELL_RATE_FAULT_MODELS = ("stuck-at", "ref-tiled")
_NO_VOLTAGE = {
    "flip": "its p is a per-bit flip rate, the curve gives a faulty-cell rate (the paper's "
    "stuck-at '1% BER'); use --fault-model stuck-at, or give --ber",
    "chip-map": "a chip map has its own faults; make it at a voltage with "
    "`nfdeploy chipmap --voltage V` and give --ber 0",
}


def rates_for_voltages(
    *, voltages: Sequence[float], fault_model: str
) -> tuple[tuple[float, ...], dict[str, Any]]:
    """The BER of each voltage (V / Vmin) and a record of the mapping for the report."""
    if fault_model not in CELL_RATE_FAULT_MODELS:
        reason = _NO_VOLTAGE.get(fault_model, "use --fault-model stuck-at, or give --ber")
        raise NfdeployError(f"--voltage with --fault-model {fault_model}: {reason}.")
    points = [ber_at_voltage(v) for v in voltages]
    record = {
        "voltages": [p.voltage_ratio for p in points],
        "bers": [p.ber for p in points],
        "assumed": [p.assumed for p in points],
        "sources": [p.source for p in points],
        "curve": curve_description(),
        "ber_definition": "faulty-cell fraction (stuck-at); see docs/fault-model.md",
    }
    return tuple(p.ber for p in points), record


def describe_rates(record: dict[str, Any]) -> str:
    """One line for a :func:`rates_for_voltages` record: which voltage gave which BER."""
    pairs = zip(record["voltages"], record["bers"], strict=True)
    mapping = ", ".join(f"{v:g} x Vmin -> BER {b:.3g}" for v, b in pairs)
    return f"{mapping} ({record['curve']})"
