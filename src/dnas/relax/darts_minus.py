"""DARTS-: an auxiliary skip connection with a decaying weight on every edge (Chu et al., ICLR
2021, "DARTS-: Robustly Stepping out of Performance Collapse Without Indicators"; code:
github.com/Meituan-AutoML/DARTS-).

Each edge computes the DARTS softmax mixture plus ``beta_t * aux(x)``, where ``aux`` is the
identity on stride-1 edges and a non-affine FactorizedReduce on stride-2 edges (as the released
``MixedOp``), and ``beta_t`` decays linearly from ``dm_beta`` (1.0) at the first epoch to 0 at the
last. The auxiliary path lets gradients flow through the cell without the candidate
``skip_connect`` having to win, which removes skip's unfair advantage early in the search; by
the end the supernet is the plain DARTS one again. Derivation is DARTS's (the auxiliary path is
not a candidate).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from dnas.ops import FactorizedReduce
from dnas.relax.base import RELAXATIONS, Relaxation, SharedReluOps


class AuxSkipMixedOp(nn.Module):
    """DARTS mixture plus the scaled auxiliary skip; the scale is read from the relaxation."""

    def __init__(self, C: int, stride: int, primitives: Sequence[str], relax: "AuxSkipRelaxation"):
        super().__init__()
        self.ops = SharedReluOps(C, stride, primitives)
        self.aux = FactorizedReduce(C, C, affine=False) if stride == 2 else nn.Identity()
        self._relax = [relax]  # a list: not a submodule, not in the state dict

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        out = self.ops.weighted_sum(x, weights)
        beta = self._relax[0].beta
        return out + beta * self.aux(x) if beta > 0 else out


def linear_decay(epoch: int, epochs: int, start: float) -> float:
    """``start`` at the first epoch, 0 at the last (DARTS-'s linear schedule)."""
    if epochs <= 1:
        return float(start)
    return float(start) * (1.0 - min(epoch, epochs - 1) / (epochs - 1))


@RELAXATIONS.register("darts-minus")
class AuxSkipRelaxation(Relaxation):
    name = "darts-minus"

    def __init__(self, beta0: float = 1.0, **options) -> None:
        super().__init__(beta0=beta0, **options)
        self.beta0 = float(beta0)
        self.beta = self.beta0

    @classmethod
    def from_config(cls, cfg) -> "AuxSkipRelaxation":
        return cls(beta0=cfg.dm_beta)

    def mixed_op(self, C: int, stride: int, primitives: Sequence[str]) -> nn.Module:
        return AuxSkipMixedOp(C, stride, primitives, self)

    def on_epoch(self, epoch: int, epochs: int) -> None:
        self.beta = linear_decay(epoch, epochs, self.beta0)

    def state(self) -> dict:
        return {"aux_beta": self.beta}

    def load_state(self, state: dict) -> None:
        if state:
            self.beta = float(state.get("aux_beta", self.beta))
