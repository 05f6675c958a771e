"""DARTS continuous relaxation: every edge is the softmax(alpha)-weighted sum of all candidates."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from dnas.relax.base import RELAXATIONS, Relaxation, SharedReluOps


class SoftmaxMixedOp(nn.Module):
    #: ``forward`` takes the edge's scalar (``edge_weight``) itself; see :class:`dnas.supernet.SearchCell`.
    takes_edge_weight = True

    def __init__(self, C: int, stride: int, primitives: Sequence[str]):
        super().__init__()
        self.ops = SharedReluOps(C, stride, primitives)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, edge_weight: torch.Tensor | None = None) -> torch.Tensor:
        if edge_weight is None:
            return self.ops.weighted_sum(x, weights)
        if self.ops.uses_fast_path():
            # e * sum_i w_i op_i(x) = sum_i (e w_i) op_i(x): the fast path then keeps no copy of
            # the edge output for e's gradient
            return self.ops.weighted_sum(x, weights * edge_weight)
        return edge_weight * self.ops.weighted_sum(x, weights)


@RELAXATIONS.register("darts")
class SoftmaxRelaxation(Relaxation):
    name = "darts"

    def mixed_op(self, C: int, stride: int, primitives: Sequence[str]) -> nn.Module:
        return SoftmaxMixedOp(C, stride, primitives)
