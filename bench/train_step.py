"""EOPM step speed and memory: the naive loop, the old default and every new mode, in one run.

Each mode runs in its own child process, one after another (never two at once), so that
each has its own peak RSS and none shares the cores. Vendors are seeded random networks
loaded through ONNX as `nfdeploy train` loads them (timing only): the CIFAR ResNet18 with a
ConvL generator, and the CIFAR ResNet-20 with a UNetS generator. 1% stuck-at, int8 storage.

Modes:
  naive      the reference code's structure: G recomputed per model, a deep copy per
             perturbed model with its own parameters, weight gradients for the base model;
  old        the previous default: fp32, per-model loop, each pattern made just before its pass;
  fp32/bf16  per-model loop, patterns made in a background thread when a core is free
             (nfdeploy.train.setup.free_core), else inline, as `nfdeploy train` does;
  bf16-prefetch  bf16 with the background thread forced on;
  bf16-compile   bf16 with `--compile` (torch.compile; compile time in the warm-up step);
  batched-*  with all N + 1 models in one vmap'd call (--perturbed-chunk N+1).

    python bench/train_step.py [--steps 2] [--threads 2] [--no-sweep] [--device cuda]
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "cifar10"))
from energy_paper import CifarResNet18, export  # noqa: E402
from models import resnet20  # noqa: E402

from nfdeploy.energy import layers_from_onnx  # noqa: E402
from nfdeploy.faults.onnx_model import FaultableModel, load_faultable  # noqa: E402
from nfdeploy.faults.spec import FaultModel, FaultSpec  # noqa: E402
from nfdeploy.faults.storage import StoredWeight, perturb  # noqa: E402
from nfdeploy.generators import FusedInput, build_generator  # noqa: E402
from nfdeploy.torchify import load_vendor  # noqa: E402
from nfdeploy.torchify.module import VendorModule  # noqa: E402
from nfdeploy.train.eopm import eopm_step  # noqa: E402
from nfdeploy.train.perturbed import PerturbedWeights, StepWeights, prefetched  # noqa: E402
from nfdeploy.train.precision import BF16_CPU_FLAGS, Precision, cpu_flags  # noqa: E402
from nfdeploy.train.setup import free_core  # noqa: E402

LAM = 5.0
PAIRS = {"resnet18": "ConvL", "resnet20": "UNetS"}
MODES = (
    "naive", "old", "fp32", "bf16", "bf16-prefetch", "bf16-compile", "batched-fp32", "batched-bf16",
)  # fmt: skip


def fused_input(name: str) -> FusedInput:
    torch.manual_seed(0)
    fused = FusedInput(build_generator(name), [-1.0], [1.0])
    return fused.to(memory_format=torch.channels_last)  # type: ignore[call-overload,no-any-return]


def vendor_macs(vendor: str) -> int:
    """Multiply-accumulates of one image through the vendor (nfdeploy.energy's count)."""
    return sum(layer.macs for layer in layers_from_onnx(export(_base(vendor))))


def peak_gflops(dtype: torch.dtype) -> float:
    """A 128-channel 3x3 conv, batch 25, 16x16 (fwd): about the best rate this CPU gives."""
    x = torch.randn(25, 128, 16, 16, dtype=dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(128, 128, 3, 3, dtype=dtype).contiguous(memory_format=torch.channels_last)
    for _ in range(3):
        F.conv2d(x, w, padding=1)
    start, reps = time.perf_counter(), 20
    for _ in range(reps):
        F.conv2d(x, w, padding=1)
    seconds = (time.perf_counter() - start) / reps
    return 2 * 25 * 16 * 16 * 128 * 128 * 9 / seconds / 1e9


def _load(net: torch.nn.Module) -> tuple[VendorModule, FaultableModel, FaultSpec]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vendor.onnx"
        onnx.save(export(net), str(path))
        vendor, faultable = load_vendor(path), load_faultable(path)
    return vendor, faultable, FaultSpec(FaultModel.STUCK_AT, 0.01, faultable.storage)


def random_resnet18_vendor() -> tuple[CifarResNet18, VendorModule, FaultableModel, FaultSpec]:
    """A seeded random CIFAR ResNet18 (timing only) loaded through ONNX as `nfdeploy train`
    loads a vendor, with the 1% stuck-at spec for its stored weights."""
    torch.manual_seed(0)
    base = CifarResNet18().eval()
    return (base, *_load(base))


def _base(vendor: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return (CifarResNet18() if vendor == "resnet18" else resnet20()).eval()


def _weights(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.dim() > 1]


def naive_step(fused, base, stored, spec, x, y, seeds, optimizer) -> None:  # type: ignore[no-untyped-def]
    """Reference structure: G recomputed per model, perturbed deep copies, base weights get grads."""
    loss = F.cross_entropy(base(fused(x)), y)
    for seed in seeds:
        model = copy.deepcopy(base)
        faulty = perturb(stored, spec, seed=seed)
        with torch.no_grad():
            for (_name, param), weight, (codes, _) in zip(
                _weights(model), stored, faulty, strict=True
            ):
                param.copy_(torch.from_numpy(weight.dequantize(codes)))
        loss = loss + LAM / len(seeds) * F.cross_entropy(model(fused(x)), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def _naive_runner(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    base = _base(args.vendor)
    spec = _load(base)[2]
    stored = [
        StoredWeight.from_float(n, p.detach().numpy(), spec.storage) for n, p in _weights(base)
    ]
    base = base.to(args.device)
    fused = fused_input(PAIRS[args.vendor]).to(args.device)
    optimizer = torch.optim.Adam(fused.parameters(), lr=1e-3)

    def run(batches, seed_lists) -> None:  # type: ignore[no-untyped-def]
        for (x, y), seeds in zip(batches, seed_lists, strict=True):
            x, y = x.to(args.device), y.to(args.device)
            naive_step(fused, base, stored, spec, x, y, seeds, optimizer)

    return run


def _ours_runner(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """As `nfdeploy train` runs its steps (train/loop.py), or the old default for mode 'old'."""
    vendor, faultable, spec = _load(_base(args.vendor))
    if args.mode == "bf16-compile":
        vendor = torch.compile(vendor)  # type: ignore[assignment]
    weights = PerturbedWeights(faultable, spec, channels_last=True)
    precision = Precision.BF16 if "bf16" in args.mode else Precision.FP32
    device = torch.device(args.device)
    vendor = vendor.to(device)
    prefetch = args.mode == "bf16-prefetch" or (args.mode != "old" and free_core(device))
    chunk = args.n + 1 if args.mode.startswith("batched") else 1
    steps = StepWeights(weights, lam=LAM, n_perturbed=args.n, chunk=chunk, device=device)
    fused = fused_input(PAIRS[args.vendor]).to(device)
    optimizer = torch.optim.Adam(fused.parameters(), lr=1e-3)

    def run(batches, seed_lists) -> None:  # type: ignore[no-untyped-def]
        plans = [steps.plan(seeds) for seeds in seed_lists]
        jobs = itertools.chain.from_iterable(plans)
        stream = prefetched(steps.build, jobs) if prefetch else map(steps.build, jobs)
        for (x, y), plan in zip(batches, plans, strict=True):
            chunks = itertools.islice(stream, len(plan))
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            eopm_step(fused, vendor, x, y, chunks, precision=precision)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    return run


def child(args: argparse.Namespace) -> None:
    """One mode: 1 warm-up step, then --steps timed steps; prints one JSON line."""
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    count = args.steps + 1
    batches = [
        (
            torch.from_numpy(rng.uniform(-1, 1, (args.batch, 3, 32, 32)).astype(np.float32))
            .contiguous(memory_format=torch.channels_last),
            torch.from_numpy(rng.integers(0, 10, args.batch)),
        )
        for _ in range(count)
    ]  # fmt: skip
    seed_lists = [list(range(k * args.n, (k + 1) * args.n)) for k in range(count)]
    run = (_naive_runner if args.mode == "naive" else _ours_runner)(args)
    if args.device != "cpu":
        batches = [(x.pin_memory(), y.pin_memory()) for x, y in batches]
    run(batches[:1], seed_lists[:1])  # warm-up
    _sync(args.device)
    start = time.perf_counter()
    run(batches[1:], seed_lists[1:])
    _sync(args.device)
    seconds = (time.perf_counter() - start) / args.steps
    print(json.dumps({"seconds": seconds, "peak_rss_mb": _peak_rss_mb()}))


def _sync(device: str) -> None:
    if device != "cpu":
        torch.cuda.synchronize()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(args: argparse.Namespace, vendor: str, mode: str, n: int, batch: int) -> dict:  # type: ignore[type-arg]
    command = [
        sys.executable, __file__, "--child", "--vendor", vendor, "--mode", mode, "--n", str(n),
        "--batch", str(batch), "--threads", str(args.threads), "--device", args.device,
        "--steps", str(args.steps * (1 if vendor == "resnet18" else 5)),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"{vendor} {mode} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["images_per_s"] = batch / result["seconds"]
    return result  # type: ignore[no-any-return]


def machine_line(threads: int) -> str:
    flags = cpu_flags()
    shown = [
        f for f in ("avx2", "avx512f", "avx512_vnni", *BF16_CPU_FLAGS, "amx_int8") if f in flags
    ]
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return (
        f"CPU: {model}; flags: {' '.join(shown) or 'none of avx2/avx512/amx'}; "
        f"torch {torch.__version__}, {threads} threads"
    )


def _table(args: argparse.Namespace, vendor: str, modes: tuple[str, ...]) -> dict[str, dict]:  # type: ignore[type-arg]
    macs = vendor_macs(vendor)
    # vendor arithmetic per step: (N + 1) passes, forward + input gradient (about 2x forward)
    flops = 2 * macs * args.batch * (args.n + 1) * 2
    print(f"\n{vendor} + {PAIRS[vendor]}, N = {args.n}, batch {args.batch} "
          f"({macs / 1e6:.1f}M MACs/image; {flops / 1e9:.1f} GFLOP of vendor passes per step):")  # fmt: skip
    print(f"  {'mode':<13} {'s/step':>7} {'images/s':>9} {'vendor GFLOPS':>14} {'peak RSS MB':>12}")
    rows = {}
    for mode in modes:
        rows[mode] = row = measure(args, vendor, mode, args.n, args.batch)
        rate = "" if mode == "naive" else f"{flops / row['seconds'] / 1e9:14.0f}"
        print(f"  {mode:<13} {row['seconds']:7.3f} {row['images_per_s']:9.1f} {rate:>14} "
              f"{row['peak_rss_mb']:12.0f}", flush=True)  # fmt: skip
    return rows


def _verdict(label: str, ratio: float, target: float) -> None:
    print(
        f"  {label}: {ratio:.2f}x (target >= {target:g}x: {'PASS' if ratio >= target else 'FAIL'})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--steps", type=int, default=2, help="timed steps (x5 for ResNet-20)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-sweep", action="store_true", help="skip step time vs N and batch")
    parser.add_argument("--device", default="cpu", help="e.g. cuda: time every mode on that device")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--vendor", choices=sorted(PAIRS), default="resnet18")
    parser.add_argument("--mode", choices=MODES, default="bf16")
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    on_gpu = args.device != "cpu"
    has_bf16 = on_gpu or bool(set(BF16_CPU_FLAGS) & cpu_flags())
    default = "bf16" if has_bf16 else "fp32"  # what --precision auto picks here
    if on_gpu:  # auto there: bf16, all N + 1 models in one call
        default = "batched-bf16"
        print(f"device: {torch.cuda.get_device_name(args.device)}")
    print(machine_line(args.threads))
    torch.set_num_threads(args.threads)
    print(f"CPU conv peak (128-ch 3x3, batch 25): fp32 {peak_gflops(torch.float32):.0f} "
          f"GFLOPS, bf16 {peak_gflops(torch.bfloat16):.0f} GFLOPS")  # fmt: skip
    where = "prefetched" if free_core(torch.device(args.device)) else "inline (no free core)"
    print(f"`nfdeploy train` defaults here: {default}, patterns {where}; "
          f"{args.steps} timed steps after 1 warm-up, each mode in its own process")  # fmt: skip
    r18 = _table(args, "resnet18", MODES)
    r20 = _table(args, "resnet20", MODES[1:])
    print("\nratios (same run):")
    naive = r18["naive"]["seconds"]
    _verdict(
        f"ResNet18 naive / default ({default})",
        naive / r18[default]["seconds"],
        8 if has_bf16 and not on_gpu else 2,
    )
    print(f"  ResNet18 naive / old default: {naive / r18['old']['seconds']:.2f}x;  "
          f"bf16 / fp32 speed-up: {r18['fp32']['seconds'] / r18['bf16']['seconds']:.2f}x;  "
          f"bf16 with / without the pattern thread: "
          f"{r18['bf16-prefetch']['seconds'] / r18['bf16']['seconds']:.2f}x the time")  # fmt: skip
    _verdict(
        f"ResNet-20 images/s, default ({default}) / old default",
        r20[default]["images_per_s"] / r20["old"]["images_per_s"],
        4,
    )
    if on_gpu:
        _verdict(
            "ResNet-20 images/s at N = 10, default / 5,000",
            r20[default]["images_per_s"] / 5000,
            1,
        )
    for vendor, rows in (("ResNet18", r18), ("ResNet-20", r20)):
        for precision in ("fp32", "bf16"):
            batched = rows[f"batched-{precision}"]
            print(f"  {vendor} batched-{precision}: {rows[precision]['seconds'] / batched['seconds']:.2f}x "
                  f"the loop's speed; peak RSS {batched['peak_rss_mb'] / rows['old']['peak_rss_mb']:.2f}x "
                  f"the old default's (target <= 2x)")  # fmt: skip
    if args.no_sweep:
        return
    print(f"\nResNet-20 + UNetS, default mode ({default}): step time vs N (batch {args.batch})")
    by_n = {n: measure(args, "resnet20", default, n, args.batch) for n in (1, 5, 10)}
    for n, row in by_n.items():
        print(
            f"  N={n:<3d} {row['seconds']:6.3f} s  ({row['seconds'] / by_n[1]['seconds']:.2f}x N=1)"
        )
    print(f"ResNet-20 + UNetS, default mode ({default}): vs batch size (N = {args.n})")
    for batch in (25, 50, 100):
        row = measure(args, "resnet20", default, args.n, batch)
        print(f"  batch {batch:<4d} {row['seconds']:6.3f} s/step  {row['images_per_s']:7.1f} images/s  "
              f"peak RSS {row['peak_rss_mb']:.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
