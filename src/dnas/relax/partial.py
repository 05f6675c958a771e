"""PC-DARTS: partial channel connections with edge normalisation (Xu et al. 2020).

Only the first C/K channels of an edge's input go through the candidate ops; the rest bypass
them (max-pooled 2x2 on reduction edges so shapes match), the two parts are concatenated and
the channels shuffled with K groups so a different subset is sampled by the next edge. Edge
normalisation adds one weight beta per edge, softmaxed over each node's incoming edges; it
multiplies the edge output in the forward pass and the op weights at derivation.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from dnas.ops import ChannelsLastMaxPool2d
from dnas.relax.base import RELAXATIONS, Relaxation, SharedReluOps, node_slices


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def shuffled_concat(y: torch.Tensor, rest: torch.Tensor, groups: int) -> torch.Tensor:
    """``channel_shuffle(torch.cat([y, rest], 1), groups)`` in one copy instead of two: output
    channel ``j * groups + g`` is channel ``j`` of group ``g`` (``y`` is group 0, ``rest`` holds
    groups 1..), which is what stacking the groups along a new axis after the channels lays out."""
    n, c, h, w = y.shape
    if rest.shape[1] != (groups - 1) * c:
        return channel_shuffle(torch.cat([y, rest], dim=1), groups)
    return torch.stack([y, *rest.split(c, dim=1)], dim=2).reshape(n, c * groups, h, w)


class PartialMixedOp(nn.Module):
    #: ``forward`` takes the edge-normalisation scalar itself; see :class:`dnas.supernet.SearchCell`.
    takes_edge_weight = True

    def __init__(self, C: int, stride: int, primitives: Sequence[str], k: int):
        super().__init__()
        if C % k:
            raise ValueError(f"partial_k={k} must divide the channel count {C}")
        self.k = k
        self.stride = stride
        self.ops = SharedReluOps(C // k, stride, primitives)
        self.bypass_pool = ChannelsLastMaxPool2d(2, 2) if stride == 2 else None

    def forward(self, x: torch.Tensor, weights: torch.Tensor, edge_weight: torch.Tensor | None = None) -> torch.Tensor:
        """``edge_weight * shuffle(cat(mixed ops on the first C/K channels, bypass))``. On the
        fast path the edge weight multiplies the op weights and the bypass instead of the
        shuffled output (same value), so no full-width copy of the output is kept for its
        gradient: the bypass of a stride-1 edge is a view of ``x``, which is alive anyway."""
        inside = edge_weight is not None and self.ops.uses_fast_path()
        c = x.shape[1] // self.k
        # split, not two slices: its backward concatenates the two gradients into one new
        # tensor, where each slice's backward would zero-fill a full-width one and add them
        active, rest = x.split([c, x.shape[1] - c], dim=1)
        y = self.ops.weighted_sum(active, weights * edge_weight if inside else weights)
        if self.bypass_pool is not None:
            rest = self.bypass_pool(rest)
            if rest.shape[-2:] != y.shape[-2:]:  # odd spatial sizes
                rest = F.pad(rest, (0, y.shape[-1] - rest.shape[-1], 0, y.shape[-2] - rest.shape[-2]))
        if inside:
            rest = edge_weight * rest
        out = shuffled_concat(y, rest, self.k)
        return out if edge_weight is None or inside else edge_weight * out


def normalized_edge_weights(beta: torch.Tensor, steps: int) -> torch.Tensor:
    """Softmax of beta over each node's incoming edges (groups of 2, 3, 4, 5 for 4 steps)."""
    return torch.cat([F.softmax(beta[s], dim=-1) for s in node_slices(steps)])


@RELAXATIONS.register("pc")
class PartialChannelRelaxation(Relaxation):
    name = "pc"
    uses_edge_params = True

    def __init__(self, partial_k: int = 4, **options) -> None:
        super().__init__(partial_k=partial_k, **options)
        self.k = partial_k

    def mixed_op(self, C: int, stride: int, primitives: Sequence[str]) -> nn.Module:
        return PartialMixedOp(C, stride, primitives, self.k)

    def edge_weights(self, beta: torch.Tensor | None, steps: int) -> torch.Tensor | None:
        return None if beta is None else normalized_edge_weights(beta, steps)
