"""DrNAS: the architecture as a Dirichlet distribution per edge (Chen et al., ICLR 2021,
"DrNAS: Dirichlet Neural Architecture Search"; code: github.com/xiangning-chen/DrNAS).

Each edge's op weights are a sample ``w ~ Dir(beta)`` with concentration
``beta = elu(alpha) + 1`` (always positive). ``rsample`` uses torch's implicit
reparameterisation (pathwise gradients through the Gamma sampler), so the validation loss
differentiates with respect to the concentration parameters themselves. The objective adds an
anchor regulariser, as the released code: ``reg_scale * sum_e KL(Dir(beta_e) || Dir(1))``
(``drnas_reg: kl``) or the code's alternative ``reg_scale * ||alpha||^2`` (``l2``), keeping the
distribution from concentrating early. Evaluation forwards (``training=False``) use the Dirichlet
mean; derivation ranks ops by ``softmax(alpha)`` as the reference does (same order as the mean
within an edge).

Options: ``drnas_reg`` (kl | l2 | none), ``drnas_reg_scale`` (1e-3, the paper's value),
``drnas_partial_k`` (> 1: DrNAS's partial-channel mixing, 1/K of the channels through the
ops, with PC-DARTS edge normalisation, as its DARTS-space search).

Where we differ: the paper's *progressive* schedule (grow K while pruning half the ops per
edge between two stages) is not implemented; ``drnas_partial_k`` fixes K for the whole search.
Samples are drawn from the global torch generator (checkpointed), once per forward; inside a
:meth:`sample_scope` every forward reuses the same draw.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.distributions import Dirichlet, kl_divergence

from dnas.errors import ConfigError
from dnas.relax.base import RELAXATIONS
from dnas.relax.gdas import SamplingRelaxation
from dnas.relax.partial import PartialMixedOp, normalized_edge_weights
from dnas.relax.softmax import SoftmaxMixedOp


def concentration(alpha: torch.Tensor) -> torch.Tensor:
    """Dirichlet concentration of each edge: ``elu(alpha) + 1 > 0``."""
    return F.elu(alpha) + 1.0


def op_logits(model: nn.Module) -> list[torch.Tensor]:
    """The (edges, ops) architecture parameters of a supernet (edge parameters are 1-D)."""
    return [p for p in model.arch_parameters() if p.dim() == 2]


@RELAXATIONS.register("drnas")
class DirichletRelaxation(SamplingRelaxation):
    name = "drnas"

    def __init__(self, reg: str = "kl", reg_scale: float = 1e-3, partial_k: int = 1, **options) -> None:
        super().__init__(reg=reg, reg_scale=reg_scale, partial_k=partial_k, **options)
        if reg not in ("kl", "l2", "none"):
            raise ConfigError(f"drnas_reg: one of kl, l2, none, got {reg!r}")
        self.reg, self.reg_scale, self.k = reg, float(reg_scale), int(partial_k)
        self.uses_edge_params = self.k > 1

    @classmethod
    def from_config(cls, cfg) -> "DirichletRelaxation":
        if cfg.unrolled:
            raise ConfigError("unrolled: drnas samples carry their own autograd graph and cannot be reused by the second-order step; use unrolled: false")
        return cls(reg=cfg.drnas_reg, reg_scale=cfg.drnas_reg_scale, partial_k=cfg.drnas_partial_k)

    def mixed_op(self, C: int, stride: int, primitives: Sequence[str]) -> nn.Module:
        if self.k > 1:
            if C % self.k:
                raise ConfigError(f"drnas_partial_k: {self.k} must divide the channel count {C}; pick a divisor of init_channels")
            return PartialMixedOp(C, stride, primitives, self.k)
        return SoftmaxMixedOp(C, stride, primitives)

    def op_weights(self, alpha: torch.Tensor, *, training: bool) -> torch.Tensor:
        beta = concentration(alpha)
        if self._expected or not training:
            return beta / beta.sum(-1, keepdim=True)  # the Dirichlet mean
        return self.draw(alpha, lambda: Dirichlet(beta.cpu()).rsample()).to(alpha.device)

    def edge_weights(self, beta: torch.Tensor | None, steps) -> torch.Tensor | None:
        return normalized_edge_weights(beta, steps) if beta is not None else None

    def arch_term(self, model: nn.Module) -> torch.Tensor | None:
        if self.reg == "none" or self.reg_scale == 0:
            return None
        total = None
        for alpha in op_logits(model):
            if self.reg == "kl":
                beta = concentration(alpha)
                term = kl_divergence(Dirichlet(beta), Dirichlet(torch.ones_like(beta))).sum()
            else:
                term = (alpha**2).sum()
            total = term if total is None else total + term
        return None if total is None else self.reg_scale * total

    # No temperature: the schedule state of SamplingRelaxation is kept only for the epoch counter.
    def on_epoch(self, epoch: int, epochs: int) -> None:
        self.epoch, self.epochs = int(epoch), int(epochs)

    def state(self) -> dict:
        return {"epoch": self.epoch, "epochs": self.epochs}
