"""`sensitivity()`: the keyword-only library function behind `nfdeploy sensitivity`."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from nfdeploy import __version__
from nfdeploy.errors import NfdeployError
from nfdeploy.faults.onnx_weights import TensorSelection
from nfdeploy.faults.spec import DEFAULT_FAULT_MODEL, FaultModel, parse_bit_positions
from nfdeploy.sensitivity.energy import FORMULA, AccessShares, access_shares
from nfdeploy.sensitivity.groups import Group, make_groups, parse_group_rules
from nfdeploy.sensitivity.measure import Setup, load_setup, run_configs
from nfdeploy.sensitivity.report import GroupResult, KeepResult, SensitivityReport, rank_groups
from nfdeploy.validate.api import check_destination

DEFAULT_KEEP_MAX = 5
TABLE_TOP = 25


def sensitivity(
    *,
    model: str,
    data: str,
    ber: float,
    split: str = "test",
    limit: int | None = None,
    preprocess: str | None = None,
    trials: int = 5,
    seed: int = 50_000,
    fault_model: str = DEFAULT_FAULT_MODEL.value,
    storage: str = "auto",
    bits: str | None = None,
    chip_map: str | None = None,
    include_bias: bool = False,
    tensors: str | None = None,
    group: Sequence[str] = (),
    keep_max: int | None = None,
    threads: int = 0,
    batch_size: int = 256,
    report: str | None = None,
    plot: str | None = None,
    quiet: bool = False,
) -> SensitivityReport:
    """PA with faults in one group at a time, ranked, then the keep-k curve (PA and ES)."""
    _check_numbers(trials=trials, threads=threads, batch_size=batch_size, keep_max=keep_max)
    check_destination("--report", report, folder=False)
    check_destination("--plot", plot, folder=True)
    rules = parse_group_rules(group)
    start = time.perf_counter()
    setup = load_setup(
        model=model, data=data, ber=ber, trials=trials, seed=seed,
        fault_model=_fault_model(fault_model), storage=storage,
        bit_positions=parse_bit_positions(bits), chip_map=Path(chip_map) if chip_map else None,
        selection=TensorSelection(include_bias=include_bias, pattern=tensors),
        preprocess=preprocess, split=split, limit=limit, threads=threads,
        batch_size=batch_size, progress=not quiet,
    )  # fmt: skip
    groups = make_groups(setup.vendor.targets, rules)
    k_max = _keep_max(keep_max, len(groups))
    shares, energy = _energy(setup)
    bar = tqdm(
        total=len(setup.seeds) * (len(groups) + k_max + 1), desc="sensitivity", unit="trial",
        file=sys.stderr, disable=True if quiet else None,
    )  # fmt: skip
    ranking = rank_groups(_per_group(setup, groups, shares, bar.update), setup.ca)
    keep = _keep_curve(setup, ranking, k_max, shares, bar.update)
    bar.close()
    result = SensitivityReport(
        _header(setup, groups), setup.ca, ranking, keep, energy,
        {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": time.perf_counter() - start},
    )  # fmt: skip
    _write_outputs(result, report, plot)
    return result


def _check_numbers(*, trials: int, threads: int, batch_size: int, keep_max: int | None) -> None:
    checks = (
        (trials < 1, f"--trials {trials}: need at least 1 trial."),
        (threads < 0, f"--threads {threads}: use 0 (all cores) or more."),
        (batch_size < 1, f"--batch-size {batch_size}: need at least 1."),
        (keep_max is not None and keep_max < 0, f"--keep-max {keep_max}: use 0 or more."),
    )
    for bad, message in checks:
        if bad:
            raise NfdeployError(message)


def _fault_model(text: str) -> FaultModel:
    try:
        return FaultModel(text)
    except ValueError:
        choices = ", ".join(m.value for m in FaultModel)
        raise NfdeployError(f"--fault-model {text}: use one of {choices}.") from None


def _keep_max(keep_max: int | None, n_groups: int) -> int:
    if keep_max is None:
        return min(DEFAULT_KEEP_MAX, n_groups)
    if keep_max > n_groups:
        raise NfdeployError(
            f"--keep-max {keep_max}: there are only {n_groups} tensor groups; use at most "
            f"{n_groups}."
        )
    return keep_max


def _energy(setup: Setup) -> tuple[AccessShares | None, dict[str, Any]]:
    """Access shares, or None with the reason in the report (PA is still measured)."""
    try:
        shares = access_shares(setup.vendor)
    except NfdeployError as exc:
        return None, {"formula": FORMULA, "error": str(exc)}
    return shares, shares.to_dict()


def _bytes(setup: Setup, names: set[str]) -> int:
    return sum(w.nbytes for w in setup.vendor.stored if w.name in names)


def _per_group(
    setup: Setup, groups: list[Group], shares: AccessShares | None, tick: Any
) -> list[GroupResult]:
    runs = run_configs(setup, [set(g.tensors) for g in groups], lambda: tick(1))
    return [
        GroupResult(
            g,
            trials,
            _bytes(setup, set(g.tensors)),
            None if shares is None else shares.share(g.tensors),
        )
        for g, trials in zip(groups, runs, strict=True)
    ]


def _keep_curve(
    setup: Setup, ranking: list[GroupResult], k_max: int, shares: AccessShares | None, tick: Any
) -> list[KeepResult]:
    """k = 0..k_max: faults everywhere except the k most sensitive groups."""
    everything = {t.name for t in setup.vendor.targets}
    faulty = [
        everything - {n for r in ranking[:k] for n in r.group.tensors} for k in range(k_max + 1)
    ]
    runs = run_configs(setup, faulty, lambda: tick(1))
    total_bytes = setup.vendor.stored_bytes()
    return [
        KeepResult(
            k,
            tuple(r.group.name for r in ranking[:k]),
            trials,
            _bytes(setup, names) / total_bytes,
            None if shares is None else shares.share(names),
            None if shares is None else shares.energy_saving(names),
        )
        for k, (names, trials) in enumerate(zip(faulty, runs, strict=True))
    ]


def _header(setup: Setup, groups: list[Group]) -> dict[str, Any]:
    vendor, spec = setup.vendor, setup.spec
    return {
        "tool": f"nfdeploy {__version__}",
        "vendor": {
            "path": str(vendor.path),
            "sha256": vendor.sha256,
            "storage": vendor.storage.value,
        },
        "data": {"source": setup.source, "images": len(setup.x)},
        "preprocess": setup.pre.to_dict(),
        "fault": spec.to_dict(),
        "trials": len(setup.seeds),
        "seeds": setup.seeds,
        "seed_scheme": "trial k uses seed (--seed + k) for every group, as validate; tensor "
        "stream = FNV-1a-64(name), so a tensor's faults equal those of a full validate run",
        "tensors": [t.to_dict() for t in vendor.targets],
        "stored_bytes": vendor.stored_bytes(),
        "groups": {g.name: list(g.tensors) for g in groups},
    }


def _write_outputs(result: SensitivityReport, report: str | None, plot: str | None) -> None:
    print(result.table(top=TABLE_TOP), file=sys.stderr)
    if report:
        print(f"report: {result.write_json(report)}", file=sys.stderr)
    if not plot:
        return
    try:
        from nfdeploy.sensitivity.plot import write_plots
    except ImportError:
        print(
            "plots skipped: matplotlib is not installed; pip install 'nfdeploy[plots]'",
            file=sys.stderr,
        )
        return
    for path in write_plots(result, Path(plot)):
        print(f"plot: {path}", file=sys.stderr)
