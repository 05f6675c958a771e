"""Fair DARTS: independent sigmoid op weights and the zero-one loss (Chu et al., ECCV 2020,
"Fair DARTS: Eliminating Unfair Advantages in Differentiable Architecture Search"; code:
github.com/xiaomi-automl/FairDARTS).

Each candidate's weight is ``sigmoid(alpha)``, not a softmax share: ops no longer compete for
one unit of mass, so skip connections cannot win by crowding the others out (the "unfair
advantage"). The architecture objective adds the zero-one loss

    L_01 = -(1/N) * sum_i (sigmoid(alpha_i) - 0.5)^2      times  ``fair_zero_one`` (10, the paper's w01)

which pushes every weight towards 0 or 1 so that discretisation loses little. Derivation uses
the sigmoid weights with the space's rule (DARTS: the two inputs with the strongest real op,
then that op; NB201: the strongest op per edge).

Where we differ: the paper's DARTS-space derivation first thresholds sigmoid weights at 0.85
and may keep more than two inputs; dnas keeps the space's fixed top-2 so the genotype stays
in the DARTS cell space every other tool reads. The primitives are whatever the config lists
(the paper drops ``none``; pass ``primitives`` without it to reproduce that).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from dnas.relax.base import RELAXATIONS, Relaxation
from dnas.relax.drnas import op_logits
from dnas.relax.softmax import SoftmaxMixedOp


def zero_one_loss(alphas: Sequence[torch.Tensor]) -> torch.Tensor:
    """``-mean((sigmoid(alpha) - 0.5)^2)`` over every op weight of every parameter."""
    s = torch.cat([torch.sigmoid(a).flatten() for a in alphas])
    return -((s - 0.5) ** 2).mean()


@RELAXATIONS.register("fairdarts")
class FairDARTSRelaxation(Relaxation):
    name = "fairdarts"

    def __init__(self, zero_one: float = 10.0, **options) -> None:
        super().__init__(zero_one=zero_one, **options)
        self.zero_one = float(zero_one)

    @classmethod
    def from_config(cls, cfg) -> "FairDARTSRelaxation":
        return cls(zero_one=cfg.fair_zero_one)

    def mixed_op(self, C: int, stride: int, primitives: Sequence[str]) -> nn.Module:
        return SoftmaxMixedOp(C, stride, primitives)  # a weighted sum; the weights are sigmoids

    def op_weights(self, alpha: torch.Tensor, *, training: bool) -> torch.Tensor:
        return torch.sigmoid(alpha)

    def derive_weights(self, alpha: torch.Tensor, beta, steps) -> torch.Tensor:
        return torch.sigmoid(alpha)

    def arch_term(self, model: nn.Module) -> torch.Tensor | None:
        alphas = op_logits(model)
        if self.zero_one == 0 or not alphas:
            return None
        return self.zero_one * zero_one_loss(alphas)
