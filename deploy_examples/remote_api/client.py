#!/usr/bin/env python3
"""Call a remote model you cannot change, with NeuralFuse applied on your side.

The generator runs locally (onnxruntime); only the fused tensor F(x) = clip(x + G(x)) goes
over the wire, so the served model stays exactly as its owner deployed it.

    # classify image files through G -> remote model
    python deploy_examples/remote_api/client.py --url http://127.0.0.1:8765 \
        --generator run/generator.onnx cat.png dog.jpg
    # accuracy on a labelled .npz (x uint8 NHWC, y labels), without and with G
    python deploy_examples/remote_api/client.py --url http://127.0.0.1:8765 \
        --generator run/generator.onnx --compare test.npz
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote, urlsplit

import numpy as np
from PIL import Image, UnidentifiedImageError

from nfdeploy.data import Preprocess, load_dataset
from nfdeploy.errors import NfdeployError
from nfdeploy.onnx import metadata as metadata_keys
from nfdeploy.runtime import load_model_checked, make_session, metadata_dict

PREPROCESS_KEY = metadata_keys.PREPROCESS  # the one definition: nfdeploy.onnx.metadata
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


class UsageError(Exception):
    """Bad input from the user or an error answer from the server: one line, exit status 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line instead of usage + error
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="client.py",
        description="Apply generator.onnx locally and send the fused tensor to a served model "
        "(server.py's protocol); classify images, or --compare accuracy without/with G.",
    )
    parser.add_argument("images", nargs="*", help="image files or folders to classify")
    parser.add_argument("--url", default="http://127.0.0.1:8765", help="server base URL")
    parser.add_argument("--generator", help="generator.onnx (omit to send inputs unchanged)")
    parser.add_argument(
        "--compare", metavar="DATA", help="labelled data (.npz with x uint8 NHWC and y, or any "
        "nfdeploy data spec): print accuracy without and with the generator",
    )  # fmt: skip
    parser.add_argument("--limit", type=int, help="use only this many images of --compare data")
    parser.add_argument(
        "--preprocess", help="override the preprocessing (default: generator's, then server's)"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="images per request (max)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--protocol", choices=["v1", "v2"], default="v1",
        help="v1: server.py's raw-tensor API; v2: the Open Inference Protocol (KServe v2 REST, "
        "as Triton, KServe and server.py serve it), needs --model-name",
    )  # fmt: skip
    parser.add_argument("--model-name", help="with --protocol v2: the NAME in /v2/models/NAME")
    return parser


# --------------------------------------------------------------------------- server
class Remote:
    def __init__(
        self,
        url: str,
        timeout: float,
        *,
        protocol: str = "v1",
        model_name: str | None = None,
        batch_size: int = 64,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(f"--url {url!r}: expected http://HOST:PORT")
        self.url, self.timeout = url.rstrip("/"), timeout
        self.protocol, self.batch_size = protocol, batch_size
        if protocol == "v2":
            self._open_v2(model_name)
            return
        self.info = self._call(urllib.request.Request(f"{self.url}/v1/info"))
        try:
            dims = self.info["input"]["shape"]
            self.chw = [d if isinstance(d, int) else None for d in dims[1:]]
            self.max_bytes = int(self.info["max_bytes"])
        except (KeyError, TypeError, ValueError, IndexError):
            raise UsageError(f"{self.url}/v1/info: not a server.py-style answer") from None

    def _open_v2(self, model_name: str | None) -> None:
        """Model metadata from an Open Inference Protocol server (Triton, KServe, server.py)."""
        if not model_name:
            raise UsageError("--protocol v2 needs --model-name NAME (the /v2/models/NAME route)")
        self.model_url = f"{self.url}/v2/models/{quote(model_name, safe='')}"
        meta = self._call(urllib.request.Request(self.model_url))
        try:
            tensor = meta["inputs"][0]
            self.input_name = str(tensor["name"])
            if tensor.get("datatype", "FP32") != "FP32":
                raise UsageError(f"{self.model_url}: input datatype {tensor['datatype']}, not FP32")
            dims = tensor["shape"]
            self.chw = [d if isinstance(d, int) and d > 0 else None for d in dims[1:]]
            if len(self.chw) != 3:
                raise UsageError(f"{self.model_url}: input shape {dims} is not N,C,H,W")
        except (KeyError, TypeError, IndexError):
            raise UsageError(f"{self.model_url}: not an Open Inference Protocol answer") from None
        params = meta.get("parameters")
        params = params if isinstance(params, dict) else {}
        self.info = {"preprocess": params.get("preprocess"), "fault": params.get("fault")}

    def _predict_v2(self, x: np.ndarray) -> np.ndarray:
        outputs = []
        for start in range(0, len(x), self.batch_size):
            chunk = np.ascontiguousarray(x[start : start + self.batch_size], dtype=np.float32)
            payload = {"inputs": [{"name": self.input_name, "shape": list(chunk.shape),
                                   "datatype": "FP32", "data": _compact(chunk)}]}  # fmt: skip
            request = urllib.request.Request(
                f"{self.model_url}/infer", data=json.dumps(payload).encode(), method="POST",
                headers={"Content-Type": "application/json"},
            )  # fmt: skip
            answer = self._call(request)
            try:
                out = answer["outputs"][0]
                logits = np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])
            except (KeyError, TypeError, ValueError, IndexError):
                raise UsageError(
                    f"{self.model_url}/infer: answer without an output tensor"
                ) from None
            if logits.ndim != 2 or len(logits) != len(chunk):
                raise UsageError(f"{self.model_url}/infer: output of shape {logits.shape}")
            outputs.append(logits)
        return np.concatenate(outputs)

    def _call(self, request: urllib.request.Request) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                detail = _error_text(exc.read())
            raise UsageError(f"{request.full_url}: server answered {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise UsageError(
                f"cannot reach {request.full_url} ({reason}); is server.py running?"
            ) from None
        try:
            answer = json.loads(body)
        except ValueError:
            raise UsageError(f"{request.full_url}: the answer is not JSON") from None
        if not isinstance(answer, dict):
            raise UsageError(f"{request.full_url}: unexpected answer")
        return answer

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Logits for float32 (N, C, H, W), in requests that fit the server's size limit."""
        if self.protocol == "v2":
            return self._predict_v2(x)
        per_image = int(np.prod(x.shape[1:])) * 4
        step = self.max_bytes // per_image
        if step < 1:
            raise UsageError(
                f"the server's limit of {self.max_bytes} bytes is below one input ({per_image} bytes)"
            )
        outputs = []
        for start in range(0, len(x), step):
            chunk = np.ascontiguousarray(x[start : start + step], dtype="<f4")
            request = urllib.request.Request(
                f"{self.url}/v1/predict", data=chunk.tobytes(), method="POST",
                headers={"Content-Type": "application/octet-stream", "X-Dtype": "float32",
                         "X-Shape": ",".join(map(str, chunk.shape))},
            )  # fmt: skip
            answer = self._call(request)
            try:
                logits = np.asarray(answer["logits"], dtype=np.float32)
            except (KeyError, TypeError, ValueError):
                raise UsageError(f"{self.url}/v1/predict: answer without logits") from None
            if logits.ndim != 2 or len(logits) != len(chunk):
                raise UsageError(f"{self.url}/v1/predict: logits of shape {logits.shape}")
            outputs.append(logits)
        return np.concatenate(outputs)


def _compact(x: np.ndarray) -> list[float]:
    """float32 values as the shortest decimals that read back exactly (9 significant digits)."""
    return [float(f"{v:.9g}") for v in x.ravel().tolist()]


def _error_text(body: bytes) -> str:
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return (
            body.decode(errors="replace").strip().splitlines()[0] if body.strip() else "no details"
        )


# --------------------------------------------------------------------------- local side
class Generator:
    def __init__(self, path: str, chw: list[int | None]) -> None:
        proto = load_model_checked(path)
        self.path, self.metadata = path, metadata_dict(proto)
        self.session = make_session(proto.SerializeToString())
        info = self.session.get_inputs()[0]
        self.name = info.name
        dims = [d if isinstance(d, int) else None for d in info.shape]
        if len(dims) != 4 or any(
            g is not None and s is not None and g != s for g, s in zip(dims[1:], chw, strict=True)
        ):
            raise UsageError(
                f"{path}: generator input {info.shape} does not match the served model's input "
                f"(C,H,W) = {tuple(chw)}; export the generator for that model"
            )

    def __call__(self, x: np.ndarray, batch_size: int) -> np.ndarray:
        return np.concatenate(
            [
                np.asarray(self.session.run(None, {self.name: x[i : i + batch_size]})[0])
                for i in range(0, len(x), batch_size)
            ]
        ).astype(np.float32, copy=False)


def resolve_preprocess(
    args: argparse.Namespace, gen: Generator | None, remote: Remote
) -> Preprocess:
    """--preprocess, else the generator's stored spec, else what /v1/info reports, else 'unit'."""
    if args.preprocess:
        pre = Preprocess.parse(args.preprocess)
    elif gen is not None and PREPROCESS_KEY in gen.metadata:
        try:
            pre = Preprocess.from_dict(json.loads(gen.metadata[PREPROCESS_KEY]))
        except json.JSONDecodeError:
            raise UsageError(f"{gen.path}: metadata {PREPROCESS_KEY!r} is not JSON") from None
    elif isinstance(remote.info.get("preprocess"), dict):
        pre = Preprocess.from_dict(remote.info["preprocess"])
    else:
        print("note: no preprocessing known; assuming 'unit' (pixels / 255)", file=sys.stderr)
        pre = Preprocess.parse("unit")
    c, h, w = remote.chw
    return replace(pre, channels=c or pre.channels, height=h or pre.height, width=w or pre.width)


def collect_images(paths: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise UsageError(f"{path}: folder holds no .png/.jpg/.jpeg images")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"{path}: no such file or folder")
    return files


def load_images(files: Sequence[Path], pre: Preprocess) -> np.ndarray:
    arrays = []
    for path in files:
        try:
            with Image.open(path) as img:
                pixels = np.asarray(img.convert("L" if pre.channels == 1 else "RGB"), np.uint8)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            raise UsageError(f"{path}: cannot read image (not a PNG/JPEG image?)") from None
        arrays.append(pre.apply(pixels[None] if pixels.ndim == 3 else pixels[None, ..., None]))
    return np.concatenate(arrays)


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits.astype(np.float64) - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------- main
def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise UsageError(f"--batch-size {args.batch_size}: must be >= 1")
    if bool(args.compare) == bool(args.images):
        raise UsageError("give image files to classify, or --compare DATA (not both)")
    if args.compare and not args.generator:
        raise UsageError("--compare needs --generator (it compares without and with G)")
    files = collect_images(args.images)  # before any network traffic
    remote = Remote(
        args.url, args.timeout, protocol=args.protocol, model_name=args.model_name,
        batch_size=args.batch_size,
    )  # fmt: skip
    gen = Generator(args.generator, remote.chw) if args.generator else None
    pre = resolve_preprocess(args, gen, remote)
    if args.compare:
        return compare(args, remote, gen, pre)
    x = load_images(files, pre)
    probs = softmax(remote.predict(gen(x, args.batch_size) if gen else x))
    records: list[dict[str, Any]] = [
        {"path": str(f), "class": int(p.argmax()), "confidence": round(float(p.max()), 6)}
        for f, p in zip(files, probs, strict=True)
    ]
    if args.json:
        print(
            json.dumps(
                {"url": remote.url, "fault": remote.info.get("fault"), "predictions": records},
                indent=2,
            )
        )
    else:
        for r in records:
            print(f"{r['path']}: class {r['class']} {r['confidence'] * 100:.1f}%")
    return 0


def compare(
    args: argparse.Namespace, remote: Remote, gen: Generator | None, pre: Preprocess
) -> int:
    assert gen is not None
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit {args.limit}: must be >= 1")
    data = load_dataset(args.compare, split="test", limit=args.limit, progress=False)
    x = pre.apply(data.images)
    without = remote.predict(x).argmax(axis=1)
    with_g = remote.predict(gen(x, args.batch_size)).argmax(axis=1)
    acc_without = float(np.mean(without == data.labels))
    acc_with = float(np.mean(with_g == data.labels))
    fault = remote.info.get("fault")
    if args.json:
        print(json.dumps({
            "url": remote.url, "images": len(x), "fault": fault,
            "accuracy_without_generator": acc_without, "accuracy_with_generator": acc_with,
        }, indent=2))  # fmt: skip
        return 0
    faults = (
        f"{fault['fault_model']} p={fault['ber']:g} seed {fault['seed']}"
        if fault
        else "none reported"
    )
    print(f"server: {remote.url} (faults: {faults})")
    print(f"data: {len(x)} images from {args.compare}")
    print(
        f"accuracy without G: {acc_without * 100:5.1f}%  ({int((without == data.labels).sum())}/{len(x)})"
    )
    print(
        f"accuracy with G:    {acc_with * 100:5.1f}%  ({int((with_g == data.labels).sum())}/{len(x)})"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
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
