"""DARTS-PT: perturbation-based architecture selection (Wang et al., ICLR 2021, "Rethinking
Architecture Selection in Differentiable NAS"; code: github.com/ruocwang/darts-pt).

Instead of reading the genotype off the magnitudes of the architecture weights, measure each
op's contribution to the trained supernet:

1. **Operations.** Start from the supernet's own forward weights (the relaxation's
   eval-mode distribution: softmax for DARTS, sigmoid for FairDARTS, the Dirichlet mean for
   DrNAS, ...). Visit the edges in a random order (seeded); on each, remove every candidate op in
   turn (its weight set to 0, no renormalisation, as the reference's mask) and measure the
   supernet's validation accuracy; keep the op whose removal drops the accuracy most (ties,
   common on small validation sets, go to the larger rise in validation loss), and fix the
   edge to it (one-hot). Fine-tune the weights between decisions.
2. **Topology** (spaces whose nodes keep fewer inputs than they have, ``space.topology_keep``:
   DARTS keeps 2). Visit the nodes in a random order; remove each incoming edge in turn, keep
   the ``topology_keep`` edges whose removal hurts most, drop the others; fine-tune.

The result goes through ``space.arch_from_weights``. In spaces that prune the topology the
``none`` op is never a candidate (an edge without an op is what step 2 decides); in NB201, where
every edge stays, ``none`` competes like any op.

Where we differ (a documented cheaper schedule): the reference fine-tunes the supernet, weights
*and* the undecided architecture parameters, for 5 epochs between decisions (``proj_intv``);
dnas fine-tunes the weights only, with the decided edges fixed and the undecided ones at their
measured distribution, for ``pt_tune_epochs`` epochs (default 1; the ``darts-pt`` preset uses 5).
Accuracy is measured on ``pt_eval_batches`` validation batches (default: all).
"""
from __future__ import annotations

import random
from typing import Any

import torch
import torch.nn.functional as F

from dnas.relax.spos import search_space_of
from dnas.relax.base import node_slices
from dnas.selection.base import SELECTIONS, accuracy, cached_batches, evaluate, op_params, tune_weights


def forward_distribution(model) -> dict[int, torch.Tensor]:
    """The relaxation's eval-mode op weights of every (edges, ops) parameter (expected, not sampled)."""
    out = {}
    with torch.no_grad(), model.relax.expected_scope():
        for a in op_params(model):
            out[id(a)] = model.relax.op_weights(a, training=False).detach().clone()
    return out


def _without(weights: dict, pid: int, row: int, col: int | None) -> dict:
    """A copy of ``weights`` with op ``col`` (or the whole edge when None) of ``row`` removed."""
    w = dict(weights)
    m = w[pid].clone()
    if col is None:
        m[row] = 0.0
    else:
        m[row, col] = 0.0
    w[pid] = m
    return w


@SELECTIONS.register("darts-pt")
def darts_pt_selection(cfg, model, train_b, val_b, device) -> tuple[Any, dict]:
    space = search_space_of(model)
    prims = list(model.primitives)
    keep = space.topology_keep
    candidates = [i for i, p in enumerate(prims) if not (keep is not None and p == "none")]
    names = {id(p): n for n, p in model.named_parameters()}
    params = op_params(model)
    rng = random.Random(cfg.seed)
    val = cached_batches(val_b, device, cfg.epochs, cfg.pt_eval_batches)
    tune = cached_batches(train_b, device, cfg.epochs, None)
    W = forward_distribution(model)
    log: dict[str, Any] = {"supernet_val_acc": accuracy(model, W, val), "ops": [], "topology": []}

    edges = [(id(a), e) for a in params for e in range(a.shape[0])]
    rng.shuffle(edges)
    for pid, e in edges:
        scores = [evaluate(model, _without(W, pid, e, o), val) for o in candidates]
        accs = [a for a, _ in scores]
        # the op whose removal hurts accuracy most; ties (small validation sets) go to the larger loss rise
        best = candidates[min(range(len(candidates)), key=lambda i: (scores[i][0], -scores[i][1], i))]
        W[pid] = W[pid].clone()
        W[pid][e] = F.one_hot(torch.tensor(best), len(prims)).to(W[pid])
        log["ops"].append({"param": names[pid], "edge": e, "op": prims[best],
                           "acc_without": {prims[o]: a for o, a in zip(candidates, accs)},
                           "loss_without": {prims[o]: l for o, (_, l) in zip(candidates, scores)}})
        tune_weights(cfg, model, W, tune, cfg.pt_tune_epochs)

    if keep is not None:
        nodes = [(id(a), s) for a in params for s in node_slices(model.steps) if s.stop - s.start > keep]
        rng.shuffle(nodes)
        for pid, s in nodes:
            rows = list(range(s.start, s.stop))
            scores = [evaluate(model, _without(W, pid, r, None), val) for r in rows]
            accs = [a for a, _ in scores]
            kept = sorted(range(len(rows)), key=lambda i: (scores[i][0], -scores[i][1], i))[:keep]
            W[pid] = W[pid].clone()
            for i, r in enumerate(rows):
                if i not in kept:
                    W[pid][r] = 0.0
            log["topology"].append({"param": names[pid], "node_edges": rows, "kept": [rows[i] for i in sorted(kept)],
                                    "acc_without": accs, "loss_without": [l for _, l in scores]})
            tune_weights(cfg, model, W, tune, cfg.pt_tune_epochs)
    log["final_val_acc"] = accuracy(model, W, val)
    return space.arch_from_weights(model, W), log
