"""Differentiable cost in the architecture objective (Latency-aware DARTS; FBNet/FBNetV2).

Registered as the ``cost`` entry of :data:`dnas.strategies.terms.ARCH_TERMS`: when
``cfg.cost_objective`` is not ``none``, every architecture step adds

    cost_lambda * E[cost]                                   (no target), or
    cost_lambda * max(0, E[latency] - max_latency_ms)       (a latency budget)

to the validation loss, where E[cost] is the expected cost of the network that the current
architecture distribution derives. For the DARTS cell space:

* the op distribution of an edge is the relaxation's ``derive_weights(alpha)`` (softmax for all
  built-in relaxations, whatever they sample in the forward pass), renormalised over the real
  ops, because derivation never keeps ``none`` - a ``none`` of zero cost would otherwise be a
  free way to lower the penalty without changing the derived network;
* the probability that an edge is kept is ``2 * w_e / sum(w_node)`` from the relaxation's edge
  weights (PC-DARTS beta, TopoNAS pair probabilities), or ``2 / inputs`` without them;
* the cost of (edge, op) comes from :mod:`dnas.opcost` (params or multiply-adds in millions,
  lookup-table latency in ms) for the evaluation network of the configured size, so E[cost] of a
  one-hot distribution is exactly the cost of that genotype's network; or the whole expected
  matrix goes through a trained latency predictor (``latency_predictor``, ms).

Other supernets take part by defining ``expected_cost(metric, table=None, predictor=None)``
(the FBNetV2 masking supernet does).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F

from dnas.errors import ConfigError
from dnas.strategies.terms import ARCH_TERMS

OBJECTIVES = ("none", "params", "macs", "latency_table", "latency_predictor")


def darts_expected_weights(model, keep: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Expected ``(edges, ops)`` count matrices (normal, reduce) of the derived cells: the
    probability that an edge is kept times its op distribution over the real ops."""
    from dnas.relax.base import node_slices

    relax, steps = model.relax, model.steps
    prims = list(model.space.primitives)
    real = torch.tensor([p != "none" for p in prims], dtype=model.alpha_normal.dtype, device=model.alpha_normal.device)
    out = []
    for alpha, beta in ((model.alpha_normal, model.beta_normal), (model.alpha_reduce, model.beta_reduce)):
        w = relax.derive_weights(alpha, None, steps) * real
        w = w / w.sum(-1, keepdim=True).clamp_min(1e-12)
        ew = relax.edge_weights(beta, steps) if beta is not None else None
        if ew is None:
            ew = torch.ones(alpha.shape[0], dtype=w.dtype, device=w.device)
        p = torch.cat([keep * ew[s] / ew[s].sum().clamp_min(1e-12) for s in node_slices(steps)])
        out.append(p.unsqueeze(-1) * w)
    return out[0], out[1]


def cost_net_shape(cfg, model):
    """The evaluation network whose cost is modelled: ``cost_channels``/``cost_layers``/
    ``cost_image_size`` from the config, else the supernet's own size."""
    from dnas.opcost import NetShape

    return NetShape(
        C=cfg.cost_channels or cfg.init_channels,
        layers=cfg.cost_layers or cfg.layers,
        image_size=cfg.cost_image_size or cfg.image_size or 32,
        in_channels=model.stem[0].in_channels,
        num_classes=model.classifier.out_features,
        steps=model.steps,
    )


def make_table(cfg):
    from dnas.latency import LatencyTable
    from dnas.run import resolve_device

    return LatencyTable(resolve_device(cfg.device))


def load_predictor(path: Optional[str], space: str):
    from dnas.predictors.latency import LatencyPredictor

    if not path:
        raise ConfigError("latency_predictor: cost_objective latency_predictor needs a predictor file; create one with 'dnas latency fit'")
    pred = LatencyPredictor.load(path)
    if pred.meta.get("space") != space:
        raise ConfigError(f"latency_predictor: {path} was trained on space {pred.meta.get('space')!r}, this search is {space!r}")
    return pred


def darts_cost_fn(cfg, model, metric: str) -> Callable[[torch.nn.Module], torch.Tensor]:
    """``f(model) -> expected cost`` for a DARTS-cell supernet."""
    from dnas.opcost import cost_matrices

    prims = list(model.space.primitives)
    if metric == "latency_predictor":
        from dnas.predictors.latency import make_space

        pred = load_predictor(cfg.latency_predictor, "darts")
        shape = dict(pred.meta["shape"])
        if list(shape.get("primitives", [])) != prims or shape.get("steps") != model.steps:
            raise ConfigError(f"latency_predictor: {cfg.latency_predictor} was trained for primitives/steps {shape.get('primitives')}/{shape.get('steps')}, the search uses {prims}/{model.steps}")
        space = make_space("darts", **shape)
        for p in pred.parameters():
            p.requires_grad_(False)

        def f(m):
            wn, wr = darts_expected_weights(m)
            return pred(space.encode_weights(wn, wr).to(next(pred.buffers()).device)).squeeze(0)

        return f
    net = cost_net_shape(cfg, model)
    kind = {"params": "params", "macs": "macs", "latency_table": "latency"}[metric]
    mn, mr, fixed = cost_matrices(prims, net, kind, make_table(cfg) if kind == "latency" else None)

    def f(m):
        wn, wr = darts_expected_weights(m)
        return (wn * mn.to(wn)).sum() + (wr * mr.to(wr)).sum() + fixed

    return f


def expected_cost_fn(cfg, model, metric: str) -> Callable[[torch.nn.Module], torch.Tensor]:
    """``f(model) -> scalar tensor``: the expected cost of ``metric`` for this supernet."""
    if metric not in OBJECTIVES[1:]:
        raise ConfigError(f"cost_objective: one of {', '.join(OBJECTIVES)}, got {metric!r}")
    if hasattr(model, "expected_cost"):
        table = make_table(cfg) if metric == "latency_table" else None
        pred = load_predictor(cfg.latency_predictor, getattr(model, "space_name", cfg.space)) if metric == "latency_predictor" else None
        return lambda m: m.expected_cost(metric, table=table, predictor=pred)
    if all(hasattr(model, a) for a in ("alpha_normal", "alpha_reduce", "space", "relax", "steps")):
        return darts_cost_fn(cfg, model, metric)
    raise ConfigError(f"cost_objective: not supported for space {cfg.space!r} (its supernet has no expected_cost); use cost_objective: none")


@ARCH_TERMS.register("cost")
def cost_term(cfg, model):
    """The architecture term: lambda times the expected cost, or a hinge above ``max_latency_ms``."""
    objective = getattr(cfg, "cost_objective", "none")
    if objective == "none":
        return None
    if cfg.max_latency_ms is not None and not objective.startswith("latency"):
        raise ConfigError(f"max_latency_ms: needs cost_objective latency_table or latency_predictor, got {objective}")
    f = expected_cost_fn(cfg, model, objective)
    lam, target = float(cfg.cost_lambda), cfg.max_latency_ms

    def term(m):
        c = f(m)
        if target is not None:
            c = F.relu(c - float(target))
        return lam * c

    return term
