"""`export()`: the keyword-only library function behind `nfdeploy export`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from nfdeploy.errors import NfdeployError
from nfdeploy.export.generator import build_generator_onnx, load_generator
from nfdeploy.onnx.atomic import save_model_atomic


def export(
    *,
    run: str,
    out: str | None = None,
    model: str | None = None,
    merge: bool = False,
    quantize: str | None = None,
) -> dict[str, Any]:
    """Write generator.onnx (and optionally pipeline.onnx, generator.int8.onnx); returns a summary."""
    loaded = load_generator(run)
    vendor_path = model or loaded.config.vendor
    run_folder = Path(run) if Path(run).is_dir() else Path(run).parent
    if not model and not Path(vendor_path).is_file():  # the tree moved: relative to the run
        relative = (loaded.config.from_run or {}).get("vendor", vendor_path)
        if (run_folder / relative).is_file():
            vendor_path = str(run_folder / relative)
    if not Path(vendor_path).is_file():
        raise NfdeployError(f"{vendor_path}: vendor model not found; pass --model vendor.onnx.")
    _check_vendor_fits(loaded, vendor_path)
    generator, vendor, parity = build_generator_onnx(loaded, vendor_path)
    out_path = (
        Path(out)
        if out
        else (Path(run) if Path(run).is_dir() else Path(run).parent) / "generator.onnx"
    )
    summary: dict[str, Any] = {
        "checkpoint": str(loaded.checkpoint),
        "epoch": loaded.epoch,
        "parity_max_abs": parity,
    }
    # Every model is built (and checked) before the first file is written: a failing merge or
    # int8 check leaves no generator.onnx of this export behind.
    outputs = [(generator, out_path)]
    if merge:
        from nfdeploy.export.merge import merge_pipeline

        outputs.append((merge_pipeline(generator, vendor), out_path.with_name("pipeline.onnx")))
    if quantize == "int8":
        from nfdeploy.export.quantize import quantize_generator

        quantized, check = quantize_generator(
            generator,
            vendor,
            data=loaded.config.data,
            pre=loaded.preprocess,
            seed=loaded.config.seed,
        )
        outputs.append((quantized, out_path.with_name(out_path.stem + ".int8.onnx")))
        summary["int8_check"] = check
        print(
            f"int8 generator: CA(NF) {check['ca_nf_int8'] * 100:.1f} vs float {check['ca_nf_float'] * 100:.1f} "
            f"on {int(check['images'])} test images",
            file=sys.stderr,
        )
    written = [save_model_atomic(model_proto, path) for model_proto, path in outputs]
    summary["written"] = [str(p) for p in written]
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    print(f"parity: max |onnxruntime - torch| = {parity:.2e}", file=sys.stderr)
    return summary


def _check_vendor_fits(loaded: Any, vendor_path: str) -> None:
    """The vendor must take the images the generator was trained on; a different file is said."""
    from nfdeploy.onnx.load import file_sha256, load_model_checked
    from nfdeploy.runtime.batching import input_dims

    pre = loaded.preprocess
    trained = [pre.channels, pre.height, pre.width]
    dims = input_dims(load_model_checked(vendor_path))[1:]
    if len(dims) != 3 or any(d is not None and d != t for d, t in zip(dims, trained, strict=True)):
        shape = "x".join("?" if d is None else str(d) for d in dims)
        raise NfdeployError(
            f"{vendor_path}: its input {shape} is not the {'x'.join(map(str, trained))} images the "
            f"generator in {loaded.checkpoint} was trained on; export against the run's vendor model."
        )
    recorded = loaded.provenance.get("vendor_sha256")
    if recorded and file_sha256(vendor_path) != recorded:
        print(
            f"note: {vendor_path} is not the vendor file the generator was trained against "
            f"(sha256 {recorded}); exporting anyway.",
            file=sys.stderr,
        )
