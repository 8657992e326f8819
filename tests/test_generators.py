"""Tests for nfdeploy.generators: paper architectures, registry, fused transform, export."""

from __future__ import annotations

import io
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nfdeploy.errors import NfdeployError
from nfdeploy.generators import (
    FusedInput,
    GeneratorRegistry,
    build_generator,
    count_macs,
    count_parameters,
    default_registry,
    generator_names,
    register_generator,
)
from nfdeploy.generators.blocks import pad_to, padding_for

# (params exact, paper's approximate MACs) at 3x32x32, from the NeuralFuse paper.
PAPER = {
    "ConvL": (723_273, 80.5e6),
    "ConvS": (113_187, 10.3e6),
    "DeConvL": (647_785, 64.7e6),
    "DeConvS": (156_777, 22.4e6),
    "UNetL": (482_771, 41.4e6),
    "UNetS": (121_195, 10.6e6),
}
NAMES = list(PAPER)
SIZES = [(1, 28, 28), (3, 32, 32), (3, 64, 64), (3, 30, 30), (1, 7, 9)]

LEGACY_EXPORT_WARNING = "ignore:You are using the legacy TorchScript-based ONNX export"
# torch 2.13's exporter trips a typing_extensions deprecation inside its own pytree code.
PYTREE_WARNING = "ignore:.*LeafSpec.* is deprecated:FutureWarning"


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # These nets are tiny; intra-op threading only adds overhead (a lot on a shared CPU).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# -- architectures ------------------------------------------------------------------------
def test_builtin_names_in_paper_order() -> None:
    assert generator_names()[:6] == NAMES
    assert GeneratorRegistry().names() == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_parameter_counts_match_paper_exactly(name: str) -> None:
    g = build_generator(name, channels=3, height=32, width=32)
    assert count_parameters(g) == PAPER[name][0]


@pytest.mark.parametrize("name", NAMES)
def test_macs_close_to_paper(name: str) -> None:
    macs = count_macs(name)
    assert abs(macs - PAPER[name][1]) / PAPER[name][1] < 0.05, macs
    sparse = count_macs(name, transposed="sparse")
    if name.startswith("Conv"):
        assert sparse == macs  # no transposed convs
    else:
        assert sparse < macs
    # padding to a multiple of 8 is part of the measured cost
    assert count_macs(name, 3, 30, 30) == macs


def test_count_macs_on_module_and_linear() -> None:
    m = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    assert count_macs(m, channels=3, height=2, width=2) == 60
    assert m.training  # mode restored
    with pytest.raises(NfdeployError):
        count_macs(m, transposed="bogus")  # type: ignore[arg-type]


def test_count_parameters_counts_shared_once() -> None:
    lin = nn.Linear(4, 4)
    assert count_parameters(nn.Sequential(lin, lin)) == 20
    lin.bias.requires_grad_(False)
    assert count_parameters(lin, trainable_only=True) == 16


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("c", "h", "w"), SIZES)
def test_output_shape_equals_input_shape(name: str, c: int, h: int, w: int) -> None:
    g = build_generator(name, channels=c, height=h, width=w).eval()
    x = torch.randn(2, c, h, w)
    with torch.no_grad():
        y = g(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", NAMES)
def test_train_step_on_odd_size(name: str) -> None:
    g = build_generator(name, channels=1, height=7, width=9).train()
    x = torch.randn(3, 1, 7, 9)
    g(x).square().mean().backward()
    grads = [p.grad for p in g.parameters()]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)


def test_tanh_heads_bounded_unet_unbounded() -> None:
    x = 10 * torch.randn(2, 3, 32, 32)
    for name in ("ConvL", "ConvS", "DeConvL", "DeConvS"):
        with torch.no_grad():
            assert build_generator(name).eval()(x).abs().max() <= 1
    # UNet heads are a plain 1x1 conv; just check the layer is there, without a Tanh.
    unet = build_generator("UNetS")
    assert not any(isinstance(m, nn.Tanh) for m in unet.modules())


def test_generator_built_for_one_size_runs_on_another_in_eager() -> None:
    g = build_generator("UNetS", height=32, width=32).eval()
    with torch.no_grad():
        assert g(torch.randn(1, 3, 30, 31)).shape == (1, 3, 30, 31)


@pytest.mark.parametrize(("h", "w"), [(30, 30), (7, 9), (3, 3), (1, 1), (33, 17), (8, 16)])
def test_padding_matches_torch_pad(h: int, w: int) -> None:
    pads, mode = padding_for(h, w, 8)
    assert (h + pads[2] + pads[3]) % 8 == 0 and (w + pads[0] + pads[1]) % 8 == 0
    x = torch.randn(2, 3, h, w)
    ref = F.pad(x, pads, mode="reflect" if mode == "reflect" else "constant")
    assert torch.equal(pad_to(x, h, w, pads, mode), ref)
    assert mode == ("zeros" if h <= 3 else "reflect")


def test_cpu_bf16_autocast_and_channels_last() -> None:
    g = build_generator("UNetS", height=30, width=30).eval()
    x = torch.randn(2, 3, 30, 30)
    with torch.no_grad():
        ref = g(x)
        g = g.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        xcl = x.contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(g(xcl), ref, atol=1e-5, rtol=1e-5)
        fused = FusedInput(g, [-1.0], [1.0])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = g(xcl)
            f = fused(xcl)
    assert y.dtype == torch.bfloat16 and y.shape == x.shape
    assert (y.float() - ref).abs().max() < 0.05
    assert f.dtype == torch.float32 and f.shape == x.shape


def test_bad_dimensions_rejected() -> None:
    for kwargs in ({"channels": 0}, {"height": -1}, {"width": 2.5}, {"channels": True}):
        with pytest.raises(NfdeployError, match="positive integer"):
            build_generator("ConvS", **kwargs)


# -- registry -----------------------------------------------------------------------------
def test_names_are_case_insensitive() -> None:
    for spelling in ("unets", "UNETS", " UNetS "):
        assert count_parameters(build_generator(spelling)) == PAPER["UNetS"][0]
    assert "deconvl" in default_registry


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(NfdeployError, match="unknown generator 'nope'") as info:
        build_generator("nope")
    for name in NAMES:
        assert name in str(info.value)


def _tiny(*, channels: int, height: int, width: int) -> nn.Module:
    return nn.Conv2d(channels, channels, 3, padding=1)


def test_register_in_private_registry_does_not_leak() -> None:
    reg = GeneratorRegistry()
    assert register_generator("Tiny", registry=reg)(_tiny) is _tiny
    assert generator_names(registry=reg) == [*NAMES, "Tiny"]
    assert "Tiny" not in generator_names()
    g = build_generator("tiny", channels=1, registry=reg)
    assert isinstance(g, nn.Conv2d) and g.in_channels == 1
    with pytest.raises(NfdeployError, match="already registered"):
        reg.add("TINY", _tiny)
    with pytest.raises(NfdeployError, match="already registered"):
        reg.add("convl", _tiny)
    clone = reg.copy()
    reg.remove("tiny")
    assert "Tiny" in clone and "Tiny" not in reg
    assert GeneratorRegistry(builtins=False).names() == []


def test_register_generator_default_registry_decorator() -> None:
    @register_generator("TestOnlyTiny")
    def factory(*, channels: int, height: int, width: int) -> nn.Module:
        return _tiny(channels=channels, height=height, width=width)

    try:
        assert "TestOnlyTiny" in generator_names()
        assert isinstance(build_generator("testonlytiny"), nn.Conv2d)
        with pytest.raises(NfdeployError, match="already registered"):
            register_generator("testonlytiny")(factory)
    finally:
        default_registry.remove("TestOnlyTiny")
    assert "TestOnlyTiny" not in generator_names()


@pytest.mark.parametrize("bad", ["", "  ", "a:b"])
def test_invalid_registration_names(bad: str) -> None:
    with pytest.raises(NfdeployError, match="invalid generator name"):
        GeneratorRegistry().add(bad, _tiny)


def test_import_string(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "nfd_test_gens"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "mine.py").write_text(
        textwrap.dedent(
            """
            from torch import nn

            def build_tiny(*, channels, height, width):
                return nn.Conv2d(channels, channels, 1)

            class Holder:
                @staticmethod
                def build(*, channels, height, width):
                    return nn.Identity()

            def wrong_signature(c):
                return nn.Identity()

            def not_a_module(*, channels, height, width):
                return 42

            VALUE = 3
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    g = build_generator("nfd_test_gens.mine:build_tiny", channels=2)
    assert isinstance(g, nn.Conv2d) and g.in_channels == 2
    assert isinstance(build_generator("nfd_test_gens.mine:Holder.build"), nn.Identity)
    assert count_macs("nfd_test_gens.mine:build_tiny", 2, 4, 4) == 2 * 2 * 16
    cases = {
        "nfd_test_gens.missing:f": "cannot import module",
        "nfd_test_gens.mine:nope": "has no attribute",
        "nfd_test_gens.mine:VALUE": "not callable",
        "nfd_test_gens.mine:wrong_signature": "keyword arguments",
        "nfd_test_gens.mine:not_a_module": "expected a torch.nn.Module",
        ":f": "expected 'package.module:factory'",
        "nfd_test_gens.mine:": "expected 'package.module:factory'",
    }
    for spec, message in cases.items():
        with pytest.raises(NfdeployError, match=message):
            build_generator(spec)


# -- fused transform ----------------------------------------------------------------------
class _Const(nn.Module):
    def __init__(self, value: float, channels: int = 3) -> None:
        super().__init__()
        self.value = value
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x, self.value)


def test_fused_input_clamps_per_channel() -> None:
    lo, hi = [-1.0, -2.0, -0.5], [1.0, 2.0, 0.5]
    x = torch.linspace(-3, 3, 2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    f = FusedInput(_Const(0.25), lo, hi)
    y = f(x)
    for c in range(3):
        expected = (x[:, c] + 0.25).clamp(lo[c], hi[c])
        torch.testing.assert_close(y[:, c], expected)
    assert f.lo.shape == (1, 3, 1, 1) and "lo" in f.state_dict()


def test_fused_input_single_bound_and_identity() -> None:
    x = torch.rand(2, 3, 4, 4) * 2 - 1
    torch.testing.assert_close(FusedInput(_Const(0.0), [-1.0], [1.0])(x), x)
    assert FusedInput(_Const(5.0), [-1.0], [1.0])(x).eq(1.0).all()


def test_fused_input_validation() -> None:
    with pytest.raises(NfdeployError, match="2 values but the generator has 3"):
        FusedInput(_Const(0.0), [0.0, 0.0], [1.0, 1.0])
    with pytest.raises(NfdeployError, match="lo has 3 values but hi has 2"):
        FusedInput(nn.Identity(), [0.0] * 3, [1.0] * 2)
    with pytest.raises(NfdeployError, match="must not exceed"):
        FusedInput(_Const(0.0), [1.0], [0.0])
    with pytest.raises(NfdeployError, match="at least one"):
        FusedInput(_Const(0.0), [], [1.0])
    with pytest.raises(NfdeployError, match="NaN"):
        FusedInput(_Const(0.0), [float("nan")], [1.0])
    with pytest.raises(NfdeployError, match="sequence of numbers"):
        FusedInput(_Const(0.0), ["a"], [1.0])  # type: ignore[list-item]


# -- ONNX export --------------------------------------------------------------------------
def _ort_parity(model: nn.Module, onnx_bytes: bytes, shape: tuple[int, int, int]) -> None:
    import onnxruntime as ort

    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    in_name = sess.get_inputs()[0].name
    for batch in (1, 3):
        x = 2 * torch.randn(batch, *shape)
        with torch.no_grad():
            ref = model(x).numpy()
        (out,) = sess.run(None, {in_name: x.numpy()})
        assert out.shape == ref.shape
        np.testing.assert_allclose(out, ref, atol=1e-4, rtol=0)


@pytest.mark.filterwarnings(LEGACY_EXPORT_WARNING)
@pytest.mark.parametrize("opset", [13, 17])
def test_legacy_onnx_export_parity(opset: int) -> None:
    import onnx

    shape = (3, 30, 30)  # not a multiple of 8: exercises pad + crop
    g = build_generator("UNetS", channels=3, height=30, width=30).eval()
    model = FusedInput(g, [-1.0, -1.5, -2.0], [1.0, 1.5, 2.0]).eval() if opset == 17 else g
    buf = io.BytesIO()
    torch.onnx.export(
        model,
        (torch.randn(1, *shape),),
        buf,  # type: ignore[arg-type]
        dynamo=False,
        opset_version=opset,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
    )
    proto = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(proto)
    ops = {n.op_type for n in proto.graph.node}
    assert "Shape" not in ops  # pad/crop use static sizes
    _ort_parity(model, buf.getvalue(), shape)


@pytest.mark.slow  # the torch.export-based exporter alone takes 5-15 s on a shared CPU
@pytest.mark.filterwarnings(PYTREE_WARNING)
def test_dynamo_onnx_export_parity() -> None:
    shape = (1, 7, 9)
    g = build_generator("DeConvS", channels=1, height=7, width=9).eval()
    model = FusedInput(g, [-1.0], [1.0]).eval()
    program = torch.onnx.export(
        model,
        (torch.randn(2, *shape),),
        dynamo=True,
        external_data=False,
        verbose=False,
        input_names=["x"],
        output_names=["y"],
        dynamic_shapes=({0: torch.export.Dim("N", min=1, max=64)},),
    )
    assert program is not None
    proto = program.model_proto
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == list(shape)
    _ort_parity(model, proto.SerializeToString(), shape)
