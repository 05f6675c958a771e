"""DARTS continuous relaxation: every edge is the softmax(alpha)-weighted sum of all candidates."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from dnas.relax.base import RELAXATIONS, Relaxation, SharedReluOps


class SoftmaxMixedOp(nn.Module):
    def __init__(self, C: int, stride: int, primitives: Sequence[str]):
        super().__init__()
        self.ops = SharedReluOps(C, stride, primitives)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return self.ops.weighted_sum(x, weights)


@RELAXATIONS.register("darts")
class SoftmaxRelaxation(Relaxation):
    name = "darts"

    def mixed_op(self, C: int, stride: int, primitives: Sequence[str]) -> nn.Module:
        return SoftmaxMixedOp(C, stride, primitives)
