"""TopoNAS: topology variables, decoupled from the op weights (Huang et al., arXiv 2011.09300).

Each intermediate node ``i`` of a cell has ``m = i + 2`` incoming edges and keeps two of them in
the derived cell. Instead of ranking edges by their op weights (DARTS), the node gets its own
topology variables: one logit per pair of inputs, ``C(m, 2)`` of them (1, 3, 6, 10 for the
DARTS cell; stored as the supernet's ``beta`` parameters through
:meth:`~dnas.relax.base.Relaxation.edge_param_shape`). The pair distribution is
``p = softmax(beta)`` (``T = 1``) and an edge's weight is the sum of ``p`` over the pairs that contain
it (so a node's edge weights sum to 2, as with two kept inputs). The op weights ``alpha`` only
choose the op on each edge, mixed by softmax (``ops="darts"``) or on 1/K of the channels
(``ops="pc"``, PC-DARTS op mixing; the topology variables then take the place of PC-DARTS's
edge normalisation).

The paper's method section was not available; the form follows the related DOTS and the
abstract. Our choices:

* **Combinatorial sampling during search.** In training forwards each node samples one pair
  from ``p`` by Gumbel-max; the forward uses that pair's two edges (weight 1, others 0) with a
  straight-through gradient through the Gumbel-softmax probabilities at temperature ``tau``
  (the GDAS schedule, ``tau_max`` -> ``tau_min``), so every pair logit gets a gradient. The
  distribution itself is not tempered (``T = 1``): tempering it with the annealed ``tau``
  would scale the curvature the collapse guard measures by ``1/tau^2``. All edges are still
  computed (the gradient of an unsampled edge's weight needs its output). Eval forwards use
  the most probable pair; :meth:`expected_scope` forwards the expected edge weights.
* **Passive-aggressive regulariser.** A pair is *invalid* when one of its edges currently
  carries no signal: the edge's strongest op is ``none``, so the node would get fewer than two
  real inputs. Like the passive-aggressive online update (Crammer et al. 2006), the penalty is a
  hinge: for every node, each invalid pair whose logit is not at least ``pa_margin`` below the
  best valid pair's logit pays ``margin + z_invalid - z_best_valid``; pairs already far enough
  below cost nothing (passive), the others are pushed down in proportion to the violation
  (aggressive). It is added to the architecture objective with weight ``pa_weight`` through the
  ``topo_pa`` entry of :data:`~dnas.strategies.terms.ARCH_TERMS`.
* **Derivation**: each node keeps exactly the two inputs of its most probable pair; each kept
  edge takes its strongest non-``none`` op from ``alpha``.
"""
from __future__ import annotations

import itertools
from functools import lru_cache
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from dnas.errors import ConfigError
from dnas.relax.base import RELAXATIONS, num_edges
from dnas.relax.gdas import SamplingRelaxation, gumbel_noise, straight_through
from dnas.relax.partial import PartialMixedOp
from dnas.relax.softmax import SoftmaxMixedOp
from dnas.strategies.terms import ARCH_TERMS


@lru_cache(maxsize=None)
def node_pairs(steps: int) -> tuple[tuple[tuple[int, int], ...], ...]:
    """Per node, the pairs of its input indices (local to the node: 0 and 1 are the cell inputs)."""
    return tuple(tuple(itertools.combinations(range(i + 2), 2)) for i in range(steps))


def num_pairs(steps: int) -> int:
    return sum(len(p) for p in node_pairs(steps))


def pair_slices(steps: int) -> list[slice]:
    """Index ranges of each node's pair logits in the flat ``beta`` vector."""
    out, start = [], 0
    for pairs in node_pairs(steps):
        out.append(slice(start, start + len(pairs)))
        start += len(pairs)
    return out


@lru_cache(maxsize=None)
def _pair_edge_matrix(steps: int) -> torch.Tensor:
    M = torch.zeros(num_pairs(steps), num_edges(steps))
    p, e0 = 0, 0
    for i, pairs in enumerate(node_pairs(steps)):
        for a, b in pairs:
            M[p, e0 + a] = M[p, e0 + b] = 1.0
            p += 1
        e0 += i + 2
    return M


def pair_edge_matrix(steps: int, like: torch.Tensor) -> torch.Tensor:
    """(pairs, edges) 0/1 matrix: row p marks the two edges of pair p."""
    return _pair_edge_matrix(steps).to(like.device, like.dtype)


def best_pairs(beta: torch.Tensor, steps: int) -> list[tuple[int, int]]:
    """Most probable pair of inputs of each node (ties: the lower index)."""
    return [node_pairs(steps)[i][int(beta[s].argmax())] for i, s in enumerate(pair_slices(steps))]


@RELAXATIONS.register("topo")
class TopologyRelaxation(SamplingRelaxation):
    name = "topo"
    uses_edge_params = True
    selects_inputs = True

    def __init__(
        self, ops: str = "darts", partial_k: int = 4, pa_weight: float = 0.1, pa_margin: float = 1.0,
        tau_max: float = 10.0, tau_min: float = 0.1, **options,
    ) -> None:
        super().__init__(tau_max=tau_max, tau_min=tau_min, ops=ops, partial_k=partial_k, pa_weight=pa_weight, pa_margin=pa_margin, **options)
        if ops not in ("darts", "pc"):
            raise ConfigError(f"topo_ops: unknown op mixing {ops!r}; use darts or pc")
        self.ops, self.k = ops, int(partial_k)
        self.pa_weight, self.pa_margin = float(pa_weight), float(pa_margin)
        self.none_index: int | None = None

    @classmethod
    def from_config(cls, cfg) -> "TopologyRelaxation":
        return cls(ops=cfg.topo_ops, partial_k=cfg.partial_k, pa_weight=cfg.topo_pa_weight, pa_margin=cfg.topo_pa_margin,
                   tau_max=cfg.tau_max, tau_min=cfg.tau_min)

    def mixed_op(self, C: int, stride: int, primitives: Sequence[str]) -> nn.Module:
        self.none_index = list(primitives).index("none") if "none" in primitives else None
        if self.ops == "pc":
            return PartialMixedOp(C, stride, primitives, self.k)
        return SoftmaxMixedOp(C, stride, primitives)

    def edge_param_shape(self, steps: int) -> tuple[int, ...]:
        return (num_pairs(steps),)

    # ------------------------------------------------------------------ topology
    def pair_probs(self, beta: torch.Tensor, steps: int) -> torch.Tensor:
        """Flat pair probabilities, ``softmax(beta)`` within each node."""
        return torch.cat([F.softmax(beta[s], -1) for s in pair_slices(steps)])

    def edge_weights(self, beta: torch.Tensor | None, steps: int) -> torch.Tensor | None:
        """Expected edge weights: per edge, the probability that its node keeps it."""
        if beta is None:
            return None
        return self.pair_probs(beta, steps) @ pair_edge_matrix(steps, beta)

    def forward_edge_weights(self, beta: torch.Tensor | None, steps: int, *, training: bool) -> torch.Tensor | None:
        if beta is None:
            return None
        if self._expected:
            return self.edge_weights(beta, steps)
        parts = []
        noise = self.draw(beta, lambda: gumbel_noise(beta.shape)).to(beta.device, beta.dtype) if training else None
        for s in pair_slices(steps):
            logits = F.log_softmax(beta[s], -1)
            if training:
                logits = logits + noise[s]
            hard = F.one_hot(logits.argmax(-1), logits.shape[-1]).to(beta.dtype)
            parts.append(straight_through(hard, F.softmax(logits / self.tau, -1)))
        return torch.cat(parts) @ pair_edge_matrix(steps, beta)

    def derive_weights(self, alpha: torch.Tensor, beta: torch.Tensor | None, steps: int) -> torch.Tensor:
        """Softmaxed op weights on the edges of each node's most probable pair, zero elsewhere,
        so the DARTS parsing keeps exactly those two inputs and picks ops from ``alpha``."""
        w = F.softmax(alpha, -1)
        if beta is None:
            return w
        keep = torch.zeros(alpha.shape[0], dtype=w.dtype, device=w.device)
        e0 = 0
        for i, (a, b) in enumerate(best_pairs(beta, steps)):
            keep[e0 + a] = keep[e0 + b] = 1.0
            e0 += i + 2
        return w * keep.unsqueeze(-1)

    # ------------------------------------------------------------------ regulariser
    def invalid_pairs(self, alpha: torch.Tensor, steps: int) -> torch.Tensor:
        """(pairs,) bool: pairs with an edge whose strongest op is ``none``."""
        M = pair_edge_matrix(steps, alpha)
        if self.none_index is None:
            return torch.zeros(M.shape[0], dtype=torch.bool, device=alpha.device)
        dead = (alpha.detach().argmax(-1) == self.none_index).to(M.dtype)
        return (M @ dead) > 0

    def pa_loss(self, alpha: torch.Tensor, beta: torch.Tensor, steps: int) -> torch.Tensor:
        """Passive-aggressive hinge on invalid pairs (see the module docstring); 0 when every
        pair is valid or none is."""
        invalid = self.invalid_pairs(alpha, steps)
        total = beta.sum() * 0.0  # keeps the value attached to beta when nothing is penalised
        for s in pair_slices(steps):
            z, bad = beta[s], invalid[s]
            if bad.all() or not bad.any():
                continue
            best_valid = z.masked_fill(bad, float("-inf")).max()
            total = total + (F.relu(self.pa_margin + z - best_valid) * bad.to(z.dtype)).sum()
        return total


def _topology_params(model) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(alpha, beta) of each searched cell: one pair per cell type, or one per stage when the
    supernet keeps them in ``nn.ParameterList``s (hierarchical space). A supernet of another
    shape can expose its own list as ``model.topology_params()``."""
    if hasattr(model, "topology_params"):
        return list(model.topology_params())
    out: list[tuple[torch.Tensor, torch.Tensor]] = []
    for a_name, b_name in (("alpha_normal", "beta_normal"), ("alpha_reduce", "beta_reduce")):
        a, b = getattr(model, a_name, None), getattr(model, b_name, None)
        if a is None or b is None:
            continue
        out += list(zip(a, b)) if isinstance(a, nn.ParameterList) else [(a, b)]
    return out


@ARCH_TERMS.register("topo_pa")
def topology_pa_term(cfg, model):
    """The passive-aggressive invalid-topology penalty, on for ``relaxation: topo`` with a
    positive ``topo_pa_weight``."""
    relax = getattr(model, "relax", None)
    if not isinstance(relax, TopologyRelaxation):
        relax = getattr(model, "cell_relax", None)  # hierarchical supernet: the cell relaxation
    if not isinstance(relax, TopologyRelaxation) or relax.pa_weight <= 0:
        return None
    steps = model.steps

    def term(m):
        params = _topology_params(m)
        if not params:
            return None
        return relax.pa_weight * sum(relax.pa_loss(a, b, steps) for a, b in params)

    return term
