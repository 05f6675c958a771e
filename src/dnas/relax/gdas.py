"""GDAS: one Gumbel-sampled path per edge (Dong & Yang, CVPR 2019).

Per edge: ``logits = (log_softmax(alpha) + G) / tau`` with Gumbel noise ``G``,
``probs = softmax(logits)``, and the forward uses the one-hot of ``argmax(logits)`` with a
straight-through gradient, ``hard - probs.detach() + probs``: the value is exactly the one-hot
(so only the sampled op is computed, and time and activation memory are those of one path) and
the gradient reaches every logit through ``probs``. The temperature goes linearly from
``tau_max`` (10) to ``tau_min`` (0.1) over the epochs; a draw whose noise or probabilities are
not finite is drawn again.

Choices where the paper leaves room:

* The noise is drawn on the CPU from the global torch generator and then moved to the
  parameters' device, so a run's samples depend only on the torch CPU RNG state, which the
  search checkpoints: resumed runs draw exactly the same paths, on any device.
* **Estimator** (``estimator``, config ``gdas_estimator``). ``reference`` (default) is the
  released code's ``forward_gdas``: an edge outputs ``w_k * op_k(x) + sum_{i != k} w_i``, where
  ``k`` is the sampled op and every other straight-through weight ``w_i`` is exactly 0 in value
  but carries gradient ``sum(dL/d out)`` to its logit. ``sampled-only`` leaves the unselected
  weights out, so only ``w_k`` has a direct gradient; an edge that samples ``none`` (whose output
  is a constant zero) then gives all of its logits a zero gradient. The reference estimator is
  biased too, but it is what GDAS published results with, so it is the default.
* **Step order.** The released ``search_func`` takes the weight step on the train batch first and
  then the architecture step on the val batch; :attr:`GumbelRelaxation.step_order` says so and the
  bilevel loop follows it (DARTS and the other relaxations step the architecture first).
* **Derivation** (``derive``, config ``gdas_derive``). ``darts`` (default): the DARTS rule, two
  distinct input edges per node. ``reference``: the released NASNet-space GDAS ``genotype()``:
  per node, the two strongest (op, input) pairs over every non-``none`` op of every incoming
  edge, so both kept ops may read the same input.
* The temperature schedule spans the architecture-search epochs only (the bilevel loop passes
  the epoch counted from the end of the warm-up), so a warm-up never uses up the annealing.
* In eval mode (``training=False``) the path is the argmax of ``alpha`` (no noise), so the
  per-epoch validation accuracy is that of the currently preferred single-path network.

:class:`SamplingRelaxation` holds what the sampling relaxations (GDAS, MSG-DAS, TopoNAS) share:
the temperature schedule (checkpointed through :meth:`state` / :meth:`load_state`) and the
draw cache behind :meth:`~dnas.relax.base.Relaxation.sample_scope`.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from dnas.errors import ConfigError, DivergenceError
from dnas.relax.base import RELAXATIONS, Relaxation, SharedReluOps

#: How many times a non-finite Gumbel draw is redrawn before giving up.
MAX_REDRAWS = 100


def gumbel_noise(shape: Sequence[int]) -> torch.Tensor:
    """Standard Gumbel noise ``-log(Exp(1))`` on the CPU from the global torch generator;
    redrawn while any value is infinite (an exponential sample of exactly 0)."""
    for _ in range(MAX_REDRAWS):
        g = -torch.empty(tuple(shape)).exponential_().log()
        if torch.isfinite(g).all():
            return g
    raise DivergenceError(f"Gumbel noise was not finite after {MAX_REDRAWS} draws; check the torch RNG state")


def linear_tau(epoch: int, epochs: int, tau_max: float, tau_min: float) -> float:
    """Temperature of ``epoch`` (0-based): ``tau_max`` at the first epoch, ``tau_min`` at the last."""
    if epochs <= 1:
        return float(tau_max)
    return float(tau_max - (tau_max - tau_min) * min(epoch, epochs - 1) / (epochs - 1))


def straight_through(hard: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """Value ``hard``, gradient of ``soft``. Positions where ``hard`` is 0 are exactly 0
    (``-p + p``), which :class:`SinglePathMixedOp` relies on to skip those ops."""
    return hard - soft.detach() + soft


def hard_argmax(alpha: torch.Tensor, tau: float) -> torch.Tensor:
    """Noise-free straight-through one-hot of ``argmax(alpha)`` (the preferred path)."""
    probs = F.softmax(F.log_softmax(alpha, -1) / tau, -1)
    hard = F.one_hot(alpha.argmax(-1), alpha.shape[-1]).to(alpha.dtype)
    return straight_through(hard, probs)


class SinglePathMixedOp(nn.Module):
    """An edge that computes only the candidates with a non-zero weight: one op for a sampled
    one-hot, every op for a softmax (so the same module serves a supernet teacher forward).

    With ``zero_weight_grad`` (the GDAS reference estimator) the zero-valued weights of the ops
    that were not computed are added to the output: the value is unchanged (they are exactly 0)
    and each of them receives the gradient ``sum(dL/d out)``."""

    def __init__(self, C: int, stride: int, primitives: Sequence[str], zero_weight_grad: bool = False):
        super().__init__()
        self.ops = SharedReluOps(C, stride, primitives)
        self.zero_weight_grad = zero_weight_grad

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        nonzero = weights.detach() != 0
        idx = torch.nonzero(nonzero).flatten().tolist()
        out = self.ops.weighted_sum(x, weights, indices=idx)
        if self.zero_weight_grad and weights.requires_grad and not bool(nonzero.all()):
            out = out + weights[~nonzero].sum()
        return out


class SamplingRelaxation(Relaxation):
    """Shared machinery of relaxations that sample: temperature schedule and draw cache."""

    def __init__(self, tau_max: float = 10.0, tau_min: float = 0.1, **options) -> None:
        super().__init__(tau_max=tau_max, tau_min=tau_min, **options)
        self.tau_max, self.tau_min = float(tau_max), float(tau_min)
        self.tau = self.tau_max
        self.epoch, self.epochs = 0, 1
        self._scope_depth = 0
        self._draws: dict[int, object] = {}
        self._expected = False

    # ------------------------------------------------------------------ schedule
    def on_epoch(self, epoch: int, epochs: int) -> None:
        self.epoch, self.epochs = int(epoch), int(epochs)
        self.tau = linear_tau(epoch, epochs, self.tau_max, self.tau_min)

    def state(self) -> dict:
        return {"tau": self.tau, "epoch": self.epoch, "epochs": self.epochs}

    def load_state(self, state: dict) -> None:
        if state:
            self.epoch, self.epochs = int(state.get("epoch", 0)), int(state.get("epochs", 1))
            self.tau = float(state.get("tau", self.tau_max))

    # ------------------------------------------------------------------ draws
    @contextlib.contextmanager
    def sample_scope(self) -> Iterator[None]:
        """Inside the scope each architecture tensor is sampled once and every forward reuses
        that draw (the cache is keyed by the tensor and cleared when the outermost scope ends)."""
        self._scope_depth += 1
        try:
            yield
        finally:
            self._scope_depth -= 1
            if self._scope_depth == 0:
                self._draws.clear()

    @contextlib.contextmanager
    def expected_scope(self) -> Iterator[None]:
        """Forwards inside use the distribution itself instead of a sample: softmax(alpha) op
        mixing (every op computed) and expected edge weights. This is the deterministic
        objective whose curvature the collapse guard measures, and MSG-DAS's supernet teacher."""
        prev, self._expected = self._expected, True
        try:
            yield
        finally:
            self._expected = prev

    def draw(self, param: torch.Tensor, make: Callable[[], object]) -> object:
        """A fresh draw from ``make()``, or the scope's cached draw for ``param``."""
        if self._scope_depth == 0:
            return make()
        key = id(param)
        if key not in self._draws:
            self._draws[key] = make()
        return self._draws[key]


#: ``gdas_estimator`` values: how unselected ops' weights enter an edge's output.
GDAS_ESTIMATORS = ("reference", "sampled-only")
#: ``gdas_derive`` values: the DARTS rule or the released GDAS (op, input)-pair rule.
GDAS_DERIVATIONS = {"darts": "darts", "reference": "op-pairs"}


@RELAXATIONS.register("gdas")
class GumbelRelaxation(SamplingRelaxation):
    name = "gdas"
    #: The released GDAS search loop trains the weights first, then the architecture.
    step_order = ("weights", "arch")

    def __init__(self, estimator: str = "reference", derive: str = "darts", **options) -> None:
        super().__init__(estimator=estimator, derive=derive, **options)
        if estimator not in GDAS_ESTIMATORS:
            raise ConfigError(f"gdas_estimator: unknown estimator {estimator!r}; use {' or '.join(GDAS_ESTIMATORS)}")
        if derive not in GDAS_DERIVATIONS:
            raise ConfigError(f"gdas_derive: unknown derivation {derive!r}; use {' or '.join(GDAS_DERIVATIONS)}")
        self.estimator = estimator
        self.derive_rule = GDAS_DERIVATIONS[derive]

    @classmethod
    def from_config(cls, cfg) -> "GumbelRelaxation":
        return cls(tau_max=cfg.tau_max, tau_min=cfg.tau_min, estimator=cfg.gdas_estimator, derive=cfg.gdas_derive)

    def mixed_op(self, C: int, stride: int, primitives: Sequence[str]) -> nn.Module:
        return SinglePathMixedOp(C, stride, primitives, zero_weight_grad=self.estimator == "reference")

    def op_weights(self, alpha: torch.Tensor, *, training: bool) -> torch.Tensor:
        if self._expected:
            return F.softmax(alpha, -1)
        if not training:
            return hard_argmax(alpha, self.tau)
        logp = F.log_softmax(alpha, -1)
        for _ in range(MAX_REDRAWS):
            noise = self.draw(alpha, lambda: gumbel_noise(alpha.shape)).to(alpha.device, alpha.dtype)
            logits = (logp + noise) / self.tau
            probs = F.softmax(logits, -1)
            if torch.isfinite(probs).all():
                hard = F.one_hot(logits.argmax(-1), alpha.shape[-1]).to(alpha.dtype)
                return straight_through(hard, probs)
            self._draws.pop(id(alpha), None)  # resample (also inside a scope)
            if not torch.isfinite(logp).all():
                break
        raise DivergenceError("gdas: Gumbel-softmax probabilities are not finite; the architecture logits diverged (lower arch_lr)")
