"""Cross-check nfdeploy.energy's TWMA against the NeuralFuse paper.

Builds the CIFAR ResNet18 (3x3 stem conv 64, 4 stages of 2 BasicBlocks 64/128/256/512,
1x1 downsample convs, avgpool, fc 10) and the six generators
(``nfdeploy.generators.build_generator``), exports each to ONNX (legacy exporter, batch 1,
3x32x32) and counts TWMA from the ONNX graphs. torch is used only here, never by
``nfdeploy.energy``.

Three counts per network:

* ``ours``: ``nfdeploy.energy.twma`` (32x32 output-stationary, int8 weights, 64-bit SRAM rows)
  on the true layer shapes;
* ``scalesim``: the same through SCALE-Sim's own compute model (if ``scalesim`` imports);
* ``paper-topology``: our counter on the topology rows the paper most probably fed SCALE-Sim
  (see docs/energy.md): ifmap = input + 2 * pad, with SCALE-Sim's own
  ``ofmap = ceil((ifmap - k + s) / s)`` (17 instead of 16 for a 3x3/2 conv on 32 pixels),
  and for the generators every layer padded by 1 and a transposed conv entered as a stride-1
  conv over ``output + 2`` pixels.

Usage: ``python bench/energy_paper.py [--json out.json] [--no-scalesim]``
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
import warnings
from dataclasses import replace

import onnx
import torch
from onnx import helper, shape_inference
from torch import nn
from torch.nn import functional as F

from nfdeploy.energy import (
    LayerShape,
    accesses_from_reads,
    filter_sram_reads,
    layers_from_onnx,
    scalesim_available,
)

PAPER_TWMA = {
    "ResNet18": 2_755_968,
    "ConvL": 320_256,
    "ConvS": 41_508,
    "DeConvL": 259_264,
    "DeConvS": 86_208,
    "UNetL": 180_894,
    "UNetS": 45_711,
}
PAPER_ES_RESNET18 = {  # % at 1% BER, r = 0.694
    "ConvL": 19.0,
    "ConvS": 29.1,
    "DeConvL": 21.2,
    "DeConvS": 27.5,
    "UNetL": 24.0,
    "UNetS": 28.9,
}
R_PAPER = 0.694


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet18(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        blocks: list[nn.Module] = []
        cin = 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            for s in (stride, 1):
                blocks.append(BasicBlock(cin, cout, s))
                cin = cout
        self.layers = nn.Sequential(*blocks)
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def export(module: nn.Module, shape: tuple[int, ...] = (1, 3, 32, 32)) -> onnx.ModelProto:
    buffer = io.BytesIO()
    module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.zeros(*shape),),
            buffer,
            dynamo=False,
            opset_version=17,
            input_names=["x"],
            output_names=["y"],
        )
    return onnx.load_from_string(buffer.getvalue())


def _weight_nodes(model: onnx.ModelProto) -> list[tuple[onnx.NodeProto, tuple[int, ...]]]:
    """(node, input shape) of every Conv/ConvTranspose/Gemm/MatMul, in graph order."""
    inferred = shape_inference.infer_shapes(model)
    shapes = {
        vi.name: tuple(d.dim_value for d in vi.type.tensor_type.shape.dim)
        for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]
    }
    ops = ("Conv", "ConvTranspose", "Gemm", "MatMul")
    return [(n, shapes.get(n.input[0], ())) for n in inferred.graph.node if n.op_type in ops]


def paper_topology(
    layers: list[LayerShape], model: onnx.ModelProto, *, pad_everything: bool
) -> list[LayerShape]:
    """The rows the paper most probably gave SCALE-Sim (see the module docstring)."""
    nodes = _weight_nodes(model)
    assert len(nodes) == len(layers), "layer list and weight nodes out of step"
    rows = []
    for layer, (node, in_shape) in zip(layers, nodes, strict=True):
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if layer.kind == "conv":
            pad = 1 if pad_everything else int(attrs.get("pads", [0, 0, 0, 0])[0])
            h, w = in_shape[2] + 2 * pad, in_shape[3] + 2 * pad
            rows.append(replace(layer, ifmap_h=h, ifmap_w=w))
        elif layer.kind == "convT":  # stride-1 conv over (output + 2) pixels
            rows.append(replace(layer, ifmap_h=layer.ofmap_h + 2, ifmap_w=layer.ofmap_w + 2))
        else:
            rows.append(layer)
    return rows


def count(layers: list[LayerShape], backend: str = "analytic") -> int:
    return accesses_from_reads(sum(filter_sram_reads(layers, backend=backend)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--no-scalesim", action="store_true", help="skip the SCALE-Sim backend")
    args = ap.parse_args(argv)
    use_scalesim = scalesim_available() and not args.no_scalesim

    torch.manual_seed(0)
    nets: dict[str, tuple[nn.Module, bool]] = {"ResNet18": (CifarResNet18(), False)}
    try:
        from nfdeploy.generators import build_generator

        for name in ("ConvL", "ConvS", "DeConvL", "DeConvS", "UNetL", "UNetS"):
            nets[name] = (build_generator(name, channels=3, height=32, width=32), True)
    except ImportError as exc:  # pragma: no cover - generators not there yet
        print(f"generators unavailable ({exc}); ResNet18 only", file=sys.stderr)

    results = {}
    for name, (module, is_generator) in nets.items():
        model = export(module)
        layers = layers_from_onnx(model)
        ours = count(layers)
        t0 = time.perf_counter()
        ss = count(layers, backend="scalesim") if use_scalesim else None
        ss_s = time.perf_counter() - t0
        paper_rows = count(paper_topology(layers, model, pad_everything=is_generator))
        paper = PAPER_TWMA[name]
        results[name] = {
            "paper": paper,
            "ours": ours,
            "diff_pct": 100.0 * (ours - paper) / paper,
            "scalesim": ss,
            "scalesim_seconds": round(ss_s, 2) if ss is not None else None,
            "paper_topology": paper_rows,
            "paper_topology_diff_pct": 100.0 * (paper_rows - paper) / paper,
            "layers": len(layers),
            "weights": sum(layer.params for layer in layers),
            "macs": sum(layer.macs for layer in layers),
            "raw_filter_sram_reads": sum(filter_sram_reads(layers)),
        }

    print(
        f"{'network':10}{'paper':>11}{'ours':>11}{'diff':>8}{'scalesim':>11}"
        f"{'paper-topo':>12}{'diff':>8}{'weights':>12}{'MACs':>14}"
    )
    for name, r in results.items():
        ss_text = f"{r['scalesim']:,}" if r["scalesim"] is not None else "-"
        print(
            f"{name:10}{r['paper']:>11,}{r['ours']:>11,}{r['diff_pct']:>+7.2f}%{ss_text:>11}"
            f"{r['paper_topology']:>12,}{r['paper_topology_diff_pct']:>+7.2f}%"
            f"{r['weights']:>12,}{r['macs']:>14,}"
        )
    if "ResNet18" in results:
        m = results["ResNet18"]["ours"]
        print("\nES with ResNet18 at 1% BER (r = 0.694): ours vs paper")
        for name, paper_es in PAPER_ES_RESNET18.items():
            if name in results:
                es = 100.0 * (1 - R_PAPER - results[name]["ours"] / m)
                print(f"  {name:8} {es:5.1f}%   paper {paper_es:5.1f}%")
                results[name]["es_resnet18_pct"] = round(es, 2)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)
    worst = max(abs(r["diff_pct"]) for r in results.values())
    return 0 if worst <= 10.0 else 1


if __name__ == "__main__":
    sys.exit(main())
