"""`validate()`: the keyword-only library function behind `nfdeploy validate`, and the
conversion of the command's options into its :class:`ValidateConfig`."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nfdeploy.errors import NfdeployError
from nfdeploy.faults.onnx_weights import TensorSelection
from nfdeploy.faults.spec import FaultModel, parse_bit_positions
from nfdeploy.validate.config import ValidateConfig
from nfdeploy.validate.pool import Backend
from nfdeploy.validate.report import ValidationReport
from nfdeploy.validate.runner import run_validations

PLACEHOLDER = "{generator}"


@dataclass(frozen=True)
class Outputs:
    """Where a validation run writes, and when it fails (--fail-under)."""

    report: str | None = None
    plots: str | None = None
    fail_under: float | None = None


def config_from_cli(options: dict[str, Any]) -> tuple[ValidateConfig, Outputs]:
    """`nfdeploy validate`'s parsed options -> (config, outputs); options named as the
    config's fields pass straight through, the rest are converted here."""
    o = dict(options)
    outputs = Outputs(o.pop("report"), o.pop("plots"), o.pop("fail_under"))
    voltages = tuple(o.pop("voltages"))
    chip_map = o.pop("chip_map")
    given = tuple(o.pop("bers"))
    if o["fault_model"] == FaultModel.CHIP_MAP.value and not given and not voltages:
        given = (_chip_map_rate(chip_map),)  # a chip map brings its own rate
    bers, _ = _rates(given, voltages, o["fault_model"])
    config = ValidateConfig(
        bers=bers,
        voltages=voltages,
        generators=_as_tuple(o.pop("generator")),
        fault_model=FaultModel(o.pop("fault_model")),
        bit_positions=parse_bit_positions(o.pop("bits")),
        chip_map=Path(chip_map) if chip_map else None,
        selection=TensorSelection(include_bias=o.pop("include_bias"), pattern=o.pop("tensors")),
        backend=_backend(o.pop("backend"), o.get("ray_address")),
        progress=not o.pop("quiet"),
        **o,
    )
    return config, outputs


def validate(*, config: ValidateConfig, outputs: Outputs | None = None) -> bool:
    """Run validation, print the table to stderr, write JSON/plots; False if --fail-under fails.

    Several generators share each trial's faulty vendor pass; then ``outputs.report`` and
    ``outputs.plots`` must contain ``{generator}``, replaced by each generator's name (see
    :func:`generator_name`).
    """
    outputs = outputs or Outputs()
    threshold = _threshold(outputs.fail_under)
    paths = _output_paths(config.generators, outputs.report, outputs.plots)
    for report_path, plots_path in paths:
        check_destination("--report", report_path, folder=False)
        check_destination("--plots", plots_path, folder=True)
    voltage_record = (
        _rates((), config.voltages, config.fault_model.value)[1] if config.voltages else None
    )
    results = run_validations(config)
    ok = True
    for result, gen, (report_path, plots_path) in zip(
        results, config.generators or (None,), paths, strict=True
    ):
        if gen is not None and len(config.generators) > 1:
            print(f"\n== generator {gen}", file=sys.stderr)
        result.extra["energy"] = _energy(str(config.model), gen, config.voltages)
        _record_operating_point(result, voltage_record, config.chip_map)
        print(result.table(), file=sys.stderr)
        print(result.extra["energy"]["text"], file=sys.stderr)
        if report_path:
            print(f"report: {result.write_json(report_path)}", file=sys.stderr)
        if plots_path:
            _write_plots(result, Path(plots_path))
        ok = _passes(result, threshold) and ok
    return ok


def _backend(name: str, ray_address: str | None) -> Backend:
    backend = Backend(name)
    if ray_address and backend is not Backend.RAY:
        raise NfdeployError(f"--ray-address {ray_address}: only used with --backend ray.")
    if backend is Backend.RAY:
        from nfdeploy.validate.ray_backend import check_reachable, import_ray

        import_ray()
        check_reachable(ray_address)
    return backend


def _as_tuple(generator: str | Sequence[str] | None) -> tuple[str, ...]:
    if generator is None:
        return ()
    return (generator,) if isinstance(generator, str) else tuple(generator)


def generator_name(path: str) -> str:
    """'runs/UNetS-a/generator.onnx' -> 'UNetS-a'; 'g1.onnx' -> 'g1'."""
    p = Path(path)
    return p.parent.name if p.stem == "generator" and p.parent.name else p.stem


def _output_paths(
    generators: tuple[str, ...], report: str | None, plots: str | None
) -> list[tuple[str | None, str | None]]:
    """Per generator (report, plots); {generator} is filled in for one generator too."""
    names = [generator_name(g) for g in generators] or ["vendor"]
    if len(set(names)) != len(names):
        raise NfdeployError(
            f"--generator: names {names} are not distinct; put each generator.onnx in its own "
            "run folder or give them different file names."
        )
    for flag, value in (("--report", report), ("--plots", plots)):
        if len(names) > 1 and value and PLACEHOLDER not in value:
            raise NfdeployError(
                f"{flag} {value}: with several --generator, include {PLACEHOLDER} in the path, "
                f"e.g. {flag} 'out/{PLACEHOLDER}.json'."
            )
    return [
        (
            report.replace(PLACEHOLDER, name) if report else None,
            plots.replace(PLACEHOLDER, name) if plots else None,
        )
        for name in names
    ]


def check_destination(flag: str, path: str | None, *, folder: bool) -> None:
    """Refuse before any work an output path that cannot be written (named as the user gave it)."""
    if path is None:
        return
    target = Path(path)
    if target.is_dir() and not folder:
        raise NfdeployError(
            f"{flag} {path}: is a folder; give a file name, e.g. {path}/report.json."
        )
    if target.exists() and not target.is_dir() and folder:
        raise NfdeployError(f"{flag} {path}: is a file; give a folder for the PNG files.")
    existing = target if folder and target.is_dir() else target.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise NfdeployError(
            f"{flag} {path}: cannot write there ({existing} is not a writable folder)."
        )


def _energy(
    model: str, generator: str | None, voltages: tuple[float, ...] = ()
) -> dict[str, object]:
    """The energy section of every report: at the one --voltage given, else at the paper's
    operating point (0.83 Vmin, r 0.694)."""
    from nfdeploy.energy import energy_report

    try:
        voltage = voltages[0] if len(voltages) == 1 else None
        report = energy_report(vendor=model, generator=generator, voltage=voltage)
    except NfdeployError as exc:
        return {"error": str(exc), "text": f"energy: not estimated ({exc})"}
    return {**report.to_dict(), "text": report.to_text()}


def _chip_map_rate(chip_map: str | None) -> float:
    """The rate a chip map was made at (its file says), for the report's BER column."""
    if chip_map is None:
        return 0.0  # FaultSpec says that chip-map needs --chip-map
    from nfdeploy.faults.chipmap import ChipMap

    return float(ChipMap.load(chip_map).info.get("ber", 0.0))


def _rates(
    bers: tuple[float, ...], voltages: tuple[float, ...], fault_model: str
) -> tuple[tuple[float, ...], dict[str, Any] | None]:
    """--ber as given, or the BERs the voltage -> BER curve gives for --voltage (one of them)."""
    if bers and voltages:
        raise NfdeployError("--ber and --voltage: give one, not both (the voltage sets the BER).")
    if not bers and not voltages:
        raise NfdeployError(
            "--ber or --voltage: give at least one, e.g. --ber 0.01 or --voltage 0.83."
        )
    if not voltages:
        return bers, None
    from nfdeploy.energy.voltage import rates_for_voltages

    return rates_for_voltages(voltages=voltages, fault_model=fault_model)


def _record_operating_point(
    result: ValidationReport, voltage_record: dict[str, Any] | None, chip_map: Path | None
) -> None:
    """The report says which voltage gave each BER, and how a chip map was made."""
    if voltage_record is not None:
        from nfdeploy.energy.voltage import describe_rates

        result.extra["voltage"] = voltage_record
        print(f"voltage: {describe_rates(voltage_record)}", file=sys.stderr)
    if chip_map:
        from nfdeploy.faults.chipmap import ChipMap

        result.header["fault"]["chip_map_info"] = ChipMap.load(chip_map).info


def _threshold(fail_under: float | None) -> float | None:
    if fail_under is None:
        return None
    value = fail_under / 100.0 if fail_under > 1.0 else fail_under
    if not 0.0 <= value <= 1.0:
        raise NfdeployError(f"--fail-under {fail_under}: give an accuracy in 0-1 or 0-100 (%).")
    return value


def _passes(result: ValidationReport, threshold: float | None) -> bool:
    if threshold is None:
        return True
    ok = True
    for row in result.results:
        summary = row.pa_nf or row.pa
        label = "PA(NF)" if row.pa_nf else "PA"
        if summary.mean < threshold:
            print(
                f"FAIL: {label} {summary.mean:.3f} < {threshold:.3f} at BER {row.ber:g}",
                file=sys.stderr,
            )
            ok = False
    return ok


def _write_plots(result: ValidationReport, folder: Path) -> None:
    try:
        from nfdeploy.validate.plots import write_validation_plots
    except ImportError:
        print(
            "plots skipped: matplotlib is not installed; pip install 'nfdeploy[plots]'",
            file=sys.stderr,
        )
        return
    for path in write_validation_plots(result, folder):
        print(f"plot: {path}", file=sys.stderr)
