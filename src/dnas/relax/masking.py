"""FBNetV2 DMaskingNAS pieces: Gumbel-softmax weights and channel masks (Wan et al. 2020).

Channel search without one conv per candidate width: a block computes its *maximum* width once,
and the output is multiplied by a mask that is the Gumbel-softmax-weighted sum of prefix masks,

    mask = sum_k g_k * [1]*w_k + [0]*(w_max - w_k)      (w_1 < ... < w_K = w_max)

so channel ``c`` is kept with weight ``sum_{k: w_k > c} g_k``. Every candidate shares the same
weights (the first ``w_k`` filters), and adding candidates adds no weights and no activations,
only a row of the ``(K, w_max)`` mask matrix. With all weight on one width, the masked block
computes exactly the plain block of that width (the extra channels are zero before they can
reach the next conv).

:class:`GumbelSoftmaxRelaxation` (``relaxation: fbnetv2``) supplies the weights: soft
Gumbel-softmax samples of the logits in training (FBNet: temperature 5.0, multiplied by
``exp(-0.045)`` every epoch), plain softmax otherwise. It also mixes DARTS-cell edges (a
SNAS-style soft sample of the op weights), so it is a relaxation like the others.
"""
from __future__ import annotations

import contextlib
import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from dnas.relax.base import RELAXATIONS, Relaxation
from dnas.relax.softmax import SoftmaxMixedOp


def prefix_masks(widths: Sequence[int], max_width: int | None = None) -> torch.Tensor:
    """``(K, max_width)`` float matrix, row ``k`` = ones on the first ``widths[k]`` channels."""
    widths = [int(w) for w in widths]
    W = int(max_width or max(widths))
    if not widths or min(widths) < 1 or max(widths) > W:
        raise ValueError(f"widths must be in [1, {W}], got {widths}")
    return (torch.arange(W).unsqueeze(0) < torch.tensor(widths).unsqueeze(1)).float()


def channel_mask(weights: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Weighted sum of prefix masks: ``(K,) @ (K, W) -> (W,)``, shaped to multiply NCHW maps."""
    return (weights.to(masks.dtype) @ masks).view(1, -1, 1, 1)


@RELAXATIONS.register("fbnetv2")
class GumbelSoftmaxRelaxation(Relaxation):
    """Soft Gumbel-softmax weights with an exponentially annealed temperature (FBNet/FBNetV2)."""

    name = "fbnetv2"

    def __init__(self, tau0: float = 5.0, decay: float = math.exp(-0.045), **options) -> None:
        super().__init__(tau0=tau0, decay=decay, **options)
        self.tau0, self.decay, self.tau = float(tau0), float(decay), float(tau0)
        self._expected = False
        self._noise: dict | None = None

    def mixed_op(self, C: int, stride: int, primitives: Sequence[str]) -> nn.Module:
        return SoftmaxMixedOp(C, stride, primitives)

    def op_weights(self, alpha: torch.Tensor, *, training: bool) -> torch.Tensor:
        if not training or self._expected:
            return F.softmax(alpha, dim=-1)
        key = (id(alpha), tuple(alpha.shape))
        if self._noise is not None and key in self._noise:
            g = self._noise[key]
        else:  # global torch RNG: checkpointed and restored by the bilevel loop
            g = -torch.empty_like(alpha).exponential_().log()
            if self._noise is not None:
                self._noise[key] = g
        return F.softmax((F.log_softmax(alpha, -1) + g) / self.tau, dim=-1)

    @contextlib.contextmanager
    def sample_scope(self):
        """Reuse one Gumbel draw per logit tensor for every forward inside the scope."""
        outer, self._noise = self._noise, {} if self._noise is None else self._noise
        try:
            yield
        finally:
            self._noise = outer

    @contextlib.contextmanager
    def expected_scope(self):
        before, self._expected = self._expected, True
        try:
            yield
        finally:
            self._expected = before

    @classmethod
    def from_config(cls, cfg) -> "GumbelSoftmaxRelaxation":
        return cls()

    def on_epoch(self, epoch: int, epochs: int) -> None:
        self.tau = self.tau0 * self.decay ** epoch

    def state(self) -> dict:
        return {"tau": self.tau}

    def load_state(self, state: dict) -> None:
        self.tau = float(state.get("tau", self.tau))
