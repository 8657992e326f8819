"""CIFAR-10 "vendor" classifiers for the benchmarks (plain torch, no torchvision).

- ``resnet20()``: the CIFAR ResNet-20 of He et al. (2016, Sec. 4.2): a 3x3/16 stem, three
  stages of three BasicBlocks with widths 16/32/64 (stride 2 at the start of stages 2
  and 3), global average pool, linear 64->10. Shortcuts are **option A**: identity, and
  where the shape changes a parameter-free stride-2 subsample plus zero-padding of the
  new channels (so every weight in the model sits in a 3x3 conv or the final linear).
  269,722 parameters.
- ``vgg_small()``: a different architecture for the restricted-access (surrogate)
  experiment, VGG-11-like: 3x3 conv-BN-ReLU stacks 32 | 64,64 | 128,128 with a 2x2
  max-pool after each stage (one conv at full resolution, as in VGG-11, to keep the CPU
  cost down), one more conv-BN-ReLU with 256 channels at 4x4, global average pool,
  linear 256->10. No residual connections. 576,170 parameters, ~34M MACs.

Both take the normalised float32 NCHW input of ``Preprocess.parse("cifar10")`` and
return logits. Convs are bias-free (each is followed by BatchNorm).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ARCHS", "build", "count_params", "resnet20", "vgg_small"]


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class _ShortcutA(nn.Module):
    """Option-A shortcut: take every second pixel, zero-pad the extra channels."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.pad = cout - cin
        if self.pad < 0 or self.pad % 2:
            raise ValueError(f"option-A shortcut needs cout >= cin and an even gap ({cin}->{cout})")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::2, ::2]
        half = self.pad // 2
        return F.pad(x, (0, 0, 0, 0, half, half))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = _conv3x3(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        if stride != 1 or cin != cout:
            if stride != 2:
                raise ValueError("option-A shortcut supports stride 2 only")
            self.shortcut: nn.Module = _ShortcutA(cin, cout)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(
        self,
        blocks_per_stage: int = 3,
        widths: tuple[int, ...] = (16, 32, 64),
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        self.conv1 = _conv3x3(3, widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers: list[nn.Module] = []
        cin = widths[0]
        for i, w in enumerate(widths):
            for j in range(blocks_per_stage):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(BasicBlock(cin, w, stride))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


class VGGSmall(nn.Module):
    def __init__(
        self, cfg: tuple = (32, "M", 64, 64, "M", 128, 128, "M", 256), num_classes: int = 10
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [_conv3x3(cin, int(v)), nn.BatchNorm2d(int(v)), nn.ReLU(inplace=True)]
                cin = int(v)
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


def _init(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    # Zero-init the last BN of each residual branch: every block starts as identity,
    # which makes short schedules converge faster.
    for m in model.modules():
        if isinstance(m, BasicBlock):
            nn.init.zeros_(m.bn2.weight)


def resnet20(num_classes: int = 10) -> CifarResNet:
    return CifarResNet(3, (16, 32, 64), num_classes)


def vgg_small(num_classes: int = 10) -> VGGSmall:
    return VGGSmall(num_classes=num_classes)


ARCHS = {"resnet20": resnet20, "vgg_small": vgg_small}


def build(arch: str, num_classes: int = 10) -> nn.Module:
    if arch not in ARCHS:
        raise ValueError(f"unknown arch '{arch}'; known: {', '.join(ARCHS)}")
    return ARCHS[arch](num_classes)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
