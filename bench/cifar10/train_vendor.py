"""Train a CIFAR-10 "vendor" classifier on the CPU and export it to ONNX.

    python bench/cifar10/train_vendor.py --arch resnet20 --epochs 10 --out bench/cache/cifar10
    python bench/cifar10/train_vendor.py --arch resnet20 --epochs 10 --out bench/cache/cifar10 --resume

Training: SGD (momentum 0.9, Nesterov, weight decay 5e-4), batch 128, OneCycle learning
rate (linear-in-cosine warm-up, cosine anneal), label smoothing 0.1, random crop with
4-px zero padding + horizontal flip done in numpy on the uint8 batch, then the project's
``Preprocess.parse("cifar10")`` normalisation. Every epoch is checkpointed atomically to
``{out}/{arch}_ckpt.pt``; ``--resume`` continues from it exactly (the shuffling/augment
RNG of epoch e is derived from (seed, e) only). Per-epoch train loss / test accuracy go
to ``{out}/{arch}_log.jsonl``.

At the end (or with ``--export-only``, from the checkpoint) it writes:
  {arch}.onnx      float, legacy exporter, opset 17, constant folding on (BN fused into Conv)
  {arch}_bn.onnx   float, constant folding off (BatchNormalization nodes kept)
  {arch}_qdq.onnx  int8 QDQ (onnxruntime quantize_static, per-tensor, U8 activations,
                   S8 weights, MinMax calibration on 512 training images)
  {arch}_summary.json  accuracies (onnxruntime, 10k test images), ORT-vs-torch parity,
                   params, epochs, seed, training time.
Each ONNX file carries ``nfdeploy.preprocess`` (``json.dumps(Preprocess.to_dict())``) in
its ``metadata_props``.
"""

from __future__ import annotations

import os

# Under CPU contention OpenMP's default spin-waiting burns several times the useful CPU
# time (measured: 3.3 s CPU per ResNet-20 step with 2 threads vs 0.64 s with 1); wait
# passively instead. Must be set before torch loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import io
import json
import math
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))
if str(_HERE.parents[1]) not in sys.path:  # the repo root, for an uninstalled nfdeploy
    sys.path.insert(1, str(_HERE.parents[1]))
from models import build, count_params  # noqa: E402

from nfdeploy.data import Preprocess, load_dataset  # noqa: E402
from nfdeploy.onnx import metadata as metadata_keys  # noqa: E402

DEFAULT_DATA = str(Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cifar10")
PREPROCESS_KEY = metadata_keys.PREPROCESS  # the one definition: nfdeploy.onnx.metadata
# Settings that must not change between a run and its --resume.
_RUN_KEYS = (
    "arch",
    "epochs",
    "seed",
    "batch_size",
    "lr",
    "wd",
    "warmup",
    "label_smoothing",
    "train_limit",
    "init_from",
)


# ----------------------------------------------------------------------------- helpers
def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; these files are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_torch_save(obj: object, path: Path) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def atomic_write_json(path: Path, obj: object) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def augment_batch(padded: np.ndarray, idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random 32x32 crop out of the 4-px zero-padded uint8 images + random horizontal flip."""
    n = len(idx)
    offs = rng.integers(0, 9, size=(n, 2))
    flip = rng.random(n) < 0.5
    out = np.empty((n, 32, 32, padded.shape[-1]), dtype=np.uint8)
    for k in range(n):
        dy, dx = offs[k]
        img = padded[idx[k], dy : dy + 32, dx : dx + 32]
        out[k] = img[:, ::-1] if flip[k] else img
    return out


def to_input(pre: Preprocess, images: np.ndarray, device: torch.device) -> torch.Tensor:
    x = torch.from_numpy(pre.apply(images)).to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def epochs_for_budget(
    args: argparse.Namespace,
    pre: Preprocess,
    images: np.ndarray,
    labels: np.ndarray,
    device: torch.device,
) -> int:
    """How many epochs (at most --epochs) fit in --budget seconds, from 20 timed steps of a
    scratch model (after 5 warm-up steps), plus a test pass per epoch."""
    model = build(args.arch).to(device, memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    rng = np.random.default_rng(0)
    padded = np.pad(images[: 25 * args.batch_size], ((0, 0), (4, 4), (4, 4), (0, 0)))
    y_all = torch.from_numpy(labels[: len(padded)]).to(device)
    t0 = 0.0
    for step in range(25):
        if step == 5:
            _sync(device)
            t0 = time.perf_counter()
        idx = np.arange(step * args.batch_size, (step + 1) * args.batch_size) % len(padded)
        loss = F.cross_entropy(
            model(to_input(pre, augment_batch(padded, idx, rng), device)), y_all[idx]
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss.item()
    _sync(device)
    step_s = (time.perf_counter() - t0) / 20
    epoch_s = step_s * math.ceil(len(images) / args.batch_size) * 1.15  # + test pass
    epochs = max(1, min(args.epochs, int(args.budget / epoch_s)))
    print(
        f"budget {args.budget:.0f} s: {step_s * 1e3:.1f} ms/step, ~{epoch_s:.1f} s/epoch -> "
        f"{epochs} epochs",
        file=sys.stderr,
        flush=True,
    )
    return epochs


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, x_test: torch.Tensor, y_test: torch.Tensor, batch: int = 1000
) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x_test), batch):
        correct += (model(x_test[i : i + batch]).argmax(1) == y_test[i : i + batch]).sum().item()
    return correct / len(x_test)


def make_schedule(opt: torch.optim.Optimizer, args: argparse.Namespace, steps_per_epoch: int):
    return torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=args.lr,
        total_steps=args.epochs * steps_per_epoch,
        pct_start=args.warmup,
        anneal_strategy="cos",
        div_factor=10.0,
        final_div_factor=100.0,
        cycle_momentum=False,
    )


# ----------------------------------------------------------------------------- training
def train(args: argparse.Namespace, out: Path, pre: Preprocess, train_ds, x_test, y_test) -> None:
    ckpt_path = out / f"{args.name}_ckpt.pt"
    log_path = out / f"{args.name}_log.jsonl"
    run_cfg = {k: getattr(args, k) for k in _RUN_KEYS}

    images, labels = train_ds.images, train_ds.labels
    if args.train_limit:
        images, labels = images[: args.train_limit], labels[: args.train_limit]
    n = len(images)
    padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))
    device = torch.device(args.device)
    labels_t = torch.from_numpy(labels).to(device)
    x_test, y_test = x_test.to(device), y_test.to(device)
    steps_per_epoch = math.ceil(n / args.batch_size)

    torch.manual_seed(args.seed)
    model = build(args.arch).to(device, memory_format=torch.channels_last)
    opt = torch.optim.SGD(
        model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=args.wd
    )
    sched = make_schedule(opt, args, steps_per_epoch)
    start_epoch, train_time, history = 0, 0.0, []
    prior_epochs, prior_time = 0, 0.0
    if args.init_from:
        # A further training stage (a warm restart with its own OneCycle schedule) that
        # starts from the weights of a finished run; optimizer state starts fresh.
        init = torch.load(args.init_from, map_location="cpu", weights_only=True)
        if init["config"]["arch"] != args.arch or init["epoch"] != init["config"]["epochs"]:
            raise SystemExit(f"--init-from {args.init_from}: not a finished {args.arch} run")
        model.load_state_dict(init["model"])
        prior_epochs = int(init["epoch"]) + int(init.get("prior_epochs", 0))
        prior_time = float(init["train_time"]) + float(init.get("prior_train_time", 0.0))

    if ckpt_path.exists():
        if not args.resume:
            raise SystemExit(f"{ckpt_path} exists: pass --resume to continue it, or delete it")
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        saved = ck["config"]
        diff = {k: (saved.get(k), v) for k, v in run_cfg.items() if saved.get(k) != v}
        if diff:
            raise SystemExit(f"--resume with different settings than the checkpoint: {diff}")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        start_epoch, train_time, history = ck["epoch"], float(ck["train_time"]), list(ck["history"])
        print(
            f"resuming {args.name} after epoch {start_epoch}/{args.epochs} "
            f"({train_time / 60:.1f} min so far)",
            file=sys.stderr,
            flush=True,
        )

    for epoch in range(start_epoch, args.epochs):
        t0 = time.perf_counter()
        rng = np.random.default_rng([args.seed, epoch])
        torch.manual_seed(args.seed * 100_003 + epoch)
        perm = rng.permutation(n)
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"{args.name} epoch {epoch + 1}/{args.epochs}",
            file=sys.stderr,
            mininterval=30,
            leave=True,
        )
        for s in bar:
            idx = perm[s * args.batch_size : (s + 1) * args.batch_size]
            x = to_input(pre, augment_batch(padded, idx, rng), device)
            y = labels_t[idx]
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=args.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)  # one sync per step
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(idx)
            if s % 20 == 0:
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", lr=f"{sched.get_last_lr()[0]:.4f}")
        bar.close()
        test_acc = evaluate(model, x_test, y_test)
        dt = time.perf_counter() - t0
        train_time += dt
        history.append(
            {
                "epoch": epoch + 1,
                "train_loss": round(loss_sum / seen, 5),
                "train_acc": round(correct / seen, 5),
                "test_acc": round(test_acc, 5),
                "lr_end": sched.get_last_lr()[0],
                "epoch_s": round(dt, 1),
                "elapsed_s": round(train_time, 1),
            }
        )
        atomic_torch_save(
            {
                "config": run_cfg,
                "model": model.state_dict(),
                "opt": opt.state_dict(),
                "sched": sched.state_dict(),
                "epoch": epoch + 1,
                "train_time": train_time,
                "history": history,
                "prior_epochs": prior_epochs,
                "prior_train_time": prior_time,
            },
            ckpt_path,
        )
        atomic_write_bytes(log_path, "".join(json.dumps(h) + "\n" for h in history).encode())
        print(
            f"{args.name} epoch {epoch + 1}/{args.epochs}: loss {loss_sum / seen:.4f} "
            f"train_acc {correct / seen:.4f} test_acc {test_acc:.4f} ({dt:.0f} s, "
            f"total {train_time / 60:.1f} min)",
            file=sys.stderr,
            flush=True,
        )


# ----------------------------------------------------------------------------- export
def _onnx_export(model: torch.nn.Module, x: torch.Tensor, fold: bool) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x,),
            buf,
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
            do_constant_folding=fold,
            training=torch.onnx.TrainingMode.EVAL,
        )
    return buf.getvalue()


def _with_metadata(data: bytes, props: dict[str, str]) -> bytes:
    import onnx

    from nfdeploy.onnx.metadata import merge_metadata

    proto = onnx.load_from_string(data)
    merge_metadata(proto, props)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def _session(path: Path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _ort_accuracy(
    path: Path, x: np.ndarray, y: np.ndarray, threads: int, batch: int = 500
) -> tuple[float, np.ndarray]:
    sess = _session(path, threads)
    preds = []
    for i in range(0, len(x), batch):
        preds.append(sess.run(["logits"], {"input": x[i : i + batch]})[0].argmax(1))
    pred = np.concatenate(preds)
    return float((pred == y).mean()), pred


def _op_counts(path: Path) -> dict[str, int]:
    import onnx

    counts: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def export(
    args: argparse.Namespace, out: Path, pre: Preprocess, train_ds, x_test_np, y_test_np
) -> dict:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    ckpt_path = out / f"{args.name}_ckpt.pt"
    ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    if ck["epoch"] != ck["config"]["epochs"]:
        raise SystemExit(
            f"{ckpt_path}: only {ck['epoch']}/{ck['config']['epochs']} epochs "
            "done; finish training (--resume) before exporting"
        )
    model = build(args.arch)
    model.load_state_dict(ck["model"])
    model.eval()
    history = list(ck["history"])
    t0 = time.perf_counter()

    props = {
        PREPROCESS_KEY: json.dumps(pre.to_dict()),
        "nfdeploy.vendor.arch": args.arch,
        "nfdeploy.vendor.dataset": "cifar10",
        "producer": "nfdeploy bench/cifar10/train_vendor.py",
    }
    x_test_t = torch.from_numpy(x_test_np)
    with torch.no_grad():
        torch_logits = torch.cat(
            [model(x_test_t[i : i + 500]) for i in range(0, len(x_test_t), 500)]
        ).numpy()
    torch_acc = float((torch_logits.argmax(1) == y_test_np).mean())

    paths = {
        "float": out / f"{args.name}.onnx",
        "float_bn": out / f"{args.name}_bn.onnx",
        "qdq": out / f"{args.name}_qdq.onnx",
    }
    dummy = x_test_t[:2]
    for key, fold in (("float", True), ("float_bn", False)):
        atomic_write_bytes(paths[key], _with_metadata(_onnx_export(model, dummy, fold), props))

    # int8 QDQ, per-tensor, calibrated on 512 (un-augmented) training images.
    calib_idx = np.sort(
        np.random.default_rng([args.seed, 12345]).permutation(len(train_ds.images))[: args.calib]
    )
    calib_x = pre.apply(train_ds.images[calib_idx])

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter([{"input": calib_x[i : i + 64]} for i in range(0, len(calib_x), 64)])

        def get_next(self):
            return next(self._it, None)

    with tempfile.TemporaryDirectory(dir=out) as tmp:
        tmp_out = Path(tmp) / "qdq.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_static(
                str(paths["float"]),
                str(tmp_out),
                _Reader(),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=False,
                calibrate_method=CalibrationMethod.MinMax,
            )
        atomic_write_bytes(
            paths["qdq"],
            _with_metadata(
                tmp_out.read_bytes(),
                {
                    **props,
                    "nfdeploy.vendor.quantization": f"QDQ int8 per-tensor (U8 activations, S8 weights), MinMax on {args.calib} "
                    "training images",
                },
            ),
        )

    results: dict[str, dict] = {}
    for key, path in paths.items():
        acc, pred = _ort_accuracy(path, x_test_np, y_test_np, args.threads)
        entry = {
            "path": str(path),
            "test_accuracy": acc,
            "agreement_with_torch": float((pred == torch_logits.argmax(1)).mean()),
            "ops": _op_counts(path),
        }
        if key != "qdq":
            sess = _session(path, args.threads)
            ort_logits = np.concatenate(
                [
                    sess.run(["logits"], {"input": x_test_np[i : i + 500]})[0]
                    for i in range(0, len(x_test_np), 500)
                ]
            )
            entry["max_abs_diff_vs_torch"] = float(np.abs(ort_logits - torch_logits).max())
        results[key] = entry
        print(f"{path.name}: test acc {acc:.4f}", file=sys.stderr, flush=True)

    summary = {
        "arch": args.arch,
        "name": args.name,
        "init_from": ck["config"].get("init_from"),
        "prior_epochs": int(ck.get("prior_epochs", 0)),
        "prior_train_time_s": round(float(ck.get("prior_train_time", 0.0)), 1),
        "total_epochs": int(ck.get("prior_epochs", 0)) + int(ck["config"]["epochs"]),
        "total_train_time_s": round(
            float(ck["train_time"]) + float(ck.get("prior_train_time", 0.0)), 1
        ),
        "params": count_params(model),
        "epochs": ck["config"]["epochs"],
        "seed": ck["config"]["seed"],
        "train_config": ck["config"],
        "train_time_s": round(float(ck["train_time"]), 1),
        "mean_epoch_s": round(float(ck["train_time"]) / max(1, ck["epoch"]), 1),
        "torch_threads": args.threads,
        "torch_version": torch.__version__,
        "torch_test_accuracy": torch_acc,
        "final_epoch": history[-1] if history else None,
        "test_images": len(y_test_np),
        "onnx": results,
        "export_time_s": round(time.perf_counter() - t0, 1),
        "preprocess": pre.to_dict(),
    }
    atomic_write_json(out / f"{args.name}_summary.json", summary)
    return summary


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", choices=("resnet20", "vgg_small"), required=True)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--out", type=Path, default=Path("bench/cache/cifar10"))
    p.add_argument("--data", default=DEFAULT_DATA, help="CIFAR-10 image-folder root")
    p.add_argument("--name", default=None, help="output file stem (default: the arch)")
    p.add_argument(
        "--init-from",
        default="",
        help="start from the weights of a finished run's checkpoint (a further "
        "stage with a fresh optimizer and its own OneCycle schedule)",
    )
    p.add_argument("--resume", action="store_true", help="continue from {out}/{arch}_ckpt.pt")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.2, help="OneCycle peak learning rate")
    p.add_argument("--wd", type=float, default=5e-4)
    p.add_argument("--warmup", type=float, default=0.2, help="OneCycle pct_start")
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch/ORT intra-op threads (1 is fastest on a busy 2-core box)",
    )
    p.add_argument("--calib", type=int, default=512, help="QDQ calibration images")
    p.add_argument("--train-limit", type=int, default=0, help="(smoke tests) first N train images")
    p.add_argument("--test-limit", type=int, default=0, help="(smoke tests) first N test images")
    p.add_argument("--export-only", action="store_true", help="export from a finished checkpoint")
    p.add_argument("--device", default="cpu", help="torch device for training: cpu, cuda, cuda:N")
    p.add_argument(
        "--budget",
        type=float,
        default=0.0,
        help="seconds for training: a fresh run trains min(--epochs, what fits) "
        "epochs, timed on 20 steps; a resumed run keeps its epochs",
    )
    p.add_argument("--no-export", action="store_true")
    args = p.parse_args(argv)
    args.name = args.name or args.arch
    if (
        args.init_from
        and Path(args.init_from).resolve() == (args.out / f"{args.name}_ckpt.pt").resolve()
    ):
        raise SystemExit("--init-from must differ from this run's own checkpoint; give --name")

    torch.set_num_threads(args.threads)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    pre = Preprocess.parse("cifar10")
    train_ds = load_dataset(args.data, split="train", progress=True)
    test_ds = load_dataset(args.data, split="test", progress=True)
    test_images, test_labels = test_ds.images, test_ds.labels
    if args.test_limit:
        test_images, test_labels = test_images[: args.test_limit], test_labels[: args.test_limit]
    x_test_np = pre.apply(test_images)

    if not args.export_only:
        ckpt_path = out / f"{args.name}_ckpt.pt"
        if args.budget and ckpt_path.exists():
            args.epochs = torch.load(ckpt_path, map_location="cpu", weights_only=True)["config"][
                "epochs"
            ]
        elif args.budget:
            n = args.train_limit or len(train_ds.images)
            args.epochs = epochs_for_budget(
                args, pre, train_ds.images[:n], train_ds.labels[:n], torch.device(args.device)
            )
        x_test = torch.from_numpy(x_test_np).contiguous(memory_format=torch.channels_last)
        train(args, out, pre, train_ds, x_test, torch.from_numpy(test_labels))
    if not args.no_export:
        summary = export(args, out, pre, train_ds, x_test_np, test_labels)
        print(json.dumps({k: v["test_accuracy"] for k, v in summary["onnx"].items()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
