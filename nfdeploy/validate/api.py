"""`validate()`: the keyword-only library function behind `nfdeploy validate`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from nfdeploy.errors import NfdeployError
from nfdeploy.faults.onnx_weights import TensorSelection
from nfdeploy.faults.spec import DEFAULT_FAULT_MODEL, FaultModel, parse_bit_positions
from nfdeploy.validate.pool import Backend
from nfdeploy.validate.report import ValidationReport
from nfdeploy.validate.runner import run_validations

PLACEHOLDER = "{generator}"


def validate(
    *,
    model: str,
    data: str,
    bers: tuple[float, ...] = (),
    voltages: tuple[float, ...] = (),
    generator: str | tuple[str, ...] | None = None,
    split: str = "test",
    limit: int | None = None,
    preprocess: str | None = None,
    trials: int = 10,
    seed: int = 50_000,
    fault_model: str = DEFAULT_FAULT_MODEL.value,
    storage: str = "auto",
    bits: str | None = None,
    chip_map: str | None = None,
    nested: bool = False,
    include_bias: bool = False,
    tensors: str | None = None,
    faulty_generator: bool = False,
    threads: int = 0,
    batch_size: int = 256,
    workers: int = 1,
    backend: str = "local",
    ray_address: str | None = None,
    provider: str = "cpu",
    report: str | None = None,
    plots: str | None = None,
    fail_under: float | None = None,
    quiet: bool = False,
) -> bool:
    """Run validation, print the table to stderr, write JSON/plots; False if --fail-under fails.

    Several generators share each trial's faulty vendor pass; then ``report`` and ``plots``
    must contain ``{generator}``, replaced by each generator's name (see :func:`generator_name`).
    """
    threshold = _threshold(fail_under)
    bers, voltage_record = _rates(bers, voltages, fault_model)
    generators = _as_tuple(generator)
    outputs = _output_paths(generators, report, plots)
    for report_path, plots_path in outputs:
        check_destination("--report", report_path, folder=False)
        check_destination("--plots", plots_path, folder=True)
    results = run_validations(
        model=model,
        data=data,
        bers=bers,
        generators=generators,
        trials=trials,
        seed=seed,
        fault_model=FaultModel(fault_model),
        storage=storage,
        bit_positions=parse_bit_positions(bits),
        chip_map=Path(chip_map) if chip_map else None,
        nested=nested,
        selection=TensorSelection(include_bias=include_bias, pattern=tensors),
        faulty_generator=faulty_generator,
        preprocess=preprocess,
        split=split,
        limit=limit,
        threads=threads,
        batch_size=batch_size,
        workers=workers,
        backend=_backend(backend, ray_address),
        ray_address=ray_address,
        provider=provider,
        progress=not quiet,
    )
    ok = True
    for result, gen, (report_path, plots_path) in zip(
        results, generators or (None,), outputs, strict=True
    ):
        if gen is not None and len(generators) > 1:
            print(f"\n== generator {gen}", file=sys.stderr)
        result.extra["energy"] = _energy(model, gen, voltages)
        _record_operating_point(result, voltage_record, chip_map)
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


def _as_tuple(generator: str | tuple[str, ...] | None) -> tuple[str, ...]:
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
    result: ValidationReport, voltage_record: dict[str, Any] | None, chip_map: str | None
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
