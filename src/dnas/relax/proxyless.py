"""ProxylessNAS: binarised paths and a latency term (Cai et al., ICLR 2019, "ProxylessNAS:
Direct Neural Architecture Search on Target Task and Hardware"; code:
github.com/mit-han-lab/proxylessnas).

Per edge, ``p = softmax(alpha)`` and a binary gate chooses the path:

* weight step: one op drawn from ``p``; only it runs (memory of one path);
* architecture step ("two-path" mode of the released code): two distinct ops drawn from ``p``,
  one of them chosen by their renormalised probabilities; both run, the forward value is the
  chosen op's, and the gate's straight-through gradient ``g = hard + q - q.detach()`` over the
  pair (``q = softmax(alpha_pair)``) gives the paper's estimator
  ``dL/dalpha_i = sum_j dL/dg_j q_j (delta_ij - q_i)`` restricted to the two sampled ops;
* after the architecture update the two updated logits are shifted by a common offset so
  that their log-sum-exp is unchanged (the code's ``rescale_updated_arch_param``): the
  unsampled ops' probabilities stay what they were.

Latency: the paper's expected latency ``sum_j p_j * lat_j`` per block joins the loss. Here it is
dnas's cost model (:mod:`dnas.costloss`): ``cost_objective: latency_table`` (per-op latencies
measured on this machine) or ``latency_predictor``, weight ``cost_lambda``, optional budget
``max_latency_ms``; the ``proxyless`` preset switches on ``latency_table``. This is the paper's
additive form (``CE + lambda * E[lat]``), not its multiplicative variant.

Eval-mode forwards run the argmax path. Draws come from the torch CPU generator (checkpointed).
The gate format passed to the mixed op is a (2, ops) tensor per edge: gate values and the
mask of the ops to compute.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from dnas.errors import ConfigError
from dnas.relax.base import RELAXATIONS, Relaxation, SharedReluOps


class BinaryGateMixedOp(nn.Module):
    """Computes the ops marked in the gate's support (row 1) and sums gate (row 0) times
    output; a plain (ops,) weight vector computes its non-zero entries (eval, expected mode)."""

    def __init__(self, C: int, stride: int, primitives: Sequence[str]):
        super().__init__()
        self.ops = SharedReluOps(C, stride, primitives)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if weights.dim() == 2:
            gates, support = weights[0], weights[1]
        else:
            gates, support = weights, weights.detach()
        idx = torch.nonzero(support.detach()).flatten().tolist()
        return self.ops.weighted_sum(x, gates, indices=idx)


def sample_pair(p: torch.Tensor) -> torch.Tensor:
    """(edges, 2) indices of two distinct ops per edge drawn from ``p`` without replacement."""
    if p.shape[-1] < 2:
        raise ConfigError("primitives: proxyless needs at least two candidate ops per edge")
    return torch.multinomial(p.detach().cpu().double(), 2, replacement=False)


@RELAXATIONS.register("proxyless")
class BinaryPathRelaxation(Relaxation):
    name = "proxyless"

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self._arch_mode = False
        self._pairs: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self._expected = False

    @classmethod
    def from_config(cls, cfg) -> "BinaryPathRelaxation":
        if cfg.unrolled:
            raise ConfigError("unrolled: proxyless binary gates are first-order only; use unrolled: false")
        return cls()

    def mixed_op(self, C: int, stride: int, primitives: Sequence[str]) -> nn.Module:
        return BinaryGateMixedOp(C, stride, primitives)

    @contextlib.contextmanager
    def expected_scope(self) -> Iterator[None]:
        prev, self._expected = self._expected, True
        try:
            yield
        finally:
            self._expected = prev

    def op_weights(self, alpha: torch.Tensor, *, training: bool) -> torch.Tensor:
        p = F.softmax(alpha, -1)
        if self._expected:
            return p
        K = alpha.shape[-1]
        if not training:
            return F.one_hot(alpha.argmax(-1), K).to(alpha.dtype)
        if not self._arch_mode:  # weight step: one path drawn from p
            idx = torch.multinomial(p.detach().cpu().double(), 1).flatten()
            return F.one_hot(idx, K).to(alpha.device, alpha.dtype)
        pair = sample_pair(p).to(alpha.device)  # architecture step: two paths, a binary gate
        q = F.softmax(alpha.gather(-1, pair), -1)
        pick = torch.multinomial(q.detach().cpu().double(), 1).to(alpha.device)  # which of the two
        hard = torch.zeros_like(q).scatter_(-1, pick, 1.0)
        gate_pair = hard + q - q.detach()
        gates = torch.zeros_like(alpha).scatter(-1, pair, gate_pair)
        support = torch.zeros_like(alpha).scatter_(-1, pair, 1.0)
        self._pairs[id(alpha)] = (alpha, pair, alpha.detach().gather(-1, pair).logsumexp(-1))
        return torch.stack([gates, support], dim=1)  # (edges, 2, ops)

    def arch_loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self._arch_mode, self._pairs = True, {}
        try:
            return F.cross_entropy(model(x), y)
        finally:
            self._arch_mode = False

    def after_arch_step(self, model: nn.Module) -> None:
        """Shift the two updated logits of each edge so their log-sum-exp is what it was."""
        with torch.no_grad():
            for alpha, pair, old_lse in self._pairs.values():
                new = alpha.gather(-1, pair)
                alpha.scatter_(-1, pair, new + (old_lse - new.logsumexp(-1)).unsqueeze(-1))
        self._pairs = {}
