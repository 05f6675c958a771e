"""SDARTS: smooth the architecture landscape by training the weights under perturbed
architecture weights (Chen & Hsieh, ICML 2020, "Stabilizing Differentiable Architecture Search
via Perturbation-based Regularization"; code: github.com/xiangning-chen/SmoothDARTS).

The architecture step is DARTS's. Each *weight* step instead sees the op weights
``A = softmax(alpha)`` moved inside an L-inf ball of radius ``epsilon_t``:

* ``sdarts-rs`` (random smoothing): ``A + U(-eps, eps)``;
* ``sdarts-adv`` (adversarial): projected sign-gradient ascent on the training loss, 7 steps of
  size ``2 eps / 7`` from a random start, in eval mode (BatchNorm running statistics untouched),
  keeping the perturbation only if it did raise the loss - as ``Linf_PGD_alpha`` in the
  released code.

After every move each edge's weights are clipped to [0, 1] and renormalised to sum to 1 (an
all-zero row puts its mass back on its strongest op), and ``eps`` ramps linearly from
``sdarts_epsilon_min`` (0.03) to ``sdarts_epsilon`` (0.3) over the epochs, the released schedule
``0.03 + (0.3 - 0.03) * epoch / epochs``. The parameters themselves are never modified: the
perturbed weights reach the forward through :meth:`~dnas.relax.base.Relaxation.fixed_weights`,
so nothing needs restoring, even after an exception.
"""
from __future__ import annotations

import abc
import contextlib
from typing import Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from dnas.relax.base import RELAXATIONS, Relaxation
from dnas.relax.drnas import op_logits
from dnas.relax.softmax import SoftmaxMixedOp


def clip_rows(w: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    """Each row clamped to [0, 1] and renormalised; a row that clamps to all zeros becomes the
    one-hot of ``fallback``'s strongest op."""
    c = w.clamp(0.0, 1.0)
    dead = c.sum(-1, keepdim=True) == 0
    if dead.any():
        c = torch.where(dead, F.one_hot(fallback.argmax(-1), w.shape[-1]).to(w.dtype), c)
    return c / c.sum(-1, keepdim=True)


def epsilon_at(epoch: int, epochs: int, eps_min: float, eps_max: float) -> float:
    """``eps_min + (eps_max - eps_min) * epoch / epochs`` (0-based epoch)."""
    return float(eps_min + (eps_max - eps_min) * epoch / max(epochs, 1))


class PerturbedRelaxation(Relaxation):
    """Shared by ``sdarts-rs`` and ``sdarts-adv``: DARTS mixing, the epsilon schedule, and the
    perturbation applied around each weight step (:meth:`perturb` differs)."""

    def __init__(self, epsilon: float = 0.3, epsilon_min: float = 0.03, steps: int = 7, **options) -> None:
        super().__init__(epsilon=epsilon, epsilon_min=epsilon_min, steps=steps, **options)
        self.eps_max, self.eps_min, self.steps = float(epsilon), float(epsilon_min), int(steps)
        self.epsilon = self.eps_min
        #: Training loss before and after the last perturbation (``sdarts-adv``; for tests and logs).
        self.last_losses: tuple[float, float] | None = None

    @classmethod
    def from_config(cls, cfg) -> "PerturbedRelaxation":
        return cls(epsilon=cfg.sdarts_epsilon, epsilon_min=cfg.sdarts_epsilon_min, steps=cfg.sdarts_steps)

    def mixed_op(self, C: int, stride: int, primitives: Sequence[str]) -> nn.Module:
        return SoftmaxMixedOp(C, stride, primitives)

    def on_epoch(self, epoch: int, epochs: int) -> None:
        self.epsilon = epsilon_at(epoch, epochs, self.eps_min, self.eps_max)

    def state(self) -> dict:
        return {"epsilon": self.epsilon}

    def load_state(self, state: dict) -> None:
        if state:
            self.epsilon = float(state.get("epsilon", self.epsilon))

    @contextlib.contextmanager
    def weight_scope(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Iterator[None]:
        alphas = op_logits(model)
        with torch.no_grad():
            base = [F.softmax(a, -1) for a in alphas]
        perturbed = self.perturb(model, alphas, base, x, y)
        with self.fixed_weights({id(a): w.detach() for a, w in zip(alphas, perturbed)}):
            yield

    @abc.abstractmethod
    def perturb(self, model, alphas, base, x, y) -> list[torch.Tensor]:
        """The perturbed (edges, ops) weights of each parameter, given the clean ``base``."""


@RELAXATIONS.register("sdarts-rs")
class RandomSmoothingRelaxation(PerturbedRelaxation):
    name = "sdarts-rs"

    def perturb(self, model, alphas, base, x, y) -> list[torch.Tensor]:
        eps = self.epsilon
        out = []
        for b in base:
            noise = torch.empty(b.shape).uniform_(-eps, eps).to(b.device, b.dtype)  # CPU generator: resumable
            out.append(clip_rows(b + noise, b))
        return out


@RELAXATIONS.register("sdarts-adv")
class AdversarialRelaxation(PerturbedRelaxation):
    name = "sdarts-adv"

    def _loss(self, model, alphas, ws, x, y) -> torch.Tensor:
        with self.fixed_weights({id(a): w for a, w in zip(alphas, ws)}):
            return F.cross_entropy(model(x), y)

    def perturb(self, model, alphas, base, x, y) -> list[torch.Tensor]:
        eps, lr = self.epsilon, 2 * self.epsilon / max(self.steps, 1)
        was_training = model.training
        model.eval()  # the reference attacks in eval mode: no BatchNorm statistics from the attack
        try:
            with torch.no_grad():
                before = float(self._loss(model, alphas, base, x, y))
            ws = [clip_rows(b + torch.empty(b.shape).uniform_(-eps, eps).to(b.device, b.dtype), b) for b in base]
            for _ in range(self.steps):
                ws = [w.detach().requires_grad_(True) for w in ws]
                grads = torch.autograd.grad(self._loss(model, alphas, ws, x, y), ws)
                with torch.no_grad():
                    ws = [clip_rows(b + (w + lr * g.sign() - b).clamp(-eps, eps), b) for w, g, b in zip(ws, grads, base)]
            with torch.no_grad():
                after = float(self._loss(model, alphas, ws, x, y))
        finally:
            model.train(was_training)
        self.last_losses = (before, after)
        return ws if after >= before else base
