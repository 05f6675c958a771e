"""Auxiliary classifier heads attached at 2/3 depth (DARTS / NASNet style).

The reference heads assume one input size (8x8 for CIFAR, 7x7 for ImageNet at 224 px) and
pool with a fixed 5x5 window down to 2x2. Here the pool uses that exact reference window when
it yields 2x2, and otherwise adaptive average pooling to 2x2, so the head works on any input
size (8x8 digits, 28x28 MNIST) while keeping the reference parameter count and, at the
reference size, the reference numerics.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class PoolTo2x2(nn.Module):
    """Average-pool to 2x2: the reference fixed window where it fits, adaptive elsewhere."""

    def __init__(self, kernel: int, stride: int) -> None:
        super().__init__()
        self.kernel = kernel
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = int(x.shape[-2]), int(x.shape[-1])
        if all(s >= self.kernel and (s - self.kernel) // self.stride + 1 == 2 for s in (h, w)):
            return F.avg_pool2d(x, self.kernel, self.stride, padding=0, count_include_pad=False)
        return F.adaptive_avg_pool2d(x, 2)


class _AuxiliaryHead(nn.Module):
    def __init__(self, C: int, num_classes: int, kernel: int, stride: int, bn_after_conv: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReLU(inplace=False),
            PoolTo2x2(kernel, stride),
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
        ]
        if bn_after_conv:
            layers.append(nn.BatchNorm2d(768))
        layers.append(nn.ReLU(inplace=True))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class AuxiliaryHeadCIFAR(_AuxiliaryHead):
    """Reference CIFAR head (5x5/3 pool at 8x8, BN after the 2x2 conv)."""

    def __init__(self, C: int, num_classes: int) -> None:
        super().__init__(C, num_classes, kernel=5, stride=3, bn_after_conv=True)


class AuxiliaryHeadImageNet(_AuxiliaryHead):
    """Reference ImageNet head (5x5/2 pool at 7x7; the reference omits the BN after the 2x2
    conv, a typo kept for consistency with the paper's experiments, and so do we)."""

    def __init__(self, C: int, num_classes: int) -> None:
        super().__init__(C, num_classes, kernel=5, stride=2, bn_after_conv=False)
