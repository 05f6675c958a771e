"""MSG-DAS: K mutually exclusive single-path sub-graphs per step from a differentiable
Gumbel-TopK sampler, Dropblock-Identity, and supernet-guided distillation (Tan et al.,
arXiv 2107.04324).

The paper's method section was not available; this is our reading of the abstract, with the
choices we made written down:

* **Gumbel-TopK sampler.** Per edge, the logits are perturbed once per step,
  ``g = log_softmax(alpha) + G``, and the top-K entries of ``g`` are K distinct ops (sampling
  without replacement), so no op is chosen twice on an edge. Sub-graph k uses the k-th of them.
  Its gradient comes from the relaxed top-k of Xie & Ermon (2019): ``a_1 = softmax(g / tau)``,
  ``g_{k+1} = g_k + log(1 - a_k)``, ``a_{k+1} = softmax(g_{k+1} / tau)``, combined with the
  hard choice by the straight-through estimator (value one-hot, gradient of ``a_k``). ``tau``
  follows the GDAS schedule (``tau_max`` -> ``tau_min``).
* **Both steps train the K sub-graphs**: the weight step minimises the mean over sub-graphs of
  cross-entropy + distillation; the architecture step the mean validation cross-entropy. Each
  sub-graph computes one op per edge, so a step costs K single-path forwards/backwards. The
  second-order step unrolls these same two objectives (its virtual step and Hessian-vector
  product on the K-mean weight loss, its validation loss the K-mean at the stepped weights).
* **Dropblock-Identity**: on each sub-graph, an edge whose sampled op is ``skip_connect`` is
  dropped (outputs zero, for the whole batch) with probability ``p`` that decays linearly from
  ``drop_prob`` at the first epoch to 0 at the last. No 1/(1-p) rescaling: the point is to take
  away the identity shortcut's head start, not to keep its expectation.
* **Distillation**: each sub-graph also minimises ``KL(teacher || sub-graph)`` on the train
  batch, weighted by ``distill``. The default teacher is the sub-graph ensemble (mean of the K
  detached softmax outputs: no extra forward, no extra memory); ``teacher="supernet"`` uses a
  no-grad softmax-mixed supernet forward (one DARTS forward of time, no stored activations).
* A plain forward outside these steps (e.g. a user calling the model in train mode) draws one
  fresh sample and uses its first sub-graph; eval mode uses the argmax path, as in GDAS.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from dnas.errors import ConfigError
from dnas.relax.base import RELAXATIONS
from dnas.relax.gdas import SamplingRelaxation, SinglePathMixedOp, gumbel_noise, hard_argmax, straight_through


def gumbel_topk(alpha: torch.Tensor, noise: torch.Tensor, k: int, tau: float) -> torch.Tensor:
    """(k, *alpha.shape) straight-through one-hots of the top-k ops of the perturbed logits:
    the k hard choices of an edge are distinct, each row's gradient is that of the relaxed
    k-th pick."""
    g = F.log_softmax(alpha, -1) + noise
    idx = g.topk(k, dim=-1).indices  # distinct by construction
    out, logits = [], g
    for j in range(k):
        a = F.softmax(logits / tau, -1)
        hard = F.one_hot(idx[..., j], alpha.shape[-1]).to(alpha.dtype)
        out.append(straight_through(hard, a))
        logits = logits + torch.log((1.0 - a).clamp_min(1e-12))
    return torch.stack(out)


@RELAXATIONS.register("msg")
class MultiSubgraphRelaxation(SamplingRelaxation):
    name = "msg"

    def __init__(
        self, k: int = 2, drop_prob: float = 0.3, distill: float = 0.5, teacher: str = "ensemble",
        tau_max: float = 10.0, tau_min: float = 0.1, **options,
    ) -> None:
        super().__init__(tau_max=tau_max, tau_min=tau_min, k=k, drop_prob=drop_prob, distill=distill, teacher=teacher, **options)
        if teacher not in ("ensemble", "supernet"):
            raise ConfigError(f"msg_teacher: unknown teacher {teacher!r}; use ensemble or supernet")
        self.k, self.drop_prob, self.distill, self.teacher = int(k), float(drop_prob), float(distill), teacher
        self.drop = self.drop_prob
        self.skip_index: int | None = None
        self._sub = 0

    @classmethod
    def from_config(cls, cfg) -> "MultiSubgraphRelaxation":
        return cls(k=cfg.msg_k, drop_prob=cfg.msg_drop_prob, distill=cfg.msg_distill, teacher=cfg.msg_teacher,
                   tau_max=cfg.tau_max, tau_min=cfg.tau_min)

    def mixed_op(self, C: int, stride: int, primitives: Sequence[str]) -> nn.Module:
        if self.k > len(primitives):
            raise ConfigError(f"msg_k: {self.k} sub-graphs need at least {self.k} candidate ops per edge, got {len(primitives)}; lower msg_k")
        self.skip_index = list(primitives).index("skip_connect") if "skip_connect" in primitives else None
        return SinglePathMixedOp(C, stride, primitives)

    # ------------------------------------------------------------------ schedule
    def on_epoch(self, epoch: int, epochs: int) -> None:
        super().on_epoch(epoch, epochs)
        frac = min(epoch, epochs - 1) / (epochs - 1) if epochs > 1 else 0.0
        self.drop = self.drop_prob * (1.0 - frac)

    def state(self) -> dict:
        return {**super().state(), "drop": self.drop}

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        if state:
            self.drop = float(state.get("drop", self.drop_prob))

    # ------------------------------------------------------------------ sampling
    @contextlib.contextmanager
    def subgraph(self, k: int) -> Iterator[None]:
        """Forwards inside use sub-graph ``k`` of the current draw."""
        prev, self._sub = self._sub, int(k)
        try:
            yield
        finally:
            self._sub = prev

    def _sample(self, alpha: torch.Tensor) -> dict:
        noise = gumbel_noise(alpha.shape)
        drop = torch.rand((self.k, *alpha.shape[:-1])) < self.drop  # per sub-graph and edge
        return {"noise": noise, "drop": drop}

    def sample_weights(self, alpha: torch.Tensor) -> torch.Tensor:
        """(K, edges, ops) weights of all sub-graphs of the current draw, Dropblock-Identity applied."""
        d = self.draw(alpha, lambda: self._sample(alpha))
        w = gumbel_topk(alpha, d["noise"].to(alpha.device, alpha.dtype), self.k, self.tau)
        if self.skip_index is not None and self.drop > 0:
            dropped = d["drop"].to(alpha.device) & (w.detach().argmax(-1) == self.skip_index)
            w = w * (~dropped).unsqueeze(-1).to(w.dtype)
        return w

    def op_weights(self, alpha: torch.Tensor, *, training: bool) -> torch.Tensor:
        if self._expected:
            return F.softmax(alpha, -1)
        if not training:
            return hard_argmax(alpha, self.tau)
        return self.sample_weights(alpha)[self._sub]

    # ------------------------------------------------------------------ losses
    def _subgraph_logits(self, model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        with self.sample_scope():
            for k in range(self.k):
                with self.subgraph(k):
                    out.append(model(x))
        return out

    def weight_loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self._subgraph_logits(model, x)
        loss = torch.stack([F.cross_entropy(l, y) for l in logits]).mean()
        if self.distill > 0:
            if self.teacher == "supernet":
                with torch.no_grad(), self.expected_scope():
                    target = F.softmax(model(x), -1)
            else:
                target = torch.stack([F.softmax(l.detach(), -1) for l in logits]).mean(0)
            kl = torch.stack([F.kl_div(F.log_softmax(l, -1), target, reduction="batchmean") for l in logits]).mean()
            loss = loss + self.distill * kl
        return loss, torch.stack([l.detach() for l in logits]).mean(0)

    def arch_loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.stack([F.cross_entropy(l, y) for l in self._subgraph_logits(model, x)]).mean()
