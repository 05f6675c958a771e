"""beta-DARTS: the beta-decay regulariser (Ye et al., CVPR 2022, "beta-DARTS: Beta-Decay
Regularization for Differentiable Architecture Search"; code: github.com/Sunshine-Ye/Beta-DARTS).

DARTS mixing (softmax), plus a regulariser on the architecture logits that keeps the
softmax weights ("beta") from growing unevenly: the smooth maximum of each edge's logits,

    L_beta = lambda_t * mean_e logsumexp(alpha_e)

added to every architecture step. Its gradient is ``softmax(alpha_e)``, so an Adam step on it
lowers strong ops more than weak ones: the weights decay towards uniform, which the paper links
to flatter (more robust) architecture optima and less dependence on the search schedule.
``lambda_t`` grows linearly from 0 at the first epoch to ``beta_lambda`` at the last.

Where we are unsure: the reference code was not available to us; ``beta_lambda`` defaults to
0.5 and the linear ramp is our reading of the paper's schedule - check both before quoting a
reproduction.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from dnas.relax.base import RELAXATIONS, Relaxation
from dnas.relax.drnas import op_logits
from dnas.relax.softmax import SoftmaxMixedOp


def beta_decay(alphas: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean over the edges of every parameter of ``logsumexp(alpha_e)``."""
    return torch.cat([torch.logsumexp(a, dim=-1).flatten() for a in alphas]).mean()


def linear_ramp(epoch: int, epochs: int, top: float) -> float:
    """0 at the first epoch, ``top`` at the last (``top`` for a one-epoch search)."""
    return float(top) if epochs <= 1 else float(top) * min(epoch, epochs - 1) / (epochs - 1)


@RELAXATIONS.register("beta-darts")
class BetaDecayRelaxation(Relaxation):
    name = "beta-darts"

    def __init__(self, beta_lambda: float = 0.5, **options) -> None:
        super().__init__(beta_lambda=beta_lambda, **options)
        self.beta_lambda = float(beta_lambda)
        self.weight = linear_ramp(0, 1, self.beta_lambda)

    @classmethod
    def from_config(cls, cfg) -> "BetaDecayRelaxation":
        return cls(beta_lambda=cfg.beta_lambda)

    def mixed_op(self, C: int, stride: int, primitives: Sequence[str]) -> nn.Module:
        return SoftmaxMixedOp(C, stride, primitives)

    def on_epoch(self, epoch: int, epochs: int) -> None:
        self.weight = linear_ramp(epoch, epochs, self.beta_lambda)

    def state(self) -> dict:
        return {"beta_weight": self.weight}

    def load_state(self, state: dict) -> None:
        if state:
            self.weight = float(state.get("beta_weight", self.weight))

    def arch_term(self, model: nn.Module) -> torch.Tensor | None:
        alphas = op_logits(model)
        if self.weight == 0 or not alphas:
            return None
        return self.weight * beta_decay(alphas)
