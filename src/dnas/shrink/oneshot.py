"""A weight-sharing NB201 one-shot supernet trained by uniform single-path sampling, restricted
to a shrunk space, and the ranking it gives.

Why: LISSNAS judges a shrunk space by how well a one-shot supernet *trained on it* ranks its
members (a supernet that shares weights among fewer, better architectures should rank them
more faithfully). So the supernet must be able to train on pocket members only.

The supernet (:class:`NB201OneShot`) is the NB201 evaluation network with every cell replaced
by a cell that holds all five candidates on each of its six edges (built from
:func:`dnas.spaces.nb201.search_cell`); all cells share one architecture, as in NB201. Training
follows SPOS / random-sampling one-shot (Guo et al. 2020; Li & Talwalkar 2019): every step
samples one architecture and trains only its path. The sampler decides the space:

* ``allowed=[...]``: only those architectures (the pocket members);
* ``edge_mask``: per edge only the allowed ops (a ``(6, 5)`` bool mask, e.g.
  :meth:`ShrunkSpace.edge_mask`);
* neither: uniform over all 15625 architectures (the full space).

An architecture's one-shot score is its accuracy (and loss) on held-out data with the shared
weights. BatchNorm keeps no running statistics (``track_running_stats=False``): every forward
normalises with the batch's own statistics, so each sampled path is evaluated with statistics
of its own rather than a mixture accumulated over other paths (the problem SPOS solves by
recalibrating BN per architecture; batch statistics on one full validation batch do the same).
Candidate ops use non-affine BN as in NB201's search cells.
"""
from __future__ import annotations

import random
import time
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from dnas.errors import ConfigError, GenotypeError
from dnas.evaluators.base import EvalResult
from dnas.spaces.nb201 import NB201_EDGES, NB201_OPS, NB201Arch, nb201_skeleton, search_cell

Sampler = Callable[[random.Random], NB201Arch]

#: The space whose architectures this one-shot supernet ranks (``dnas shrink`` skips the
#: one-shot part for any other space and says so).
ONESHOT_SPACE = NB201Arch.space


def _batch_stats_only(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = False
            m.running_mean = None
            m.running_var = None
            m.num_batches_tracked = None


class _OneShotCell(nn.Module):
    """Every candidate on every edge; ``forward(x, ops)`` runs one op per edge."""

    def __init__(self, C: int):
        super().__init__()
        cell = search_cell()
        self.incoming = [cell.incoming(j) for j in range(cell.nodes)]
        self.edges = cell.edges
        self.candidates = nn.ModuleList(
            nn.ModuleDict({op: cell.op_factory(op, C, 1, False) for op in cell.candidates}) for _ in cell.edges
        )

    def forward(self, x: torch.Tensor, ops: Sequence[str]) -> torch.Tensor:
        nodes = [x]
        for j in range(1, len(self.incoming)):
            terms = [self.candidates[k][ops[k]](nodes[self.edges[k][0]]) for k in self.incoming[j] if ops[k] != "none"]
            nodes.append(sum(terms) if terms else torch.zeros_like(x))  # 'none' contributes exactly zero
        return nodes[-1]


class NB201OneShot(nn.Module):
    """The NB201 network (stem, 3 stages of ``N`` cells, ResNet reductions) with one-shot cells."""

    def __init__(self, C: int = 8, N: int = 1, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.stem, layers, C_prev = nb201_skeleton(C, N, in_channels, _OneShotCell)
        self.layers = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(C_prev), nn.ReLU())
        self.classifier = nn.Linear(C_prev, num_classes)
        _batch_stats_only(self)

    def forward(self, x: torch.Tensor, arch: NB201Arch) -> torch.Tensor:
        out = self.stem(x)
        for layer in self.layers:
            out = layer(out, arch.ops) if isinstance(layer, _OneShotCell) else layer(out)
        out = self.lastact(out)
        return self.classifier(F.adaptive_avg_pool2d(out, 1).flatten(1))


# ---------------------------------------------------------------------------- sampling
def make_sampler(allowed: Sequence[NB201Arch] | None = None, edge_mask: "np.ndarray | None" = None) -> Sampler:
    """A uniform sampler over ``allowed``, over the per-edge ``edge_mask`` product, or (neither)
    over the full NB201 space. Give at most one."""
    if allowed is not None and edge_mask is not None:
        raise ConfigError("one-shot sampler: give allowed archs or an edge mask, not both")
    if allowed is not None:
        pool = list(allowed)
        if not pool or not all(isinstance(a, NB201Arch) for a in pool):
            raise ConfigError("one-shot sampler: allowed must be a non-empty list of NB201 archs")
        return lambda rng: rng.choice(pool)
    if edge_mask is not None:
        mask = np.asarray(edge_mask, dtype=bool)
        if mask.shape != (len(NB201_EDGES), len(NB201_OPS)):
            raise ConfigError(f"edge_mask: expected shape ({len(NB201_EDGES)}, {len(NB201_OPS)}), got {mask.shape}")
        if not mask.any(axis=1).all():
            raise ConfigError("edge_mask: every edge needs at least one allowed op")
        per_edge = [[NB201_OPS[i] for i in np.flatnonzero(row)] for row in mask]
        return lambda rng: NB201Arch(tuple(rng.choice(ops) for ops in per_edge))
    return lambda rng: NB201Arch(tuple(rng.choice(NB201_OPS) for _ in NB201_EDGES))


# ---------------------------------------------------------------------------- data
def oneshot_data(name: str = "digits", seed: int = 0, val_fraction: float = 0.3):
    """``(train_x, train_y), (val_x, val_y), num_classes, in_channels`` from a built-in or local
    dataset (see :func:`dnas.data.load_dataset`), normalised by the train split's statistics."""
    from dnas.data import load_dataset, split_dataset

    data = load_dataset(name)
    sp = split_dataset(data, seed=seed, val_fraction=val_fraction, test_fraction=0.0)
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in data.stats())
    norm = lambda x: (x - mean) / std.clamp_min(1e-6)  # noqa: E731
    return (norm(sp.train[0]), sp.train[1]), (norm(sp.val[0]), sp.val[1]), data.num_classes, data.in_channels


# ---------------------------------------------------------------------------- train / score
def train_oneshot(net: NB201OneShot, train: tuple[torch.Tensor, torch.Tensor], sampler: Sampler, *, steps: int,
                  seed: int, batch_size: int = 64, lr: float = 0.05, weight_decay: float = 3e-4) -> list[float]:
    """Uniform single-path training: each step samples an arch and trains its path with SGD
    (momentum 0.9, cosine schedule, gradient clipping at 5). Returns the per-step losses."""
    from dnas.data import Batches

    if steps < 1:
        raise ConfigError(f"oneshot steps: must be >= 1, got {steps}")
    rng = random.Random(seed)
    torch.manual_seed(seed)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    batches = Batches(train[0], train[1], batch_size, shuffle=True, seed=seed, drop_last=True)
    losses: list[float] = []
    net.train()
    epoch = 0
    while len(losses) < steps:
        batches.set_epoch(epoch)
        for x, y in batches:
            arch = sampler(rng)
            loss = F.cross_entropy(net(x, arch), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
            if len(losses) == steps:
                break
        epoch += 1
    return losses


@torch.no_grad()
def score_archs(net: NB201OneShot, archs: Sequence[NB201Arch], val: tuple[torch.Tensor, torch.Tensor],
                batch_size: int = 512) -> tuple[list[float], list[float]]:
    """One-shot ``(accuracy %, loss)`` of each arch on ``val`` with the shared weights (batches
    in fixed order, BN on batch statistics: deterministic)."""
    net.eval()
    x, y = val
    accs, losses = [], []
    for a in archs:
        correct, total_loss = 0, 0.0
        for lo in range(0, len(y), batch_size):
            out = net(x[lo:lo + batch_size], a)
            correct += int((out.argmax(1) == y[lo:lo + batch_size]).sum())
            total_loss += float(F.cross_entropy(out, y[lo:lo + batch_size], reduction="sum"))
        accs.append(100.0 * correct / len(y))
        losses.append(total_loss / len(y))
    return accs, losses


class OneShotEvaluator:
    """A trained supernet as an :class:`~dnas.evaluators.base.Evaluator`: an arch's accuracy is
    its one-shot validation accuracy (so shrinkage can be driven by a supernet)."""

    space = ONESHOT_SPACE

    def __init__(self, net: NB201OneShot, val: tuple[torch.Tensor, torch.Tensor]):
        self.net, self.val = net, val

    def evaluate(self, arch: Any, budget: float | None = None) -> EvalResult:
        if not isinstance(arch, NB201Arch):
            raise GenotypeError(f"one-shot evaluator: expected an NB201 arch, got {type(arch).__name__}")
        acc, loss = score_archs(self.net, [arch], self.val)
        return EvalResult(accuracy=acc[0], cost={"loss": loss[0]}, budget=budget)


def oneshot_ranking(archs: Sequence[NB201Arch], *, allowed: Sequence[NB201Arch] | None = None,
                    edge_mask: "np.ndarray | None" = None, steps: int = 300, seed: int = 0, data: str = "digits",
                    C: int = 8, N: int = 1, batch_size: int = 64, lr: float = 0.05, val_size: int | None = 256,
                    threads: int | None = 1, _data_cache: dict | None = None) -> dict:
    """Train a fresh supernet on the space given by ``allowed`` / ``edge_mask`` (neither = full
    space) for ``steps`` steps and score ``archs`` on the first ``val_size`` validation images
    (``None`` = all). Returns ``accuracy`` and ``loss`` lists (aligned with ``archs``), the
    training losses summary and the seconds spent.

    ``threads`` sets torch's intra-op threads for the call (restored after): this supernet is
    tiny, and on a shared machine two spinning threads per op measured 30x slower than one.
    """
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _oneshot_ranking(archs, allowed, edge_mask, steps, seed, data, C, N, batch_size, lr, val_size,
                                _data_cache)
    finally:
        torch.set_num_threads(previous)


def _oneshot_ranking(archs, allowed, edge_mask, steps, seed, data, C, N, batch_size, lr, val_size, _data_cache):
    t0 = time.perf_counter()
    key = (data, seed)
    if _data_cache is not None and key in _data_cache:
        train, val, ncls, cin = _data_cache[key]
    else:
        train, val, ncls, cin = oneshot_data(data, seed)
        if _data_cache is not None:
            _data_cache[key] = (train, val, ncls, cin)
    torch.manual_seed(seed)
    net = NB201OneShot(C=C, N=N, num_classes=ncls, in_channels=cin)
    losses = train_oneshot(net, train, make_sampler(allowed, edge_mask), steps=steps, seed=seed,
                           batch_size=batch_size, lr=lr)
    t_train = time.perf_counter() - t0
    if val_size is not None and val_size < len(val[1]):  # a seeded random subset of the val split
        idx = torch.randperm(len(val[1]), generator=torch.Generator().manual_seed(seed))[:val_size]
        val = (val[0][idx], val[1][idx])
    accs, val_losses = score_archs(net, archs, val)
    k = max(1, min(20, len(losses) // 5))
    return {
        "accuracy": accs,
        "loss": val_losses,
        "train_loss_first": round(float(np.mean(losses[:k])), 4),
        "train_loss_last": round(float(np.mean(losses[-k:])), 4),
        "train_seconds": round(t_train, 3),
        "seconds": round(time.perf_counter() - t0, 3),
    }


__all__ = ["NB201OneShot", "make_sampler", "oneshot_data", "train_oneshot", "score_archs", "OneShotEvaluator",
           "oneshot_ranking"]
