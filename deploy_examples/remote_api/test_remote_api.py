"""Smoke test: a faulty model served on 127.0.0.1, called through client.py with G applied locally.

Everything stays on the loopback interface; the server runs in a torch-blocked subprocess on
an ephemeral port and is stopped (SIGTERM, clean exit) by the last test.
"""

from __future__ import annotations

import http.client
import json
import re
import selectors
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from nfdeploy.data import Preprocess
from nfdeploy.faults.onnx_model import load_faultable
from nfdeploy.faults.spec import FaultModel, FaultSpec
from nfdeploy.runtime import make_session

HERE = Path(__file__).resolve().parent
SERVER, CLIENT = HERE / "server.py", HERE / "client.py"
REPO = HERE.parents[1]
BER, SEED, MAX_BYTES = 0.05, 50001, 4096  # 4096 bytes = 5 images of 3x8x8 float32 per request
PREPROCESS = {"channels": 3, "height": 8, "width": 8, "scale": 1 / 255, "mean": [0.5], "std": [0.5]}


@pytest.fixture(scope="module")
def server(
    tiny_models: dict[str, Path],
    torch_free_argv: Callable[..., list[str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    log = tmp_path_factory.mktemp("remote_api") / "server.log"
    argv = torch_free_argv(
        SERVER, "--model", str(tiny_models["vendor"]), "--port", "0", "--ber", str(BER),
        "--fault-model", "flip", "--seed", str(SEED), "--max-bytes", str(MAX_BYTES),
        "--threads", "1", "--quiet",
    )  # fmt: skip
    with open(log, "w") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True, cwd=REPO)
    assert proc.stdout is not None
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            ready = selector.select(timeout=30)
        line = proc.stdout.readline() if ready else ""
        match = re.search(r"http://127\.0\.0\.1:(\d+) ", line)
        assert match, f"server did not start: {line!r} {log.read_text()}"
        yield {"port": int(match.group(1)), "proc": proc, "log": log}
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()


def call(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read())
    finally:
        conn.close()


def tensor_headers(shape: str) -> dict[str, str]:
    return {"Content-Type": "application/octet-stream", "X-Shape": shape}


@pytest.fixture(scope="module")
def faulty_vendor(
    tiny_models: dict[str, Path],
) -> tuple[ort.InferenceSession, ort.InferenceSession]:
    """(faulty, clean) sessions of the vendor, built in-process with the server's settings."""
    model = load_faultable(tiny_models["vendor"])
    faulty, changed = model.faulty_bytes(FaultSpec(FaultModel.FLIP, BER, model.storage), seed=SEED)
    assert changed > 0
    clean = make_session(tiny_models["vendor"].read_bytes(), threads=1)
    return make_session(faulty, threads=1), clean


def test_info_and_predict(
    server: dict[str, Any], faulty_vendor: tuple[ort.InferenceSession, ort.InferenceSession]
) -> None:
    status, _, info = call(server["port"], "GET", "/v1/info")
    assert status == 200
    assert info["input"] == {"name": "input", "shape": [None, 3, 8, 8], "dtype": "float32"}
    assert info["fault"]["fault_model"] == "flip" and info["fault"]["ber"] == BER
    assert info["fault"]["seed"] == SEED and info["fault"]["bits_changed"] > 0
    assert info["max_bytes"] == MAX_BYTES
    x = np.random.default_rng(3).uniform(-1, 1, (3, 3, 8, 8)).astype("<f4")
    status, _, answer = call(
        server["port"], "POST", "/v1/predict", x.tobytes(), tensor_headers("3,3,8,8")
    )
    assert status == 200, answer
    faulty, clean = faulty_vendor
    expected = faulty.run(None, {"input": x})[0]
    assert answer["shape"] == [3, 5]
    np.testing.assert_allclose(
        np.asarray(answer["logits"], np.float32), expected, rtol=1e-5, atol=1e-5
    )
    assert answer["predictions"] == expected.argmax(1).tolist()
    # The served weights really are faulty: the answer is not the clean model's.
    assert not np.allclose(answer["logits"], clean.run(None, {"input": x})[0], atol=1e-3)


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "message"),
    [
        ("POST", "/v1/predict", b"\0" * 5000, tensor_headers("1,3,8,8"), 413, "exceeds the server limit"),
        ("POST", "/v1/predict", b"\0" * 972, tensor_headers("1,3,9,9"), 400, "axis 2 must be 8"),
        ("POST", "/v1/predict", b"\0" * 768, tensor_headers("3,8,8"), 400, "need 4 positive sizes"),
        ("POST", "/v1/predict", b"\0" * 768, tensor_headers("1,3,8,x"), 400, "expected integers"),
        ("POST", "/v1/predict", b"\0" * 768, {"Content-Type": "application/octet-stream"}, 400, "X-Shape header required"),
        ("POST", "/v1/predict", b"\0" * 700, tensor_headers("1,3,8,8"), 400, "needs 768"),
        ("POST", "/v1/predict", b"\0" * 768, {**tensor_headers("1,3,8,8"), "X-Dtype": "float64"}, 400, "only little-endian float32"),
        ("POST", "/v1/predict", np.full(192, np.nan, "<f4").tobytes(), tensor_headers("1,3,8,8"), 400, "NaN"),
        ("POST", "/v1/predict", b"{}", {"Content-Type": "application/json", "X-Shape": "1,3,8,8"}, 415, "application/octet-stream"),
        ("GET", "/v1/nothing", None, {}, 404, "no such endpoint"),
        ("GET", "/v1/predict", None, {}, 405, "accepts POST"),
        ("DELETE", "/v1/info", None, {}, 405, "accepts GET"),
    ],
)  # fmt: skip
def test_bad_requests(
    server: dict[str, Any],
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
    status: int,
    message: str,
) -> None:
    got, response_headers, answer = call(server["port"], method, path, body, headers)
    assert got == status and message in answer["error"], answer
    if status == 405:
        assert response_headers["Allow"] in ("GET", "POST")


def test_huge_declared_body_refused_unread(server: dict[str, Any]) -> None:
    """A 1 GB Content-Length is refused from the headers alone (no body is sent)."""
    conn = http.client.HTTPConnection("127.0.0.1", server["port"], timeout=10)
    try:
        conn.putrequest("POST", "/v1/predict")
        for key, value in {**tensor_headers("1,3,8,8"), "Content-Length": str(10**9)}.items():
            conn.putheader(key, value)
        conn.endheaders()
        response = conn.getresponse()
        assert response.status == 413 and "exceeds" in json.loads(response.read())["error"]
    finally:
        conn.close()


def test_client_compare_torch_free(
    server: dict[str, Any],
    tiny_models: dict[str, Path],
    faulty_vendor: tuple[ort.InferenceSession, ort.InferenceSession],
    run_torch_free: Callable[..., Any],
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (12, 8, 8, 3), dtype=np.uint8)
    labels = rng.integers(0, 5, 12)
    np.savez(tmp_path / "test.npz", x=images, y=labels)
    result = run_torch_free(
        CLIENT, "--url", f"http://127.0.0.1:{server['port']}", "--generator",
        str(tiny_models["generator"]), "--compare", str(tmp_path / "test.npz"), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    # The same numbers by hand: preprocess -> (G) -> the faulty vendor, in this process.
    faulty, _ = faulty_vendor
    x = Preprocess.from_dict(PREPROCESS).apply(images)
    gen = ort.InferenceSession(str(tiny_models["generator"]), providers=["CPUExecutionProvider"])
    without = faulty.run(None, {"input": x})[0].argmax(1)
    with_g = faulty.run(None, {"input": gen.run(None, {"input": x})[0]})[0].argmax(1)
    assert report["images"] == 12 and report["fault"]["seed"] == SEED
    assert report["accuracy_without_generator"] == pytest.approx(np.mean(without == labels))
    assert report["accuracy_with_generator"] == pytest.approx(np.mean(with_g == labels))


def test_client_images_and_errors(
    server: dict[str, Any],
    tiny_models: dict[str, Path],
    load_example: Callable[[str], Any],
    capsys: pytest.CaptureFixture[str],
    one_line_error: Callable[[int, str], str],
    tmp_path: Path,
) -> None:
    from PIL import Image

    client = load_example("remote_api/client.py").main
    url = f"http://127.0.0.1:{server['port']}"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    code = client(
        ["--url", url, "--generator", str(tiny_models["generator"]), str(tmp_path / "a.png")]
    )
    out = capsys.readouterr().out
    assert code == 0 and out.count("\n") == 1 and out.startswith(f"{tmp_path / 'a.png'}: class ")
    with socket.socket() as sock:  # a loopback port that nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    cases = [
        (["--url", f"http://127.0.0.1:{closed_port}", str(tmp_path / "a.png")], "cannot reach"),
        (["--url", url, "--generator", str(tiny_models["generator_wrong_size"]), str(tmp_path / "a.png")], "does not match"),
        (["--url", url, "--compare", "x.npz"], "--compare needs --generator"),
        (["--url", "ftp://127.0.0.1", str(tmp_path / "a.png")], "expected http://"),
        (["--url", url, str(tmp_path / "missing.png")], "no such file"),
    ]  # fmt: skip
    for argv, message in cases:
        code = client(argv)
        assert message in one_line_error(code, capsys.readouterr().err), argv


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--host", "0.0.0.0"], "only binds to 127.0.0.1"),
        (["--host", "localhost"], "only binds to 127.0.0.1"),
        (["--seed", "3"], "need --ber"),
        (["--ber", "2"], "bit error rate is a number in [0, 1]"),
        (["--port", "70000"], "--port 70000"),
    ],
)
def test_server_refuses_bad_settings(
    argv: list[str],
    message: str,
    tiny_models: dict[str, Path],
    load_example: Callable[[str], Any],
    capsys: pytest.CaptureFixture[str],
    one_line_error: Callable[[int, str], str],
) -> None:
    code = load_example("remote_api/server.py").main(["--model", str(tiny_models["vendor"]), *argv])
    assert message in one_line_error(code, capsys.readouterr().err)


def test_open_inference_protocol(
    server: dict[str, Any], faulty_vendor: tuple[ort.InferenceSession, ort.InferenceSession]
) -> None:
    """KServe v2 REST: health, model metadata and infer, with the model named by its file."""
    port = server["port"]
    assert call(port, "GET", "/v2/health/ready")[::2] == (200, {"ready": True})
    assert call(port, "GET", "/v2/models/vendor/ready")[::2] == (
        200,
        {"name": "vendor", "ready": True},
    )
    status, _, meta = call(port, "GET", "/v2/models/vendor")
    assert status == 200 and meta["name"] == "vendor"
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 3, 8, 8]}]
    assert meta["parameters"]["fault"]["seed"] == SEED
    x = (np.random.default_rng(4).integers(-8, 9, (2, 3, 8, 8)) / 8).astype(np.float32)
    request = {"id": "r1", "inputs": [{"name": "input", "shape": [2, 3, 8, 8], "datatype": "FP32",
                                       "data": x.ravel().tolist()}]}  # fmt: skip
    json_headers = {"Content-Type": "application/json"}
    status, _, answer = call(
        port, "POST", "/v2/models/vendor/infer", json.dumps(request).encode(), json_headers
    )
    assert status == 200, answer
    assert answer["model_name"] == "vendor" and answer["id"] == "r1"
    (output,) = answer["outputs"]
    assert output["datatype"] == "FP32" and output["shape"] == [2, 5]
    expected = faulty_vendor[0].run(None, {"input": x})[0]
    np.testing.assert_allclose(
        np.asarray(output["data"], np.float32).reshape(2, 5), expected, rtol=1e-5, atol=1e-5
    )
    bad = [
        ("/v2/models/other/infer", request, 404, "unknown model 'other'"),
        ("/v2/models/vendor/infer", {"inputs": []}, 400, "exactly one tensor"),
        ("/v2/models/vendor/infer", {**request, "inputs": [{**request["inputs"][0], "datatype": "INT8"}]}, 400, "FP32"),
        ("/v2/models/vendor/infer", {**request, "inputs": [{**request["inputs"][0], "shape": [1, 3, 8, 8]}]}, 400, "needs 192"),
        ("/v2/models/vendor/infer", {**request, "inputs": [{**request["inputs"][0], "name": "x"}]}, 400, "input name 'x'"),
    ]  # fmt: skip
    for path, body, want, message in bad:
        status, _, answer = call(port, "POST", path, json.dumps(body).encode(), json_headers)
        assert status == want and message in answer["error"], (path, answer)
    status, _, answer = call(port, "GET", "/v2/models/vendor/infer")
    assert status == 405


def test_client_speaks_open_inference_protocol(
    server: dict[str, Any], tiny_models: dict[str, Path], run_torch_free: Callable[..., Any],
    tmp_path: Path,
) -> None:  # fmt: skip
    """client.py --protocol v2 gives the same accuracies as over server.py's own API."""
    rng = np.random.default_rng(5)
    np.savez(tmp_path / "test.npz", x=rng.integers(0, 256, (12, 8, 8, 3), dtype=np.uint8),
             y=rng.integers(0, 5, 12))  # fmt: skip
    common = ["--url", f"http://127.0.0.1:{server['port']}", "--generator",
              str(tiny_models["generator"]), "--compare", str(tmp_path / "test.npz"), "--json"]  # fmt: skip
    reports = []
    for extra in ([], ["--protocol", "v2", "--model-name", "vendor", "--batch-size", "1"]):
        result = run_torch_free(CLIENT, *common, *extra)
        assert result.returncode == 0, result.stderr
        reports.append(json.loads(result.stdout))
    for key in ("images", "accuracy_without_generator", "accuracy_with_generator", "fault"):
        assert reports[0][key] == reports[1][key], key


def test_serves_200_concurrent_requests(server: dict[str, Any]) -> None:
    """200 clients connect at once (loopback, bounded by timeouts): none is reset or dropped."""
    count = 200
    body = np.zeros((1, 3, 8, 8), "<f4").tobytes()
    barrier = threading.Barrier(count, timeout=30)
    results: list[object] = [None] * count

    def one(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server["port"], timeout=30)
        try:
            barrier.wait()
            conn.request("POST", "/v1/predict", body=body, headers=tensor_headers("1,3,8,8"))
            response = conn.getresponse()
            response.read()
            results[index] = response.status
        except Exception as exc:  # recorded, so the assertion shows what went wrong
            results[index] = repr(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    failed = [r for r in results if r != 200]
    assert not failed, f"{len(failed)} of {count} failed: {failed[:5]}"


def test_server_stops_cleanly(server: dict[str, Any]) -> None:
    proc = server["proc"]
    assert proc.poll() is None, "server died early"
    proc.terminate()
    assert proc.wait(timeout=10) == 0
    assert "Traceback" not in server["log"].read_text()
