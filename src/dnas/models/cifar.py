"""The CIFAR-style evaluation network (DARTS ``NetworkCIFAR``), for any input channels/size.

Stem: 3x3 conv to ``3*C`` channels + BN at full resolution; then ``layers`` cells with
reductions at 1/3 and 2/3 depth; an optional auxiliary head after the second reduction;
global average pooling and a linear classifier.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from dnas.genotype import Genotype
from dnas.models.cell import cells_forward, reduction_layers, stack_cells
from dnas.models.heads import AuxiliaryHeadCIFAR

STEM_MULTIPLIER = 3


class NetworkCIFAR(nn.Module):
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
        C_stem = STEM_MULTIPLIER * C
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, C_stem, 3, padding=1, bias=False),
            nn.BatchNorm2d(C_stem),
        )
        self.cells, C_prev, C_aux = stack_cells(genotype, C_stem, C_stem, C, layers, reduction_prev=False)
        self.aux_index = reduction_layers(layers)[1]
        self.auxiliary_head = AuxiliaryHeadCIFAR(C_aux, num_classes) if auxiliary else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)

    def forward(self, x: torch.Tensor):
        s = self.stem(x)
        return cells_forward(self, s, s)
