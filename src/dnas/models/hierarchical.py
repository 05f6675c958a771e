"""Evaluation networks for hierarchical (H-DAS) genotypes, CIFAR and ImageNet style.

Two layouts, chosen by the genotype:

* **Stacked** (no ``stages``): the DARTS network of ``layers`` cells with reductions at 1/3 and
  2/3 of the depth, except that each stage uses its own normal cell and each reduction its own
  reduction cell (``Genotype.stage_genotype``). With a plain (version 1) genotype this is exactly
  :class:`~dnas.models.cifar.NetworkCIFAR` / :class:`~dnas.models.imagenet.NetworkImageNet`
  (same modules, same parameter count).
* **Staged** (``stages`` present): each stage is the genotype's DAG of cells. Both stage inputs
  are the previous output through their own 1x1 ReLU-conv-BN to ``multiplier * C_s`` channels
  (as in the reference code); cell ``k`` reads the sum of its links' ops and takes it as both of
  its inputs; the stage output concatenates the ``concat`` states. Each reduction cell reads the
  stage output as both inputs. The genotype fixes the number of cells, so ``layers`` is ignored.
  The auxiliary head sits after the second reduction cell (2/3 of the depth, as in DARTS).

Drop-path applies inside the cells (as in DARTS) and to non-identity stage links.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from dnas.genotype import NUM_STAGES, Genotype, StageGene
from dnas.models.cell import Cell, drop_path, is_identity, reduction_layers
from dnas.models.heads import AuxiliaryHeadCIFAR, AuxiliaryHeadImageNet
from dnas.models.imagenet import imagenet_stems
from dnas.ops import ReLUConvBN, make_op


class Stage(nn.Module):
    """One stage of a staged hierarchical network: a DAG of discrete cells."""

    def __init__(self, layout: StageGene, cell_genotype: Genotype, C_in: int, C: int) -> None:
        super().__init__()
        W = len(cell_genotype.normal_concat) * C
        self.width = W
        self.preprocess0 = ReLUConvBN(C_in, W, 1, 1, 0, affine=True)
        self.preprocess1 = ReLUConvBN(C_in, W, 1, 1, 0, affine=True)
        self.inputs = [[int(i) for _, i in links] for links in layout.links]
        self.links = nn.ModuleList(nn.ModuleList(make_op(op, W, 1, True) for op, _ in links) for links in layout.links)
        self.droppable = [[not is_identity(op) for op in ops] for ops in self.links]
        self.cells = nn.ModuleList(Cell(cell_genotype, W, W, C, False, False) for _ in layout.links)
        self.concat = [int(i) for i in layout.concat]
        self.out_channels = W * len(self.concat)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        apply_drop = self.training and drop_prob > 0.0
        for k, cell in enumerate(self.cells):
            s = None
            for op, i, droppable in zip(self.links[k], self.inputs[k], self.droppable[k]):
                h = op(states[i])
                if apply_drop and droppable:
                    h = drop_path(h, drop_prob)
                s = h if s is None else s + h
            states.append(cell(s, s, drop_prob))
        return torch.cat([states[i] for i in self.concat], dim=1)


class _ReductionBetweenStages(nn.Module):
    """A reduction cell that reads the stage output as both of its inputs."""

    def __init__(self, genotype: Genotype, C_in: int, C: int) -> None:
        super().__init__()
        self.cell = Cell(genotype, C_in, C_in, C, True, False)
        self.out_channels = self.cell.multiplier * C

    def forward(self, s: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        return self.cell(s, s, drop_prob)


class HierarchicalNetwork(nn.Module):
    """Body shared by both styles; subclasses build the stem and choose the aux head."""

    aux_head: type[nn.Module] = AuxiliaryHeadCIFAR
    #: The ImageNet stem downsamples, so the first stacked cell gets a factorized reduce on s0.
    first_reduction_prev = False

    def _build_body(self, genotype: Genotype, C: int, layers: int, C_stem: int, num_classes: int, auxiliary: bool) -> None:
        self.staged = genotype.stages is not None
        if self.staged:
            self.blocks = nn.ModuleList()
            C_in, C_cell = C_stem, C
            C_aux = C_stem
            for s, layout in enumerate(genotype.stages):
                g = genotype.stage_genotype(s)
                stage = Stage(layout, g, C_in, C_cell)
                self.blocks.append(stage)
                C_in = stage.out_channels
                if s < NUM_STAGES - 1:
                    C_cell *= 2
                    red = _ReductionBetweenStages(g, C_in, C_cell)
                    self.blocks.append(red)
                    C_in = red.out_channels
                    C_aux = C_in
            self.aux_index = 2 * NUM_STAGES - 3  # the block after the second reduction cell
            C_out = C_in
        else:
            self.cells = nn.ModuleList()
            C_pp, C_p, C_cell = C_stem, C_stem, C
            C_aux = C_p
            r1, r2 = reduction_layers(layers)
            reduction_prev = self.first_reduction_prev
            for i in range(layers):
                reduction = i in (r1, r2)
                stage = 0 if i <= r1 else (1 if i <= r2 else 2)
                if reduction:
                    C_cell *= 2
                g = genotype.stage_genotype(stage)
                cell = Cell(g, C_pp, C_p, C_cell, reduction, reduction_prev)
                self.cells.append(cell)
                reduction_prev = reduction
                C_pp, C_p = C_p, cell.multiplier * C_cell
                if i == r2:
                    C_aux = C_p
            self.aux_index = r2
            C_out = C_p
        self.auxiliary_head = self.aux_head(C_aux, num_classes) if auxiliary else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_out, num_classes)

    @property
    def num_cells(self) -> int:
        if self.staged:
            return sum(len(b.cells) if isinstance(b, Stage) else 1 for b in self.blocks)
        return len(self.cells)

    def _body(self, s0: torch.Tensor, s1: torch.Tensor):
        logits_aux = None
        p = self.drop_path_prob
        if self.staged:
            s = s1
            for i, block in enumerate(self.blocks):
                s = block(s, s, p) if isinstance(block, Stage) else block(s, p)
                if i == self.aux_index and self.auxiliary_head is not None and self.training:
                    logits_aux = self.auxiliary_head(s)
            out = s
        else:
            for i, cell in enumerate(self.cells):
                s0, s1 = s1, cell(s0, s1, p)
                if i == self.aux_index and self.auxiliary_head is not None and self.training:
                    logits_aux = self.auxiliary_head(s1)
            out = s1
        logits = self.classifier(self.global_pooling(out).flatten(1))
        if self.training:
            return logits, logits_aux
        return logits


class HierarchicalCIFAR(HierarchicalNetwork):
    """CIFAR style: one 3x3 conv stem to ``3*C`` channels at full resolution."""

    darts_genotype = True

    def __init__(self, genotype: Genotype, C: int, layers: int, num_classes: int, in_channels: int = 3,
                 auxiliary: bool = False, drop_path_prob: float = 0.0) -> None:
        super().__init__()
        self.layers = layers
        self.auxiliary = auxiliary
        self.drop_path_prob = float(drop_path_prob)
        C_stem = 3 * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C_stem, 3, padding=1, bias=False), nn.BatchNorm2d(C_stem))
        self._build_body(genotype, C, layers, C_stem, num_classes, auxiliary)

    def forward(self, x: torch.Tensor):
        s = self.stem(x)
        return self._body(s, s)


class HierarchicalImageNet(HierarchicalNetwork):
    """ImageNet style: the DARTS two-part stem (downsampling by 8) to ``C`` channels."""

    darts_genotype = True
    aux_head = AuxiliaryHeadImageNet
    first_reduction_prev = True

    def __init__(self, genotype: Genotype, C: int, layers: int, num_classes: int, in_channels: int = 3,
                 auxiliary: bool = False, drop_path_prob: float = 0.0) -> None:
        super().__init__()
        self.layers = layers
        self.auxiliary = auxiliary
        self.drop_path_prob = float(drop_path_prob)
        self.stem0, self.stem1 = imagenet_stems(in_channels, C)
        self._build_body(genotype, C, layers, C, num_classes, auxiliary)

    def forward(self, x: torch.Tensor):
        s0 = self.stem0(x)
        s1 = self.stem1(s0)
        if self.staged:  # a stage reads one input (both stage inputs are the stem output)
            return self._body(s1, s1)
        return self._body(s0, s1)


#: Which network builds a hierarchical genotype when ``build_network`` is asked for ``net``.
HIERARCHICAL_NETS = {"cifar": "hier-cifar", "imagenet": "hier-imagenet"}
