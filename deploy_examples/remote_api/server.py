#!/usr/bin/env python3
"""A stand-in for a cloud model you cannot touch: the vendor ONNX model behind a tiny HTTP API.

Stdlib http.server + onnxruntime, bound to 127.0.0.1 only. With --ber the weights are
loaded once with a seeded fault pattern baked in (the same faults for every request, as on
a chip with undervolted SRAM), using the exact injection code of `nfdeploy validate`.

Protocol (see README.md):
  GET  /v1/info     -> JSON: input name/shape, output, fault settings, limits
  POST /v1/predict  body: raw little-endian float32 tensor bytes (C order)
                    headers: X-Shape: N,C,H,W   Content-Type: application/octet-stream
                             (optional) X-Dtype: float32
                    -> JSON {"shape": [N, K], "logits": [[...]], "predictions": [...]}
Open Inference Protocol (KServe v2 REST, as Triton and KServe serve it; model name: --name):
  GET  /v2/health/live, /v2/health/ready, /v2/models/NAME/ready -> {"live"|"ready": true}
  GET  /v2/models/NAME        -> model metadata: inputs/outputs with datatype FP32 and shape
  POST /v2/models/NAME/infer  body JSON {"inputs": [{"name", "shape": [N,C,H,W],
                              "datatype": "FP32", "data": [...]}]}
                              -> {"model_name", "outputs": [{"name", "shape": [N, K],
                                  "datatype": "FP32", "data": [... row-major ...]}]}
Errors are JSON {"error": "..."}: 400 malformed, 404 unknown path, 405 wrong method,
411 no Content-Length, 413 body over --max-bytes, 415 wrong Content-Type, 500 model failure.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import signal
import sys
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import unquote, urlsplit

import numpy as np

from nfdeploy.errors import NfdeployError
from nfdeploy.faults.spec import MAX_SEED
from nfdeploy.onnx import metadata as metadata_keys
from nfdeploy.runtime import load_model_checked, make_session, metadata_dict

HOST = "127.0.0.1"
PREPROCESS_KEY = metadata_keys.PREPROCESS  # the one definition: nfdeploy.onnx.metadata
ROUTES = {"/v1/predict": "POST", "/v1/info": "GET"}
V2_ROUTES = {"/v2": "GET", "/v2/health/live": "GET", "/v2/health/ready": "GET"}
V2_MODEL = re.compile(r"^/v2/models/([^/]+)(/ready|/infer)?$")
DRAIN_LIMIT = 16 << 20  # read (and drop) at most this much of a refused body
FLOAT32_NAMES = {"float32", "f4", "<f4", "float"}


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line instead of usage + error
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="server.py",
        description="Serve a vendor ONNX classifier on http://127.0.0.1 (optionally with seeded "
        "weight bit errors): POST /v1/predict, GET /v1/info.",
    )
    parser.add_argument("--model", required=True, help="the vendor's ONNX classifier")
    parser.add_argument("--host", default=HOST, help="only 127.0.0.1 is accepted (default)")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port (default 8765)")
    parser.add_argument("--ber", type=float, help="bit error rate of the stored weights, e.g. 0.01")
    parser.add_argument(
        "--fault-model", choices=["stuck-at", "flip"], help="how bits fail (default stuck-at)"
    )
    parser.add_argument(
        "--seed", type=int, help="fault pattern seed (default 50000, the first validate trial)"
    )
    parser.add_argument(
        "--max-bytes", type=int, default=8 << 20, help="largest request body (default 8 MiB)"
    )
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0 = auto)")
    parser.add_argument(
        "--name", help="model name in the /v2/models/NAME routes (default: the file's stem)"
    )
    parser.add_argument("--quiet", action="store_true", help="do not log requests")
    return parser


# --------------------------------------------------------------------------- model
class Predictor:
    """The served model: one onnxruntime session, faults (if any) baked in at start-up."""

    def __init__(self, args: argparse.Namespace) -> None:
        path = Path(args.model)
        self.fault: dict[str, Any] | None = None
        if args.ber is None:
            if args.fault_model is not None or args.seed is not None:
                raise UsageError("--fault-model and --seed need --ber (the bit error rate)")
            from nfdeploy.runtime.batching import make_batch_dynamic

            proto = load_model_checked(path)
            metadata = metadata_dict(proto)
            model_bytes = make_batch_dynamic(proto).model.SerializeToString()
        else:
            model_bytes, metadata = self._faulty(path, args)
        self.session = make_session(model_bytes, threads=args.threads)
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].type != "tensor(float)":
            raise UsageError(
                f"{path}: expected one float32 (N, C, H, W) input, got "
                + ", ".join(f"{i.name} {i.type} {i.shape}" for i in inputs)
            )
        self.name = getattr(args, "name", None) or path.stem
        self.input_name = inputs[0].name
        self.dims = [d if isinstance(d, int) and d > 0 else None for d in inputs[0].shape]
        self.output = self.session.get_outputs()[0]
        self.info = {
            "model": path.name,
            "input": {"name": self.input_name, "shape": self.dims, "dtype": "float32"},
            "output": {"name": self.output.name, "shape": self.output.shape},
            "preprocess": json.loads(metadata[PREPROCESS_KEY])
            if PREPROCESS_KEY in metadata
            else None,
            "fault": self.fault,
            "max_bytes": args.max_bytes,
            "protocol": "POST /v1/predict: raw little-endian float32 C-order bytes, "
            "header X-Shape: N,C,H,W",
        }

    def _faulty(self, path: Path, args: argparse.Namespace) -> tuple[bytes, dict[str, str]]:
        from nfdeploy.faults.onnx_model import load_faultable
        from nfdeploy.faults.spec import EVAL_SEED_START, FaultModel, FaultSpec

        model = load_faultable(path)
        if not model.targets:
            raise UsageError(f"{path}: no Conv/Gemm/MatMul weights to put faults into")
        spec = FaultSpec(FaultModel(args.fault_model or "stuck-at"), args.ber, model.storage)
        seed = EVAL_SEED_START if args.seed is None else args.seed
        model_bytes, changed = model.faulty_bytes(spec, seed=seed)
        self.fault = {**spec.to_dict(), "seed": seed, "bits_changed": changed,
                      "stored_bytes": model.stored_bytes()}  # fmt: skip
        return model_bytes, model.metadata

    def check_shape(self, shape: list[int], label: str = "X-Shape") -> str | None:
        if len(shape) != 4 or any(d < 1 for d in shape):
            return f"{label} {shape}: need 4 positive sizes N,C,H,W"
        for axis, (got, want) in enumerate(zip(shape[1:], self.dims[1:], strict=True), 1):
            if want is not None and got != want:
                expected = ",".join("N" if d is None else str(d) for d in self.dims)
                return f"{label} {','.join(map(str, shape))}: axis {axis} must be {want} (model input is {expected})"
        return None

    def v2_metadata(self) -> dict[str, Any]:
        """Model metadata as the Open Inference Protocol defines it (-1 = any size)."""
        out_shape = [d if isinstance(d, int) and d > 0 else -1 for d in self.output.shape]
        return {
            "name": self.name,
            "versions": ["1"],
            "platform": "onnxruntime_onnx",
            "inputs": [
                {"name": self.input_name, "datatype": "FP32",
                 "shape": [-1 if d is None else d for d in self.dims]}
            ],
            "outputs": [{"name": self.output.name, "datatype": "FP32", "shape": out_shape}],
            "parameters": {"preprocess": self.info["preprocess"], "fault": self.fault},
        }  # fmt: skip

    def predict(self, x: np.ndarray) -> np.ndarray:
        fixed = self.dims[0]
        if fixed is None:
            return np.asarray(self.session.run(None, {self.input_name: x})[0])
        outputs = []
        for start in range(0, len(x), fixed):
            chunk = x[start : start + fixed]
            n = len(chunk)
            if n < fixed:
                chunk = np.concatenate(
                    [chunk, np.zeros((fixed - n, *chunk.shape[1:]), chunk.dtype)]
                )
            outputs.append(np.asarray(self.session.run(None, {self.input_name: chunk})[0])[:n])
        return np.concatenate(outputs)


# --------------------------------------------------------------------------- HTTP
class PredictServer(ThreadingHTTPServer):
    daemon_threads = True
    # listen() backlog: socketserver's default of 5 reset about 1% of connections at 20
    # concurrent clients; the kernel caps this at net.core.somaxconn (4096 on current Linux).
    request_queue_size = 1024

    def __init__(self, port: int, predictor: Predictor, max_bytes: int, quiet: bool) -> None:
        self.predictor, self.max_bytes, self.quiet = predictor, max_bytes, quiet
        super().__init__((HOST, port), Handler)


class Handler(BaseHTTPRequestHandler):
    server_version = "nfdeploy-remote-api/1"
    timeout = 30  # seconds a client may stall mid-request

    @property
    def app(self) -> PredictServer:
        assert isinstance(self.server, PredictServer)
        return self.server

    def log_message(self, format: str, *args: Any) -> None:
        if not self.app.quiet:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    # One dispatcher for every method: unknown path -> 404, known path + other method -> 405.
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        path = urlsplit(self.path).path
        if path in V2_ROUTES or V2_MODEL.match(path):
            self._v2(method, path)
        elif path not in ROUTES:
            self._send(404, {"error": f"no such endpoint {path}; try GET /v1/info"})
        elif method != ROUTES[path]:
            self._send(
                405, {"error": f"{path} accepts {ROUTES[path]}, not {method}"},
                headers={"Allow": ROUTES[path]},
            )  # fmt: skip
        elif path == "/v1/info":
            self._send(200, self.app.predictor.info)
        else:
            self._predict()

    def _v2(self, method: str, path: str) -> None:
        """The Open Inference Protocol routes (KServe v2 REST)."""
        match = V2_MODEL.match(path)
        want = "POST" if match and match.group(2) == "/infer" else "GET"
        if method != want:
            self._send(405, {"error": f"{path} accepts {want}, not {method}"}, {"Allow": want})
            return
        predictor = self.app.predictor
        if match is None:
            body: dict[str, Any] = {
                "/v2": {"name": "nfdeploy-remote-api", "version": "1", "extensions": []},
                "/v2/health/live": {"live": True},
                "/v2/health/ready": {"ready": True},
            }[path]
            self._send(200, body)
            return
        name, action = unquote(match.group(1)), match.group(2)
        if name != predictor.name:
            self._send(
                404, {"error": f"unknown model {name!r}; this server serves {predictor.name!r}"}
            )
        elif action is None:
            self._send(200, predictor.v2_metadata())
        elif action == "/ready":
            self._send(200, {"name": name, "ready": True})
        else:
            self._infer_v2()

    def _infer_v2(self) -> None:
        predictor = self.app.predictor
        length = self._content_length()
        if length is None:
            return
        content_type = self.headers.get("Content-Type", "application/json")
        if content_type.split(";")[0].strip().lower() != "application/json":
            self._refuse(415, f"Content-Type {content_type!r}: send application/json", length)
            return
        if self.headers.get("Inference-Header-Content-Length") is not None:
            self._refuse(
                400, "the binary tensor data extension is not supported; send JSON data", length
            )
            return
        try:
            body = self.rfile.read(length)
        except OSError:
            self.close_connection = True
            return
        try:
            request = json.loads(body)
            inputs = request["inputs"]
            if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
                raise ValueError("'inputs' must hold exactly one tensor")
            tensor = inputs[0]
            if tensor.get("name") != predictor.input_name:
                raise ValueError(
                    f"input name {tensor.get('name')!r}: the model's input is {predictor.input_name!r}"
                )
            if tensor.get("datatype") != "FP32":
                raise ValueError(f"datatype {tensor.get('datatype')!r}: only FP32 is accepted")
            shape = tensor["shape"]
            if not isinstance(shape, list) or not all(type(d) is int for d in shape):
                raise ValueError("'shape' must be a list of integers")
        except (ValueError, KeyError, TypeError) as exc:
            text = exc.args[0] if isinstance(exc, ValueError) and exc.args else f"missing {exc}"
            self._send(400, {"error": f"bad inference request: {text}"})
            return
        problem = predictor.check_shape(shape, label="shape")
        if problem:
            self._send(400, {"error": problem})
            return
        try:
            x = np.asarray(tensor["data"], dtype=np.float32)
        except (KeyError, ValueError, TypeError):
            self._send(400, {"error": "'data' must be a list of numbers"})
            return
        if x.size != math.prod(shape):
            self._send(
                400,
                {
                    "error": f"'data' holds {x.size} values but shape {shape} needs {math.prod(shape)}"
                },
            )
            return
        logits = self._logits_or_error(predictor, x.reshape(shape))
        if logits is None:
            return
        answer: dict[str, Any] = {
            "model_name": predictor.name,
            "model_version": "1",
            "outputs": [
                {"name": predictor.output.name, "datatype": "FP32", "shape": list(logits.shape),
                 "data": logits.astype(np.float32).ravel().tolist()}
            ],
        }  # fmt: skip
        if isinstance(request.get("id"), str):
            answer["id"] = request["id"]
        self._send(200, answer)

    def _content_length(self) -> int | None:
        """The declared body length, or None after answering 411 / 400 / 413."""
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            self._send(411, {"error": "Content-Length header required"})
            return None
        try:
            length = int(raw_length)
            if length < 0:
                raise ValueError
        except ValueError:
            self._refuse(400, f"bad Content-Length {raw_length!r}", 0)
            return None
        if length > self.app.max_bytes:
            self._refuse(
                413, f"body of {length} bytes exceeds the server limit of {self.app.max_bytes} "
                "bytes; send fewer images per request", length,
            )  # fmt: skip
            return None
        return length

    def _logits_or_error(self, predictor: Any, x: np.ndarray) -> np.ndarray | None:
        """The model's logits for ``x``; None once a 400/500 answer has been sent."""
        if not np.isfinite(x).all():
            self._send(400, {"error": "tensor holds NaN or infinite values"})
            return None
        try:
            return predictor.predict(x)  # type: ignore[no-any-return]
        except Exception as exc:
            text = str(exc).strip()
            line = text.splitlines()[0] if text else type(exc).__name__
            self._send(500, {"error": f"model failed: {line}"})
            return None

    def _send(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _refuse(self, status: int, message: str, unread: int) -> None:
        """Answer an error before the body is read; drop a bounded amount of it first so the
        client's socket is not reset before it reads the answer."""
        if 0 < unread <= DRAIN_LIMIT:
            try:
                while unread > 0:
                    chunk = self.rfile.read(min(unread, 1 << 16))
                    if not chunk:
                        break
                    unread -= len(chunk)
            except OSError:
                pass
        self.close_connection = True
        self._send(status, {"error": message})

    def _predict(self) -> None:
        predictor = self.app.predictor
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            self._send(411, {"error": "Content-Length header required"})
            return
        try:
            length = int(raw_length)
            if length < 0:
                raise ValueError
        except ValueError:
            self._refuse(400, f"bad Content-Length {raw_length!r}", 0)
            return
        if length > self.app.max_bytes:
            self._refuse(
                413, f"body of {length} bytes exceeds the server limit of {self.app.max_bytes} "
                "bytes; send fewer images per request", length,
            )  # fmt: skip
            return
        content_type = self.headers.get("Content-Type", "application/octet-stream")
        if content_type.split(";")[0].strip().lower() != "application/octet-stream":
            self._refuse(
                415, f"Content-Type {content_type!r}: send application/octet-stream", length
            )
            return
        dtype = self.headers.get("X-Dtype", "float32").strip().lower()
        if dtype not in FLOAT32_NAMES:
            self._refuse(400, f"X-Dtype {dtype!r}: only little-endian float32 is accepted", length)
            return
        raw_shape = self.headers.get("X-Shape")
        if raw_shape is None:
            self._refuse(400, "X-Shape header required (N,C,H,W of the float32 tensor)", length)
            return
        try:
            shape = [int(s) for s in raw_shape.split(",")]
        except ValueError:
            self._refuse(400, f"X-Shape {raw_shape!r}: expected integers N,C,H,W", length)
            return
        problem = predictor.check_shape(shape)
        if problem:
            self._refuse(400, problem, length)
            return
        need = math.prod(shape) * 4  # Python ints: a huge X-Shape must not wrap around
        if need != length:
            self._refuse(
                400,
                f"body has {length} bytes but X-Shape {raw_shape} needs {need} (float32)",
                length,
            )
            return
        try:
            body = self.rfile.read(length)
        except OSError:
            self.close_connection = True
            return
        if len(body) != length:
            self._send(400, {"error": f"body ended after {len(body)} of {length} bytes"})
            return
        x = np.frombuffer(body, dtype="<f4").reshape(shape).astype(np.float32)
        logits = self._logits_or_error(predictor, x)
        if logits is None:
            return
        self._send(
            200,
            {
                "shape": list(logits.shape),
                "logits": logits.astype(np.float32).tolist(),
                "predictions": logits.reshape(len(x), -1).argmax(axis=1).tolist(),
            },
        )


# --------------------------------------------------------------------------- main
def serve(args: argparse.Namespace) -> int:
    if args.host != HOST:
        raise UsageError(
            f"--host {args.host}: this example only binds to {HOST} (loopback); put a real "
            "gateway in front of it to expose a model"
        )
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: must be 0..65535 (0 = any free port)")
    if args.max_bytes < 1:
        raise UsageError(f"--max-bytes {args.max_bytes}: must be >= 1")
    if args.seed is not None and not 0 <= args.seed <= MAX_SEED:
        raise UsageError(f"--seed {args.seed}: must be 0..{MAX_SEED} (2**63 - 1)")
    if args.threads < 0:
        raise UsageError(f"--threads {args.threads}: must be >= 0 (0 = auto)")
    if args.ber is not None and not 0.0 <= args.ber <= 1.0:
        raise UsageError(f"--ber {args.ber}: a bit error rate is a number in [0, 1], e.g. 0.01")
    predictor = Predictor(args)
    try:
        server = PredictServer(args.port, predictor, args.max_bytes, args.quiet)
    except OSError as exc:
        raise UsageError(f"cannot listen on {HOST}:{args.port}: {exc.strerror or exc}") from None

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)  # `kill PID` shuts down cleanly, exit status 0
    port = server.server_address[1]
    fault = predictor.fault
    faults = (
        f"faults: {fault['fault_model']} p={fault['ber']:g} seed {fault['seed']}, "
        f"{fault['bits_changed']} bits changed"
        if fault
        else "no faults"
    )
    print(f"serving {args.model} on http://{HOST}:{port} ({faults})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return serve(args)
    except (UsageError, NfdeployError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
