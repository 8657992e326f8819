"""Benchmark the bit-error kernel against memcpy and against numpy baselines.

Run: ``python bench/bitflip.py`` (after ``pip install --no-build-isolation -e .``).

For an 11 MiB buffer (about the int8 weights of ResNet18) and p = 1e-2, 1e-3, 1e-4 it prints:

1. inject-into-a-copy (``np.copyto`` into a preallocated buffer, then the kernel) divided by
   the copy alone, with 1 and 2 kernel threads, against the targets 8x / 2x / 1.2x;
2. the kernel alone (1 thread) against (a) a per-bit Bernoulli numpy baseline
   (``rng.random(nbits) < p``, ``packbits``, xor) -- target >= 50x -- and (b) the best numpy
   method here: geometric gaps (``rng.geometric`` + ``cumsum``, bits merged per byte with
   ``bitwise_or.reduceat``) or a binomial count plus ``rng.choice`` of distinct positions,
   whichever is faster at that p.

Both fault models are shown (flip; stuck-at, where a faulty cell is stuck at 0/1 with
probability 1/2). Times are medians of several repeats (timeit style, one call per repeat).
The machine may be shared, so the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import platform
import sys
import time
import timeit
from collections.abc import Callable

# numpy's bundled OpenBLAS is never used here; keep its worker threads off the 2 cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from nfdeploy import _kernel

NBYTES = 11 * 2**20
RATES = (1e-2, 1e-3, 1e-4)
COPY_TARGETS = {1e-2: 8.0, 1e-3: 2.0, 1e-4: 1.2}
BERNOULLI_TARGET = 50.0
CHUNK = 2**20  # bytes per chunk in the per-bit baseline (bounds its memory to ~70 MB)


# Wall clock by default; `--clock cpu` uses the calling thread's CPU time instead, which
# excludes time the OS gives to other processes on a shared machine (1-thread runs only).
TIMER: Callable[[], float] = time.perf_counter


def median_time(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up
    return float(np.median(timeit.repeat(fn, timer=TIMER, number=1, repeat=repeat)))


def interleaved_times(fns: list[Callable[[], object]], repeat: int) -> list[list[float]]:
    """Times of each function, timed in turn within every repeat (fair under load)."""
    for fn in fns:
        fn()  # warm-up
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, ts in zip(fns, times, strict=True):
            ts.append(timeit.timeit(fn, timer=TIMER, number=1))
    return times


# --------------------------------------------------------------------------- numpy baselines


def per_bit_bernoulli(buf: np.ndarray, p: float, rng: np.random.Generator, stuck: bool) -> None:
    """Draw one uniform per bit (chunked to bound memory)."""
    for start in range(0, buf.size, CHUNK):
        part = buf[start : start + CHUNK]
        faulty = np.packbits(rng.random(part.size * 8) < p, bitorder="little")
        if not stuck:
            part ^= faulty
        else:
            ones = np.packbits(rng.random(part.size * 8) < 0.5, bitorder="little") & faulty
            part &= ~faulty
            part |= ones


def _apply_positions(
    buf: np.ndarray, pos: np.ndarray, rng: np.random.Generator, stuck: bool
) -> None:
    """Apply faults at sorted, distinct global bit positions."""
    byte = pos >> 3
    bits = (np.uint8(1) << (pos & 7).astype(np.uint8)).astype(np.uint8)
    starts = np.flatnonzero(np.diff(byte, prepend=-1))
    where = byte[starts]
    faulty = np.bitwise_or.reduceat(bits, starts)
    if not stuck:
        buf[where] ^= faulty
    else:
        ones = np.bitwise_or.reduceat(bits & rng.integers(0, 2, bits.size, np.uint8) * 0xFF, starts)
        buf[where] = (buf[where] & ~faulty) | ones


def geometric_gaps(buf: np.ndarray, p: float, rng: np.random.Generator, stuck: bool) -> None:
    nbits = buf.size * 8
    mean = nbits * p
    pos = np.cumsum(rng.geometric(p, int(mean + 6 * np.sqrt(mean) + 16))) - 1
    while pos[-1] < nbits:  # rarely needed: extend the run
        more = np.cumsum(rng.geometric(p, int(6 * np.sqrt(mean) + 16))) + pos[-1]
        pos = np.concatenate([pos, more])
    _apply_positions(buf, pos[: np.searchsorted(pos, nbits)], rng, stuck)


def binomial_choice(buf: np.ndarray, p: float, rng: np.random.Generator, stuck: bool) -> None:
    nbits = buf.size * 8
    count = rng.binomial(nbits, p)
    pos = np.sort(rng.choice(nbits, size=count, replace=False))
    _apply_positions(buf, pos, rng, stuck)


NUMPY_BEST = {"geometric gaps": geometric_gaps, "binomial+choice": binomial_choice}


# --------------------------------------------------------------------------- main


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        return "n/a"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _inject_copy(
    fn: Callable[..., int], src: np.ndarray, dst: np.ndarray, p: float, threads: int
) -> Callable[[], int]:
    def run() -> int:
        np.copyto(dst, src)
        return fn(dst, p, 7, 11, 0xFF, threads)

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=25, help="repeats for kernel/memcpy timings")
    parser.add_argument("--repeat-numpy", type=int, default=3, help="repeats for numpy baselines")
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall: perf_counter (default); cpu: the calling thread's CPU time (skips 2 threads)",
    )
    args = parser.parse_args()
    global TIMER
    cpu_clock = args.clock == "cpu"
    TIMER = time.thread_time if cpu_clock else time.perf_counter

    print(f"machine: {_cpu_name()}, {os.cpu_count()} logical CPUs; python {sys.version.split()[0]}")
    print(f"numpy {np.__version__}; buffer {NBYTES} bytes ({NBYTES * 8} bits)")
    print(f"clock: {args.clock}; load average at start: {_load()}")
    src = np.random.default_rng(0).integers(0, 256, NBYTES, dtype=np.uint8)
    dst = np.empty_like(src)
    rng = np.random.default_rng(1)
    kernels = {"flip": _kernel.flip_bits, "stuck-at": _kernel.stuck_at}

    def copy() -> None:
        np.copyto(dst, src)

    print(f"memcpy (np.copyto) of the buffer: {median_time(copy, args.repeat) * 1e3:.3f} ms\n")
    print("1) inject into a copy: (np.copyto + kernel) / np.copyto, each timed in turn per repeat;")
    print("   ratios of medians (PASS/FAIL) and, in parentheses, of minima (1 thread)")
    head = f"{'model':9} {'p':>6} | {'memcpy':>8} | {'1 thread':>9} {'ratio':>7} {'(min)':>7} | {'2 threads':>9} {'ratio':>7} | {'target':>6}  result"
    print(head)
    print("-" * len(head))
    copy_ok = True
    for model, fn in kernels.items():
        for p in RATES:
            fns = [copy, _inject_copy(fn, src, dst, p, 1)]
            if not cpu_clock:
                fns.append(_inject_copy(fn, src, dst, p, 2))
            runs = interleaved_times(fns, args.repeat)
            t_copy, *times = (float(np.median(ts)) for ts in runs)
            min_ratio = min(runs[1]) / min(runs[0])
            if cpu_clock:
                times.append(math.nan)
            ratios = [t / t_copy for t in times]
            target = COPY_TARGETS[p]
            ok = ratios[0] <= target
            copy_ok &= ok
            verdict = (
                "PASS" if ok else ("FAIL (PASS with 2 threads)" if ratios[1] <= target else "FAIL")
            )
            print(
                f"{model:9} {p:6.0e} | {t_copy * 1e3:6.2f}ms | {times[0] * 1e3:7.2f}ms {ratios[0]:6.2f}x ({min_ratio:4.2f}x) | "
                + (
                    f"{times[1] * 1e3:7.2f}ms {ratios[1]:6.2f}x"
                    if not cpu_clock
                    else f"{'n/a':>17}"
                )
                + f" | {target:5.1f}x  {verdict}"
            )

    print("\n2) kernel alone (1 thread, in place) vs numpy (times per injection)")
    head = f"{'model':9} {'p':>6} | {'kernel':>9} | {'per-bit numpy':>13} {'speed-up':>9} | {'best numpy':>10} {'method':>15} {'speed-up':>9} | >=50x vs per-bit"
    print(head)
    print("-" * len(head))
    numpy_ok = True
    for model, fn in kernels.items():
        stuck = model == "stuck-at"
        for p in RATES:
            t_k = median_time(functools.partial(fn, dst, p, 7, 11), args.repeat)
            t_bern = median_time(
                functools.partial(per_bit_bernoulli, dst, p, rng, stuck), args.repeat_numpy
            )
            best = {
                name: median_time(functools.partial(f, dst, p, rng, stuck), args.repeat_numpy)
                for name, f in NUMPY_BEST.items()
            }
            method = min(best, key=best.__getitem__)
            s_bern, s_best = t_bern / t_k, best[method] / t_k
            ok = s_bern >= BERNOULLI_TARGET
            numpy_ok &= ok
            print(
                f"{model:9} {p:6.0e} | {t_k * 1e3:7.3f}ms | {t_bern * 1e3:11.1f}ms {s_bern:8.0f}x | "
                f"{best[method] * 1e3:8.2f}ms {method:>15} {s_best:8.1f}x | {'PASS' if ok else 'FAIL'}"
            )
    print(f"\nload average at end: {_load()}")
    print(
        "overall (1 thread): "
        + ("PASS" if copy_ok and numpy_ok else "FAIL")
        + f" (inject-into-copy {'PASS' if copy_ok else 'FAIL'}, vs per-bit numpy {'PASS' if numpy_ok else 'FAIL'})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
