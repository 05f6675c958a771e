"""SNAS: stochastic NAS with relaxed Gumbel-softmax samples (Xie et al., ICLR 2019, "SNAS:
Stochastic Neural Architecture Search"; code: github.com/SNAS-Series/SNAS-Series).

Every forward draws, per edge, the *soft* (concrete) sample
``z = softmax((log_softmax(alpha) + G) / tau)`` with Gumbel noise ``G``, and the edge is the
z-weighted sum of all candidates: unlike GDAS there is no hard one-hot and every op runs, so
the architecture and the weights are trained with the same generic loss and the sample is an
unbiased relaxation of the categorical choice. The temperature anneals linearly from
``snas_tau_max`` (1.0) to ``snas_tau_min`` (0.33) over the epochs, the schedule used by the SNAS
configuration of automl/ConfigurableOptimizer (the paper anneals from 1.0 as well).

Resource constraint: the paper adds a cost of the sampled child network (parameters, FLOPs,
memory access) to the objective. Here it is dnas's differentiable cost term
(:mod:`dnas.costloss`, ``cost_objective`` params | macs | latency and ``cost_lambda``), the
expected cost of the derived network under ``softmax(alpha)``: same intent, a deterministic
gradient instead of the paper's score-function estimate. It is off unless ``cost_objective``
is set (the ``snas`` preset leaves it off: the paper's lambda per resource is not reproduced).

Draws come from the global torch CPU generator (checkpointed), so a resumed run samples the
same architectures; eval-mode forwards use ``softmax(alpha)`` (no noise).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from dnas.relax.base import RELAXATIONS
from dnas.relax.gdas import SamplingRelaxation, gumbel_noise
from dnas.relax.softmax import SoftmaxMixedOp


@RELAXATIONS.register("snas")
class SNASRelaxation(SamplingRelaxation):
    name = "snas"

    def __init__(self, tau_max: float = 1.0, tau_min: float = 0.33, **options) -> None:
        super().__init__(tau_max=tau_max, tau_min=tau_min, **options)

    @classmethod
    def from_config(cls, cfg) -> "SNASRelaxation":
        return cls(tau_max=cfg.snas_tau_max, tau_min=cfg.snas_tau_min)

    def mixed_op(self, C: int, stride: int, primitives: Sequence[str]) -> nn.Module:
        return SoftmaxMixedOp(C, stride, primitives)

    def op_weights(self, alpha: torch.Tensor, *, training: bool) -> torch.Tensor:
        if self._expected or not training:
            return F.softmax(alpha, -1)
        noise = self.draw(alpha, lambda: gumbel_noise(alpha.shape)).to(alpha.device, alpha.dtype)
        return F.softmax((F.log_softmax(alpha, -1) + noise) / self.tau, -1)
