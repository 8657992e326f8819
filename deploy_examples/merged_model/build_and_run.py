#!/usr/bin/env python3
"""One ONNX file instead of two: build pipeline.onnx (generator -> vendor) and prove it equals
the two-session chain.

Build step (only when pipeline.onnx is missing, or with --rebuild):
  --run RUN                      runs `nfdeploy export --run RUN --merge` (needs torch: it
                                 re-exports the generator from the run's checkpoint)
  --generator G --model V        merges the two ONNX files directly with
                                 nfdeploy.export.merge.merge_pipeline (onnx only, no torch)
Run step (plain onnxruntime): pipeline.onnx on preprocessed inputs, then generator.onnx ->
vendor.onnx as two sessions; prints the max abs difference and exits 1 if it exceeds --atol.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

import numpy as np
import onnxruntime as ort

from nfdeploy.data import Preprocess, load_dataset
from nfdeploy.errors import NfdeployError
from nfdeploy.faults.spec import MAX_SEED
from nfdeploy.onnx import metadata as metadata_keys
from nfdeploy.runtime import load_model_checked, metadata_dict, save_model_atomic

PREPROCESS_KEY = metadata_keys.PREPROCESS  # the one definition: nfdeploy.onnx.metadata


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line instead of usage + error
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="build_and_run.py",
        description="Build pipeline.onnx (generator -> vendor in one graph) if missing, run it "
        "with onnxruntime and compare it with the generator -> vendor session chain.",
    )
    source = parser.add_argument_group("what to merge (give --run, or --generator and --model)")
    source.add_argument("--run", help="training run folder; builds with `nfdeploy export --merge`")
    source.add_argument("--generator", help="generator.onnx (merged directly, no torch)")
    source.add_argument(
        "--model", help="the vendor ONNX model (with --run: default is the one trained against)"
    )
    source.add_argument(
        "--pipeline",
        help="pipeline.onnx to use or write (default: beside the generator / in the run folder)",
    )
    source.add_argument("--rebuild", action="store_true", help="rebuild even if it exists")
    inputs = parser.add_argument_group("inputs")
    inputs.add_argument(
        "--data", help="data set spec for nfdeploy.data.load_dataset (e.g. synthetic, x.npz)"
    )
    inputs.add_argument("--limit", type=int, default=64, help="images from --data (default 64)")
    inputs.add_argument(
        "--n", type=int, default=16, help="random images when no --data (default 16)"
    )
    inputs.add_argument("--seed", type=int, default=0, help="seed for the random images")
    inputs.add_argument("--preprocess", help="override the preprocessing stored in generator.onnx")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--atol", type=float, default=1e-4, help="allowed max |difference|")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0 = auto)")
    return parser


# --------------------------------------------------------------------------- build
def resolve_paths(args: argparse.Namespace) -> tuple[Path, Path, Path]:
    """(generator, vendor, pipeline) paths; the generator may not exist yet in --run mode."""
    if args.run and args.generator:
        raise UsageError("give --run or --generator, not both")
    if args.run:
        run = Path(args.run)
        if not run.is_dir():
            raise UsageError(f"{run}: no such run folder")
        vendor = args.model or _trained_vendor(run)
        pipeline = Path(args.pipeline) if args.pipeline else run / "pipeline.onnx"
        return run / "generator.onnx", Path(vendor), pipeline
    if not (args.generator and args.model):
        raise UsageError(
            "give --run RUN, or both --generator generator.onnx and --model vendor.onnx"
        )
    generator = Path(args.generator)
    pipeline = Path(args.pipeline) if args.pipeline else generator.with_name("pipeline.onnx")
    return generator, Path(args.model), pipeline


def _trained_vendor(run: Path) -> str:
    """The vendor path recorded in RUN/config.json (as given to `nfdeploy train`)."""
    try:
        stored = json.loads((run / "config.json").read_text(encoding="utf-8"))
        vendor = str(stored["config"]["vendor"])
    except (OSError, ValueError, KeyError, TypeError):
        raise UsageError(
            f"{run}: no readable config.json naming the vendor; pass --model"
        ) from None
    if not Path(vendor).is_file():
        raise UsageError(
            f"{run}: the vendor model it was trained on ({vendor}) is not found from here; "
            "pass --model"
        )
    return vendor


def export_merged(run: Path, model: str | None) -> None:
    """The build step of a training run: needs the nfdeploy CLI with torch installed."""
    command = [sys.executable, "-m", "nfdeploy", "export", "--run", str(run), "--merge"]
    if model:
        command += ["--model", model]
    print(f"building: {' '.join(command[1:])}", file=sys.stderr)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()] or ["no message"]
        raise UsageError(f"nfdeploy export failed (exit {result.returncode}): {lines[-1].strip()}")


def merge_direct(generator: Path, vendor: Path, pipeline: Path) -> None:
    """The build step for two ONNX files: onnx.compose + a parity check, no torch."""
    from nfdeploy.export.merge import merge_pipeline

    merged = merge_pipeline(load_model_checked(generator), load_model_checked(vendor))
    save_model_atomic(merged, pipeline)
    print(f"built {pipeline} from {generator} + {vendor}", file=sys.stderr)


# --------------------------------------------------------------------------- run
def session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    if not path.is_file():
        raise UsageError(f"{path}: no such ONNX file")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise UsageError(f"{path}: onnxruntime cannot load it: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def run_batched(sess: ort.InferenceSession, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Run a single-input session; a batch fixed in the file is padded to."""
    info = sess.get_inputs()[0]
    fixed = info.shape[0] if isinstance(info.shape[0], int) and info.shape[0] > 0 else None
    step, outputs = fixed or batch_size, []
    for start in range(0, len(x), step):
        chunk = x[start : start + step]
        n = len(chunk)
        if fixed and n < fixed:
            chunk = np.concatenate([chunk, np.zeros((fixed - n, *chunk.shape[1:]), chunk.dtype)])
        try:
            outputs.append(np.asarray(sess.run(None, {info.name: chunk})[0])[:n])
        except Exception as exc:
            raise UsageError(
                f"onnxruntime failed on input {info.name!r}: {_first_line(exc)}"
            ) from None
    return np.concatenate(outputs)


def make_inputs(args: argparse.Namespace, generator: Path, shape: Sequence[object]) -> np.ndarray:
    if args.preprocess:
        pre = Preprocess.parse(args.preprocess)
    else:
        stored = metadata_dict(load_model_checked(generator)).get(PREPROCESS_KEY)
        try:
            pre = Preprocess.from_dict(json.loads(stored)) if stored else Preprocess.parse("unit")
        except json.JSONDecodeError:
            raise UsageError(f"{generator}: metadata {PREPROCESS_KEY!r} is not JSON") from None
    dims = [d if isinstance(d, int) and d > 0 else None for d in shape]
    if len(dims) != 4:
        raise UsageError(f"{generator}: input shape {list(shape)}; expected (N, C, H, W)")
    c, h, w = dims[1:]
    pre = replace(pre, channels=c or pre.channels, height=h or pre.height, width=w or pre.width)
    if args.data:
        if args.limit < 1:
            raise UsageError(f"--limit {args.limit}: must be >= 1")
        pixels = load_dataset(args.data, split="test", limit=args.limit, progress=False).images
        what = f"{len(pixels)} images from {args.data}"
    else:
        if args.n < 1:
            raise UsageError(f"--n {args.n}: must be >= 1")
        rng = np.random.default_rng(args.seed)
        pixels = rng.integers(0, 256, (args.n, pre.height, pre.width, pre.channels), np.uint8)
        what = f"{args.n} random images (seed {args.seed})"
    print(f"inputs: {what}, preprocess {pre.to_text()}")
    return pre.apply(pixels)


def build_and_run(args: argparse.Namespace) -> int:
    # every option is checked before pipeline.onnx is written
    if args.batch_size < 1:
        raise UsageError(f"--batch-size {args.batch_size}: must be >= 1")
    if not 0 <= args.seed <= MAX_SEED:
        raise UsageError(f"--seed {args.seed}: must be 0..{MAX_SEED} (2**63 - 1)")
    if args.threads < 0:
        raise UsageError(f"--threads {args.threads}: must be >= 0 (0 = auto)")
    if args.n < 1:
        raise UsageError(f"--n {args.n}: must be >= 1")
    if args.data and args.limit < 1:
        raise UsageError(f"--limit {args.limit}: must be >= 1")
    generator, vendor, pipeline = resolve_paths(args)
    if args.rebuild or not pipeline.is_file():
        if args.run:
            if args.pipeline and Path(args.pipeline) != Path(args.run) / "pipeline.onnx":
                raise UsageError("with --run, the pipeline is written to RUN/pipeline.onnx")
            export_merged(Path(args.run), args.model)
            print(f"built {pipeline} with nfdeploy export", file=sys.stderr)
        else:
            merge_direct(generator, vendor, pipeline)
    else:
        print(f"using existing {pipeline} (--rebuild to rebuild it)", file=sys.stderr)

    # ---- the deployment side: plain onnxruntime, no nfdeploy model code involved
    merged = session(pipeline, args.threads)
    gen_sess, ven_sess = session(generator, args.threads), session(vendor, args.threads)
    m_in, m_out = merged.get_inputs()[0], merged.get_outputs()[0]
    v_in, v_out = ven_sess.get_inputs()[0], ven_sess.get_outputs()[0]
    print(f"pipeline: {pipeline} (input {m_in.name!r} {m_in.shape} -> output {m_out.name!r})")
    if (m_in.name, m_out.name) != (v_in.name, v_out.name):
        raise UsageError(
            f"{pipeline}: input/output names ({m_in.name}, {m_out.name}) differ from the vendor's "
            f"({v_in.name}, {v_out.name}); it is not a drop-in replacement"
        )
    x = make_inputs(args, generator, gen_sess.get_inputs()[0].shape)
    one_graph = run_batched(merged, x, args.batch_size)
    chain = run_batched(ven_sess, run_batched(gen_sess, x, args.batch_size), args.batch_size)
    if one_graph.shape != chain.shape:
        raise UsageError(f"output shapes differ: pipeline {one_graph.shape} vs chain {chain.shape}")
    diff = float(np.max(np.abs(one_graph.astype(np.float64) - chain)))
    agree = int(np.sum(one_graph.argmax(axis=1) == chain.argmax(axis=1)))
    print(
        f"max |pipeline - chain| = {diff:.3e} (atol {args.atol:g}); argmax agrees on {agree}/{len(x)}"
    )
    if not diff <= args.atol:  # also catches NaN
        raise UsageError(
            f"{pipeline} differs from generator -> vendor by {diff:.3e} > --atol {args.atol:g}"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return build_and_run(args)
    except (UsageError, NfdeployError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
