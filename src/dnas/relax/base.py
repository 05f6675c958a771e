"""The relaxation interface: how one edge of a supernet mixes its candidate ops.

A relaxation decides three things, and nothing else:

* which module computes an edge (:meth:`Relaxation.mixed_op`), given per-op weights;
* how architecture logits become the per-op weights used in the forward pass
  (:meth:`Relaxation.op_weights`: softmax for DARTS, a hard Gumbel sample for GDAS, ...);
* optional per-edge scalars (:meth:`Relaxation.edge_weights`: PC-DARTS edge normalisation).

The supernet owns the parameters; relaxations are stateless apart from their options, so a new
relaxation is one module that subclasses :class:`Relaxation` and registers itself in
:data:`RELAXATIONS`.
"""
from __future__ import annotations

import abc
import contextlib

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from dnas.ops import make_op
from dnas.relax.fused import fused_weighted_sum
from dnas.registry import Registry

RELAXATIONS: Registry[type["Relaxation"]] = Registry("relaxation")


def node_inputs(steps: "int | Sequence[int]") -> list[int]:
    """Number of incoming edges of each node. An int is the DARTS cell's ``steps`` (node i reads
    the 2 cell inputs and the i earlier nodes: 2, 3, 4, 5 for 4 steps); another space's
    supernet passes its own per-node counts (NB201: 1, 2, 3)."""
    if isinstance(steps, int):
        return [i + 2 for i in range(steps)]
    return [int(n) for n in steps]


def node_slices(steps: "int | Sequence[int]") -> list[slice]:
    """Edge index ranges of each node's incoming edges, edges listed node by node: for the
    DARTS cell (an int ``steps``) [0:2], [2:5], [5:9], [9:14]; see :func:`node_inputs`."""
    out, start = [], 0
    for n in node_inputs(steps):
        out.append(slice(start, start + n))
        start += n
    return out


def num_edges(steps: "int | Sequence[int]") -> int:
    return sum(node_inputs(steps))


def edge_output(edge: nn.Module, x: torch.Tensor, weights: torch.Tensor, edge_weight: torch.Tensor | None) -> torch.Tensor:
    """``edge_weight * edge(x, weights)`` (just the edge when ``edge_weight`` is None). Mixed ops
    that declare ``takes_edge_weight`` get the scalar themselves, so the fast path can fold it
    into the op weights instead of keeping a copy of the edge output for its gradient."""
    if edge_weight is None:
        return edge(x, weights)
    if getattr(edge, "takes_edge_weight", False):
        return edge(x, weights, edge_weight=edge_weight)
    return edge_weight * edge(x, weights)


class SharedReluOps(nn.Module):
    """The candidate ops of one edge, with the leading ReLU that DARTS conv ops share computed
    once per edge instead of once per op (same result, less time and activation memory).

    ``fast`` selects the fast path of :mod:`dnas.relax.fused` (recomputed BN outputs and pooled
    maps instead of stored ones) for training forwards that build a graph; it computes the same
    values and gradients. ``fast=False`` (the default of a bare module) is the plain op-by-op
    path, where every op's ``forward`` (and its hooks) runs; supernets built from a config
    (:func:`dnas.strategies.bilevel.build_supernet`) switch to the fast path unless ``fast: false``."""

    def __init__(self, C: int, stride: int, primitives: Sequence[str], skip_none: bool = True, fast: bool = False):
        super().__init__()
        self.fast = fast
        self.stride = stride
        self.primitives = list(primitives)
        self.ops = nn.ModuleList()
        self._relu_first: list[bool] = []
        for name in self.primitives:
            op = make_op(name, C, stride, affine=False)
            if "pool" in name:  # DARTS: search-time pooling is followed by a non-affine BN
                op = nn.Sequential(op, nn.BatchNorm2d(C, affine=False))
            relu_first = isinstance(op, nn.Sequential) and len(op) > 1 and isinstance(op[0], nn.ReLU)
            self._relu_first.append(relu_first)
            self.ops.append(op)
        # `none` contributes w * 0 to the sum: its output and its gradient w.r.t. every
        # parameter (including its own weight) are exactly zero, so it is never computed.
        self._active = [i for i, n in enumerate(self.primitives) if not (skip_none and n == "none")]

    def uses_fast_path(self) -> bool:
        """Whether a forward now takes the fast path: switched on, training, building a graph."""
        return self.fast and self.training and torch.is_grad_enabled()

    def run(self, i: int, x: torch.Tensor, xr: torch.Tensor | None) -> torch.Tensor:
        op = self.ops[i]
        if self._relu_first[i]:
            h = xr
            for m in list(op)[1:]:
                h = m(h)
            return h
        return op(x)

    def weighted_sum(self, x: torch.Tensor, weights: torch.Tensor, indices: Sequence[int] | None = None) -> torch.Tensor:
        idx = self._active if indices is None else [i for i in indices if i in self._active]
        if idx and self.uses_fast_path():
            return fused_weighted_sum(self, x, weights, idx)
        xr = F.relu(x) if any(self._relu_first[i] for i in idx) else None
        out = None
        for i in idx:
            y = weights[i] * self.run(i, x, xr)
            out = y if out is None else out + y
        if out is None:  # every weight on `none`
            out = self._zeros_like_output(x)
        return out

    def _zeros_like_output(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, :: self.stride, :: self.stride] * 0.0


class Relaxation(abc.ABC):
    """Base class: softmax over op logits, no edge scalars. Subclasses override what differs."""

    name = "base"
    #: Whether the supernet should create per-edge parameters (beta) for this relaxation.
    uses_edge_params = False
    #: Whether the relaxation chooses which inputs each node keeps (TopoNAS); such relaxations
    #: only apply to spaces whose nodes select inputs (the DARTS cell, not NB201).
    selects_inputs = False
    #: Order of the two steps the bilevel loop takes per batch: ``"arch"`` (architecture step
    #: on the val batch) and ``"weights"`` (weight step on the train batch). DARTS and PC-DARTS
    #: step the architecture first; GDAS's released loop trains the weights first.
    step_order: tuple[str, ...] = ("arch", "weights")
    #: Derivation rule the space applies to :meth:`derive_weights` (``"darts"``: top-2 input
    #: edges per node, strongest op on each; see :meth:`dnas.spaces.darts.DartsSpace.derive`).
    derive_rule = "darts"

    def __init__(self, **options) -> None:
        self.options = options

    @abc.abstractmethod
    def mixed_op(self, C: int, stride: int, primitives: Sequence[str]) -> nn.Module:
        """The module computing one edge: ``forward(x, weights)`` with weights of shape (ops,)."""

    def op_weights(self, alpha: torch.Tensor, *, training: bool) -> torch.Tensor:
        """(edges, ops) weights used in the forward pass."""
        return F.softmax(alpha, dim=-1)

    # ------------------------------------------------------------------ fixed weights
    def forward_op_weights(self, alpha: torch.Tensor, *, training: bool) -> torch.Tensor:
        """What supernets call in their forward: the weights fixed by :meth:`fixed_weights`
        for this parameter if any (one architecture of the space, a projected or perturbed
        distribution), else :meth:`op_weights`."""
        fixed = self.__dict__.get("_fixed")
        if fixed and id(alpha) in fixed:
            return fixed[id(alpha)]
        return self.op_weights(alpha, training=training)

    @contextlib.contextmanager
    def fixed_weights(self, weights: "dict[int, torch.Tensor]"):
        """Inside, every forward uses ``weights[id(alpha)]`` as the op weights of ``alpha``
        (parameters not in the mapping go through :meth:`op_weights` as usual). SPOS trains
        and scores single architectures this way, DARTS-PT evaluates projected supernets and
        SDARTS forwards perturbed distributions, all without touching the parameters."""
        prev = self.__dict__.get("_fixed")
        self._fixed = {**(prev or {}), **weights}
        try:
            yield
        finally:
            self._fixed = prev

    # ------------------------------------------------------------------ method hooks
    #: False for methods that train the weights only (SPOS): the loop skips the architecture step.
    needs_arch_step = True
    #: How the genotype is chosen after the search when ``cfg.selection`` is not set
    #: (a :data:`dnas.selection.SELECTIONS` name; "argmax" is the supernet's own derivation).
    default_selection = "argmax"

    def arch_term(self, model: nn.Module) -> torch.Tensor | None:
        """A regulariser of the architecture parameters added to every architecture step's
        loss (FairDARTS zero-one loss, beta-DARTS beta decay, DrNAS KL anchor). None: none."""
        return None

    def weight_scope(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor):
        """Context around one weight step (forward, backward): SDARTS perturbs the
        architecture distribution here and restores it on exit. Default: nothing."""
        return contextlib.nullcontext()

    def after_arch_step(self, model: nn.Module) -> None:
        """Called after each architecture optimizer step (ProxylessNAS rescales the updated
        logits). Default: nothing."""

    def edge_weights(self, beta: torch.Tensor | None, steps: int) -> torch.Tensor | None:
        """(edges,) scalars multiplying each edge's output, or None."""
        return None

    def edge_param_shape(self, steps: int) -> tuple[int, ...]:
        """Shape of the per-cell-type edge parameter (``beta``) the supernet creates when
        :attr:`uses_edge_params` is set: one scalar per edge by default; TopoNAS asks for one
        logit per pair of inputs of each node instead."""
        return (num_edges(steps),)

    def forward_edge_weights(self, beta: torch.Tensor | None, steps: int, *, training: bool) -> torch.Tensor | None:
        """Edge scalars used in the forward pass. Default: :meth:`edge_weights`; relaxations that
        sample the topology during search (TopoNAS) return a sample when ``training``."""
        return self.edge_weights(beta, steps)

    def derive_weights(self, alpha: torch.Tensor, beta: torch.Tensor | None, steps: int) -> torch.Tensor:
        """(edges, ops) weights used to derive the discrete genotype."""
        w = F.softmax(alpha, dim=-1)
        ew = self.edge_weights(beta, steps)
        if ew is not None:
            w = w * ew.unsqueeze(-1)
        return w

    def weight_loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss of one weight step and the logits it saw. Default: cross-entropy of one forward.
        Relaxations that train several sampled sub-graphs per step (MSG-DAS) override this."""
        logits = model(x)
        return F.cross_entropy(logits, y), logits

    def arch_loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Validation loss of one architecture step. Default: cross-entropy of one forward.
        MSG-DAS averages it over its K sampled sub-graphs. The second-order step evaluates this
        same objective at the virtually stepped weights (``model`` is then a callable that runs
        the supernet with those weights), and takes its virtual step and Hessian-vector product
        on :meth:`weight_loss`, so a relaxation with its own losses gets a matching unrolled step."""
        return F.cross_entropy(model(x), y)

    def sample_scope(self):
        """Context in which every forward reuses the same random draw (sampling relaxations), so
        a computation made of several forwards (second-order step, Hessian) sees one
        architecture sample. Deterministic relaxations: a no-op context."""
        return contextlib.nullcontext()

    def expected_scope(self):
        """Context in which sampling relaxations forward their distribution instead of a sample
        (softmax op mixing, expected edge weights): a deterministic objective, used for the
        collapse guard's Hessian. Deterministic relaxations: a no-op context."""
        return contextlib.nullcontext()

    @classmethod
    def from_config(cls, cfg) -> "Relaxation":
        """Build from a :class:`~dnas.config.SearchConfig`; relaxations with options of their own
        override this to read their config fields."""
        return cls(partial_k=getattr(cfg, "partial_k", 4))

    def on_epoch(self, epoch: int, epochs: int) -> None:
        """Hook for schedules (temperatures, drop rates). The bilevel loop counts ``epoch`` and
        ``epochs`` over the architecture-search epochs (from the end of the warm-up; warm-up
        epochs see epoch 0), so a schedule anneals while the architecture learns. Default: nothing."""

    def state(self) -> dict:
        """Schedule state to checkpoint (plain python values)."""
        return {}

    def load_state(self, state: dict) -> None:
        pass


def make_relaxation(name: str, **options) -> Relaxation:
    cls = RELAXATIONS.get(name, "relaxation")
    return cls(**options)


def relaxation_from_config(cfg) -> Relaxation:
    """The relaxation named by ``cfg.relaxation`` with its options read from the config."""
    return RELAXATIONS.get(cfg.relaxation, "relaxation").from_config(cfg)
