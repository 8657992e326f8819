"""`run_demo()`: the whole pipeline on built-in data, each step printed as the real CLI command."""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from nfdeploy.data import Preprocess, load_dataset
from nfdeploy.demo.report import write_report
from nfdeploy.demo.vendor_model import DEMO_PREPROCESS, export_vendor, train_vendor
from nfdeploy.errors import NfdeployError
from nfdeploy.train.precision import Precision, resolve_precision

DATA = "synthetic"
# The demo vendor shrugs off 1-2% stuck-at (its 1.3M-weight head barely notices; PA ~0.9 x CA);
# at 4% its conv layers break (PA ~0.7 x CA, see README). G trains at 1.5x the target BER,
# the best recipe of the demo setting's study (on CIFAR-10 it gained little; docs/training.md).
DEMO_BER = 0.04
TRAIN_BER_FACTOR = 1.5
SWEEP = ("0.01", "0.02", "0.04", "0.06")
SWEEP_TRIALS = 3  # the main point gets 10; the sweep only shows the trend (and costs time)


CommandRunner = Callable[[list[str]], None]  # runs `nfdeploy ARGS` in-process


def _stepper(run_command: CommandRunner, log: list[str]) -> CommandRunner:
    """Each step prints its `nfdeploy` command line (so a reader can rerun it), then runs it."""

    def step(args: list[str]) -> None:
        line = "nfdeploy " + shlex.join(args)
        log.append(line)
        print(f"\n$ {line}", file=sys.stderr, flush=True)
        try:
            run_command(args)
        except SystemExit as exc:  # --fail-under and friends
            if exc.code:
                raise NfdeployError(f"demo step failed: {line}") from None

    return step


def run_demo(
    *,
    out: str | Path,
    ber: float = DEMO_BER,
    vendor_epochs: int = 6,
    epochs: int = 8,
    train_images: int = 4000,
    quiet: bool = False,
    run_command: CommandRunner,
) -> Path:
    """Vendor model -> train -> export -> validate (+ sweep, energy); returns REPORT.md.

    ``run_command`` runs one `nfdeploy` command line (the CLI passes itself, so this package
    does not import the CLI).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started, log = time.perf_counter(), list[str]()
    step = _stepper(run_command, log)
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    quiet_flag = ["-q"] if quiet else []
    vendor = out / "vendor.onnx"
    print(
        "step 1: a VGG-style vendor classifier on the built-in synthetic data (stands in for your "
        "file; 1.5M weights, most of them in its classifier head)",
        file=sys.stderr,
    )
    pre = Preprocess.parse(DEMO_PREPROCESS)
    train_set = load_dataset(DATA, split="train", progress=not quiet)
    precision = resolve_precision("auto", "cpu")
    bf16 = precision.precision is Precision.BF16
    model, seconds = train_vendor(
        train_set, pre=pre, epochs=vendor_epochs, seed=0, quiet=quiet, bf16=bf16
    )
    export_vendor(model, pre, vendor)
    print(
        f"wrote {vendor} ({seconds:.0f}s of training, {precision.precision.value}: "
        f"{precision.reason})",
        file=sys.stderr,
    )

    run, generator = out / "run", out / "run" / "generator.onnx"
    print("\nstep 2: EOPM training of a generator (vendor weights stay frozen)", file=sys.stderr)
    step(["train", *quiet_flag, "--model", str(vendor), "--data", DATA, "--out", str(run),
          "--generator", "UNetS", "--epochs", str(epochs), "--limit", str(train_images),
          "--batch-size", "25", "--n-perturbed", "5", "--train-ber", f"{ber * TRAIN_BER_FACTOR:g}", "--lr", "5e-3",
          "--fault-model", "stuck-at", "--seed", "0", "--force"])  # fmt: skip
    print("\nstep 3: export the generator to ONNX", file=sys.stderr)
    step(["export", "--run", str(run), "--out", str(generator)])
    print(f"\nstep 4: validate in onnxruntime at BER {ber:g}, then a short sweep", file=sys.stderr)
    common = ["--model", str(vendor), "--generator", str(generator), "--data", DATA, *quiet_flag]
    step(["validate", *common, "--ber", f"{ber:g}", "--fault-model", "stuck-at", "--trials", "10",
          "--report", str(out / "validate.json"), "--plots", str(out / "plots")])  # fmt: skip
    for model_name in ("stuck-at", "flip"):
        sweep = [arg for ber in SWEEP for arg in ("--ber", ber)]
        step(["validate", *common, *sweep, "--fault-model", model_name, "--trials", str(SWEEP_TRIALS),
              "--report", str(out / f"sweep-{model_name}.json")])  # fmt: skip
    step(["energy", "--model", str(vendor), "--generator", str(generator),
          "--json", str(out / "energy.json")])  # fmt: skip
    report = write_report(out, commands=log, seconds=time.perf_counter() - started)
    print(f"\ndone in {time.perf_counter() - started:.0f}s: {report}", file=sys.stderr)
    return report


def load_json(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))
