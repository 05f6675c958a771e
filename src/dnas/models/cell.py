"""The discrete (derived) cell of a DARTS-style evaluation network.

A cell takes the outputs of the two previous cells, brings both to ``C`` channels (a
factorized reduce when the previous cell halved the resolution, so the two inputs agree in
size; else a 1x1 ReLU-conv-BN), runs two ops per intermediate node and sums them, and
concatenates the nodes listed in ``*_concat``. This follows the released DARTS code, so the
parameter counts of published genotypes match the papers exactly.

Drop-path (stochastic depth per edge) regularises long training runs; it is never applied to
identity edges, which carry no weights and whose removal would only inject noise.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from dnas.genotype import Genotype
from dnas.ops import FactorizedReduce, Identity, ReLUConvBN, make_op


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples with probability ``drop_prob`` and rescale the rest (out of place).

    Draws from the global torch RNG so that a seeded (and checkpointed) run is reproducible.
    """
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x * mask / keep


class PaddedFactorizedReduce(FactorizedReduce):
    """:class:`dnas.ops.FactorizedReduce` under the name derived cells have always used for it.

    The shifted branch once read ``x[..., 1:, 1:]`` through a stride-2 conv, which is empty for
    a 1x1 map (tiny inputs such as 8x8 digits through the ImageNet stem), so derived cells
    padded the input first. The op now runs its branches on subsampled views and handles 1x1
    maps itself; the name stays for code that refers to it. Same parameters and state-dict keys.
    """


def is_identity(op: nn.Module) -> bool:
    """True for weightless pass-through ops, which drop-path must leave alone."""
    return isinstance(op, (Identity, nn.Identity))


class Cell(nn.Module):
    """One normal or reduction cell built from a genotype."""

    def __init__(
        self,
        genotype: Genotype,
        C_prev_prev: int,
        C_prev: int,
        C: int,
        reduction: bool,
        reduction_prev: bool,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        if reduction_prev:
            self.preprocess0: nn.Module = PaddedFactorizedReduce(C_prev_prev, C, affine=True)
        else:
            self.preprocess0 = ReLUConvBN(C_prev_prev, C, 1, 1, 0, affine=True)
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0, affine=True)

        edges = genotype.reduce if reduction else genotype.normal
        concat: Sequence[int] = genotype.reduce_concat if reduction else genotype.normal_concat
        self.steps = len(edges) // 2
        self.concat = [int(i) for i in concat]
        self.multiplier = len(self.concat)
        self.indices = [int(i) for _, i in edges]
        self.op_names = [name for name, _ in edges]
        self.ops = nn.ModuleList(
            make_op(name, C, 2 if reduction and index < 2 else 1, True) for name, index in edges
        )
        self.droppable = [not is_identity(op) for op in self.ops]

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        apply_drop = self.training and drop_prob > 0.0
        for i in range(self.steps):
            node = None
            for k in (2 * i, 2 * i + 1):
                h = self.ops[k](states[self.indices[k]])
                if apply_drop and self.droppable[k]:
                    h = drop_path(h, drop_prob)
                node = h if node is None else node + h
            states.append(node)
        return torch.cat([states[i] for i in self.concat], dim=1)


def reduction_layers(layers: int) -> tuple[int, int]:
    """Indices of the two reduction cells (at 1/3 and 2/3 depth); the aux head sits after the second."""
    return layers // 3, 2 * layers // 3


def stack_cells(
    genotype: Genotype, C_prev_prev: int, C_prev: int, C: int, layers: int, reduction_prev: bool
) -> tuple[nn.ModuleList, int, int]:
    """Build ``layers`` cells, doubling the width at each reduction.

    Returns the cells, the channel count of the last cell's output and that of the cell the
    auxiliary head attaches to.
    """
    cells = nn.ModuleList()
    C_curr = C
    C_aux = C_prev
    reductions = reduction_layers(layers)
    for i in range(layers):
        reduction = i in reductions
        if reduction:
            C_curr *= 2
        cell = Cell(genotype, C_prev_prev, C_prev, C_curr, reduction, reduction_prev)
        cells.append(cell)
        reduction_prev = reduction
        C_prev_prev, C_prev = C_prev, cell.multiplier * C_curr
        if i == reductions[1]:
            C_aux = C_prev
    return cells, C_prev, C_aux


def cells_forward(net: nn.Module, s0: torch.Tensor, s1: torch.Tensor):
    """The forward pass every DARTS-style evaluation network shares after its stem: the cell
    stack (drop-path at ``net.drop_path_prob``), the auxiliary head after cell ``net.aux_index``
    (train mode only), global pooling and the classifier. Returns logits in eval mode and
    ``(logits, logits_aux or None)`` in train mode."""
    logits_aux = None
    for i, cell in enumerate(net.cells):
        s0, s1 = s1, cell(s0, s1, net.drop_path_prob)
        if i == net.aux_index and net.auxiliary_head is not None and net.training:
            logits_aux = net.auxiliary_head(s1)
    logits = net.classifier(net.global_pooling(s1).flatten(1))
    if net.training:
        return logits, logits_aux
    return logits
