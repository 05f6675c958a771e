"""The ImageNet-style evaluation network (DARTS ``NetworkImageNet``), for any input channels/size.

Two stems downsample by 8 in total (stem0: two stride-2 convs, stem1: one more), so the first
cell sees an input whose predecessor already changed resolution: as in the reference, the
first cell is built with ``reduction_prev=True`` (a factorized reduce on its first input).
The reference's fixed 7x7 average pool becomes adaptive, identical at 224 px.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from dnas.genotype import Genotype
from dnas.models.cell import cells_forward, reduction_layers, stack_cells
from dnas.models.heads import AuxiliaryHeadImageNet


def imagenet_stems(in_channels: int, C: int) -> tuple[nn.Sequential, nn.Sequential]:
    """The DARTS ImageNet stem: two stride-2 convs to ``C`` channels (stem0), then a ReLU and a
    third stride-2 conv (stem1), downsampling by 8 before the first cell."""
    stem0 = nn.Sequential(
        nn.Conv2d(in_channels, C // 2, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(C // 2),
        nn.ReLU(inplace=True),
        nn.Conv2d(C // 2, C, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(C),
    )
    stem1 = nn.Sequential(nn.ReLU(inplace=False), nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C))
    return stem0, stem1


class NetworkImageNet(nn.Module):
    """Eval mode: ``forward(x) -> logits``. Train mode: ``(logits, logits_aux or None)``."""

    darts_genotype = True  # build_network resolves names/paths to a Genotype first

    def __init__(
        self,
        genotype: Genotype,
        C: int,
        layers: int,
        num_classes: int,
        in_channels: int = 3,
        auxiliary: bool = False,
        drop_path_prob: float = 0.0,
    ) -> None:
        super().__init__()
        self.layers = layers
        self.auxiliary = auxiliary
        self.drop_path_prob = float(drop_path_prob)
        self.stem0, self.stem1 = imagenet_stems(in_channels, C)
        self.cells, C_prev, C_aux = stack_cells(genotype, C, C, C, layers, reduction_prev=True)
        self.aux_index = reduction_layers(layers)[1]
        self.auxiliary_head = AuxiliaryHeadImageNet(C_aux, num_classes) if auxiliary else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)

    def forward(self, x: torch.Tensor):
        s0 = self.stem0(x)
        return cells_forward(self, s0, self.stem1(s0))
