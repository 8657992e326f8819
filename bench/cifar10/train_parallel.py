"""Train several generators side by side on one machine within a wall-clock budget; resumable.

Each run is the real CLI (`nfdeploy train`), one process per job. Epoch 1 is timed, then
every run resumes with as many epochs as fit in the budget (the cosine schedule stretches
to the new total), then each is exported. Re-running continues from the run folders.
The GPU runs in docs/benchmarks.md were made with it:

    python bench/cifar10/train_parallel.py --vendor resnet20.onnx --data train10k.npz \
        --out runs --device cuda --budget 420 --job UNetS:stuck-at:0.015:5e-3 --job ...

A job is GENERATOR:FAULT_MODEL:BER[:LR]; the run folder is OUT/<vendor>-<job>.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Job:
    generator: str
    fault_model: str
    ber: float
    lr: str

    @classmethod
    def parse(cls, text: str, default_lr: str) -> Job:
        parts = text.split(":")
        if len(parts) not in (3, 4):
            raise SystemExit(f"--job {text}: use GENERATOR:FAULT_MODEL:BER[:LR]")
        return cls(parts[0], parts[1], float(parts[2]), parts[3] if len(parts) == 4 else default_lr)

    def tag(self, vendor: Path, default_lr: str) -> str:
        lr = "" if self.lr == default_lr else f"-lr{self.lr}"
        return f"{vendor.stem}-{self.generator}-{self.fault_model}-{self.ber:g}{lr}"


def launch(
    args: argparse.Namespace, job: Job, run: Path, extra: list[str]
) -> subprocess.Popen[bytes]:
    if (run / "last.pt").exists():
        command = ["train", "-q", "--resume", str(run), "--device", args.device, *extra]
    else:
        # --force: a folder without last.pt is a run killed before its first epoch ended
        command = ["train", "-q", "--model", str(args.vendor), "--data", str(args.data),
                   "--out", str(run), "--force", "--generator", job.generator, "--fault-model", job.fault_model,
                   "--train-ber", f"{job.ber:g}", "--lr", job.lr, "--n-perturbed", str(args.n_perturbed),
                   "--holdout", str(args.holdout), "--threads", str(args.threads),
                   "--batch-size", str(args.batch_size),
                   *(["--limit", str(args.limit)] if args.limit else []),
                   "--device", args.device, *extra]  # fmt: skip
    log = open(log_path(run), "ab")  # noqa: SIM115 - closed with the process
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    print("$ nfdeploy " + " ".join(command), flush=True)
    return subprocess.Popen(
        [sys.executable, "-m", "nfdeploy", *command], stdout=log, stderr=log, env=env
    )


def log_path(run: Path) -> Path:
    return run.parent / f"{run.name}.log"


def epochs_done(run: Path) -> list[dict[str, float]]:
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("epoch", 0) >= 1]


def wait_all(processes: dict[Path, subprocess.Popen[bytes]], deadline: float | None) -> None:
    for run, process in processes.items():
        timeout = None if deadline is None else max(deadline - time.time(), 1)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            print(f"{run.name}: stopped at the deadline (last.pt keeps the last full epoch)")
        if process.returncode not in (0, None, -9):
            tail = log_path(run).read_text(errors="replace")[-1500:]
            print(f"{run.name}: exit {process.returncode}\n{tail}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vendor", type=Path, required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--job", action="append", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--budget", type=float, default=420.0, help="seconds for all training")
    parser.add_argument("--max-epochs", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-perturbed", type=int, default=10)
    parser.add_argument("--holdout", type=int, default=500)
    parser.add_argument("--lr", default="5e-3")
    parser.add_argument("--batch-size", type=int, default=25)
    parser.add_argument("--no-export", action="store_true", help="export later (elsewhere)")
    parser.add_argument("--limit", type=int, default=None, help="training images (seeded subset)")
    args = parser.parse_args()
    start = time.time()
    deadline = start + args.budget
    jobs = [Job.parse(text, args.lr) for text in args.job]
    runs = {job: args.out / job.tag(args.vendor, args.lr) for job in jobs}
    args.out.mkdir(parents=True, exist_ok=True)
    fresh = {job: run for job, run in runs.items() if not epochs_done(run)}
    wait_all({run: launch(args, job, run, ["--epochs", str(args.max_epochs), "--stop-after", "1"])
              for job, run in fresh.items()}, deadline)  # fmt: skip
    plan = {}
    for job, run in runs.items():
        done = epochs_done(run)
        if not done:
            continue
        per_epoch = max(r["seconds"] for r in done) * 1.2 + 5  # + held-out evaluation
        plan[job] = max(
            len(done), min(args.max_epochs, len(done) + int((deadline - time.time()) / per_epoch))
        )
        print(f"{run.name}: {per_epoch:.0f} s/epoch -> {plan[job]} epochs", flush=True)
    wait_all({runs[job]: launch(args, job, runs[job], ["--epochs", str(epochs)])
              for job, epochs in plan.items() if epochs > len(epochs_done(runs[job]))}, deadline)  # fmt: skip
    for run in runs.values():
        if (run / "best.pt").exists() and not args.no_export:
            subprocess.run([sys.executable, "-m", "nfdeploy", "export", "--run", str(run),
                            "--out", str(run / "generator.onnx")], check=False)  # fmt: skip
    for run in runs.values():
        done = epochs_done(run)
        best = max((r["pa_nf"] for r in done), default=float("nan"))
        print(
            f"{run.name}: {len(done)} epochs, best held-out PA(NF) {best:.3f}, {time.time() - start:.0f} s"
        )


if __name__ == "__main__":
    main()
