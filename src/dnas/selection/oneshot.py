"""Search over a trained supernet (SPOS, RSPS): score architectures of the space by their
validation accuracy inside the supernet after BatchNorm recalibration.

* ``evolution`` (Guo et al. 2020, SPOS): a population of ``oneshot_population`` random
  architectures; each of ``oneshot_iterations`` rounds keeps the ``oneshot_topk`` best seen so
  far and refills the population half by mutation (each categorical choice of
  ``space.encode`` redrawn with probability ``oneshot_mutation``) and half by uniform crossover
  of two top parents (both stay inside the space: every vector within ``cardinalities`` is
  valid). Paper: 50 / 20 / 10 / 0.1.
* ``random`` (Li & Talwalkar 2019, RSPS): ``oneshot_samples`` uniform architectures scored on
  ``oneshot_eval_batches`` validation batches; the ``oneshot_topk`` best re-scored on every
  validation batch; the best of those wins (the paper: 1000 sampled, top 10 re-evaluated).

Scores are cached by architecture hash, so a repeated candidate costs nothing. Before each
score the BatchNorm statistics are recomputed on ``oneshot_bn_batches`` training batches with
that architecture (SPOS's recalibration; without it the shared statistics of the supernet are
those of a mixture of paths).
"""
from __future__ import annotations

import random
from typing import Any

from dnas.relax.spos import search_space_of
from dnas.selection.base import SELECTIONS, accuracy, cached_batches, recalibrate_bn


class SupernetScorer:
    """Validation accuracy of an architecture inside the supernet, with BN recalibration."""

    def __init__(self, cfg, model, train_b, val_b, device) -> None:
        self.model, self.space = model, search_space_of(model)
        self.bn = cached_batches(train_b, device, cfg.epochs, cfg.oneshot_bn_batches)
        self.val = cached_batches(val_b, device, cfg.epochs, None)
        self.quick = self.val[: cfg.oneshot_eval_batches] if cfg.oneshot_eval_batches else self.val
        self.cache: dict[tuple[str, bool], float] = {}

    def __call__(self, arch, full: bool = False) -> float:
        key = (self.space.hash(arch), full)
        if key not in self.cache:
            w = self.space.supernet_weights(arch, self.model)
            recalibrate_bn(self.model, w, self.bn)
            self.cache[key] = accuracy(self.model, w, self.val if full else self.quick)
        return self.cache[key]


def _mutate(space, arch, rng: random.Random, prob: float):
    v = space.encode(arch)
    cards = space.cardinalities
    return space.decode([rng.randrange(c) if rng.random() < prob else x for x, c in zip(v, cards)])


def _crossover(space, a, b, rng: random.Random):
    return space.decode([x if rng.random() < 0.5 else y for x, y in zip(space.encode(a), space.encode(b))])


@SELECTIONS.register("evolution")
def evolution_selection(cfg, model, train_b, val_b, device) -> tuple[Any, dict]:
    score = SupernetScorer(cfg, model, train_b, val_b, device)
    space, rng = score.space, random.Random(cfg.seed)
    population = [space.sample(rng) for _ in range(cfg.oneshot_population)]
    seen: dict[str, Any] = {}
    curve = []
    for _ in range(cfg.oneshot_iterations):
        for a in population:
            seen.setdefault(space.hash(a), a)
            score(a)
        top = sorted(seen.values(), key=lambda a: (-score(a), space.hash(a)))[: cfg.oneshot_topk]
        curve.append(score(top[0]))
        half = cfg.oneshot_population // 2
        mutants = [_mutate(space, rng.choice(top), rng, cfg.oneshot_mutation) for _ in range(half)]
        children = [_crossover(space, rng.choice(top), rng.choice(top), rng) for _ in range(cfg.oneshot_population - half)]
        population = mutants + children
    for a in population:  # the last generation is scored too
        seen.setdefault(space.hash(a), a)
    best = max(seen.values(), key=lambda a: (score(a), space.hash(a)))
    return best, {"evaluated": len(seen), "best_val_acc": score(best), "best_per_iteration": curve}


@SELECTIONS.register("random")
def random_selection(cfg, model, train_b, val_b, device) -> tuple[Any, dict]:
    score = SupernetScorer(cfg, model, train_b, val_b, device)
    space, rng = score.space, random.Random(cfg.seed)
    cands: dict[str, Any] = {}
    for _ in range(cfg.oneshot_samples):
        a = space.sample(rng)
        cands.setdefault(space.hash(a), a)
    ranked = sorted(cands.values(), key=lambda a: (-score(a), space.hash(a)))[: cfg.oneshot_topk]
    best = max(ranked, key=lambda a: (score(a, full=True), space.hash(a)))
    return best, {"evaluated": len(cands), "best_val_acc": score(best, full=True)}
