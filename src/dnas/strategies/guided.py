"""Predictor-guided search: the loop BANANAS and NPENAS share.

Each round: fit a performance predictor (an ensemble) on every architecture evaluated so far,
generate candidates by mutating the best evaluated architectures, score the candidates with
an acquisition function of the ensemble's predictions, and evaluate the ``k`` best, one per
query. The first ``num_init`` architectures are drawn at random - or, with ``warm_start``, the
``num_init`` best of ``warm_pool`` random candidates by a zero-cost proxy (training-free, so
the warm start costs no queries). Subclasses set the predictor and the acquisition.

Acquisitions (of per-member predictions ``P``, shape ``(members, candidates)``):

* ``its`` - independent Thompson sampling (BANANAS's final choice, White et al. 2021): one draw
  per candidate from ``N(mean, std)`` of the members, take the largest;
* ``ei`` - expected improvement over the best accuracy seen, with that mean and std;
* ``ucb`` - ``mean + 2.5 std``; ``exploit`` - the mean (NPENAS-NP's "exploit only").

Candidate generation: ``num_candidates`` candidates, an equal share from each of the
``num_arches_to_mutate`` best architectures, each made by 1..``max_mutations`` random
mutations (``space.mutate``). On a finite table (``candidates`` given) a mutation rarely lands
on a tabulated architecture (NB201's 725 records hold 5% of the space), so the share is filled
with the unevaluated table architectures closest to the parent (``space.distance``, ties in
random order): the table's nearest analogue of a mutation. Duplicates and evaluated
architectures are never candidates; if too few remain, random unevaluated ones fill up.

Proxy features: ``features="graph+zc"`` (or ``"zc"``) feeds the warm-start evaluator's proxy
scores to the predictor (:class:`~dnas.predictors.zcfeatures.ZCFeatures`), so the predictor
sees both the architecture and how its untrained network behaves.
"""
from __future__ import annotations

import math
from typing import Any, Hashable, Sequence

import numpy as np
from scipy import stats

from dnas.errors import ConfigError
from dnas.evaluators.base import EvalResult
from dnas.spaces.base import SearchSpace
from dnas.strategies.base import DiscreteStrategy, Proposal

ACQUISITIONS = ("its", "ei", "ucb", "exploit")


def acquisition(kind: str, members: np.ndarray, best: float, rng: np.random.Generator) -> np.ndarray:
    """Acquisition values (higher = evaluate sooner) from ``(members, candidates)`` predictions."""
    mean = members.mean(0)
    std = members.std(0) if len(members) > 1 else np.zeros_like(mean)
    if kind == "exploit":
        return mean
    if kind == "ucb":
        return mean + 2.5 * std
    if kind == "its":
        return rng.normal(mean, std)
    if kind == "ei":
        s = np.maximum(std, 1e-9)
        z = (mean - best) / s
        return (mean - best) * stats.norm.cdf(z) + s * stats.norm.pdf(z)
    raise ConfigError(f"acquisition: {kind!r} unknown; choose one of: {', '.join(ACQUISITIONS)}")


class PredictorGuided(DiscreteStrategy):
    """The shared loop (see the module docstring); subclasses give defaults."""

    default_predictor = "mlp"
    default_acquisition = "its"
    default_ensemble = 5
    default_loss = "mse"

    def __init__(
        self,
        space: SearchSpace,
        *,
        seed: int,
        candidates: Sequence[Hashable] | None = None,
        num_init: int = 10,
        k: int = 10,
        num_candidates: int = 100,
        num_arches_to_mutate: int = 2,
        max_mutations: int = 1,
        predictor: str | None = None,
        acquisition: str | None = None,
        ensemble: int | None = None,
        epochs: int = 200,
        loss: str | None = None,
        features: str = "graph",
        warm_start: str | None = None,
        warm_pool: int = 100,
    ):
        super().__init__(space, seed=seed, candidates=candidates)
        for name, v, lo in (("num_init", num_init, 2), ("k", k, 1), ("num_candidates", num_candidates, 1),
                            ("num_arches_to_mutate", num_arches_to_mutate, 1), ("max_mutations", max_mutations, 1),
                            ("warm_pool", warm_pool, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ConfigError(f"{name}: must be an integer >= {lo}, got {v!r}")
        self.num_init, self.k, self.num_candidates = num_init, k, num_candidates
        self.num_arches_to_mutate, self.max_mutations = num_arches_to_mutate, max_mutations
        self.predictor_name = predictor or self.default_predictor
        self.acq = acquisition or self.default_acquisition
        if self.acq not in ACQUISITIONS:
            raise ConfigError(f"acquisition: {self.acq!r} unknown; choose one of: {', '.join(ACQUISITIONS)}")
        self.ensemble = int(ensemble or self.default_ensemble)
        self.epochs, self.loss, self.features = int(epochs), loss or self.default_loss, features
        self.np_rng = np.random.default_rng(self.seed)
        self.queue: list[Hashable] = []
        self.warm = None
        if warm_start is not None or "zc" in features:
            if warm_start is None:
                raise ConfigError(f"features: {features!r} needs warm_start=zc:PROXY (the proxy scores to feed the predictor)")
            from dnas.evaluators.base import make_evaluator

            self.warm = make_evaluator(warm_start)
            if not callable(getattr(self.warm, "scores", None)):
                raise ConfigError(f"warm_start: {warm_start!r} is not a zero-cost evaluator; use zc:PROXY[,...]")
            bind = getattr(self.warm, "bind_space", None)
            if callable(bind):
                bind(space)
        self.warm_start, self.warm_pool = warm_start, warm_pool
        from dnas.predictors import make_predictor  # validate the predictor name now

        self._make_predictor = make_predictor
        self.fits = 0

    # ------------------------------------------------------------------ initial design
    def _initial(self) -> list[Hashable]:
        if self.warm is None:
            return [self.sample_new() for _ in range(1)]
        pool: list[Hashable] = []
        seen = set(self.evaluated)
        for _ in range(self.warm_pool * 20):
            if len(pool) >= self.warm_pool:
                break
            a = self.sample_new()
            if a not in seen:
                seen.add(a)
                pool.append(a)
        score = {a: self.warm.scores(a)[self.warm.proxy] for a in pool}
        pool.sort(key=lambda a: -(score[a] if math.isfinite(score[a]) else -math.inf))
        return pool[: self.num_init]

    # ------------------------------------------------------------------ candidates
    def _children(self, parent: Hashable, n: int, taken: set) -> list[Hashable]:
        out: list[Hashable] = []
        for _ in range(n * 10):
            if len(out) >= n:
                break
            c = parent
            for _m in range(self.rng.randint(1, self.max_mutations)):
                c = self.space.mutate(c, self.rng)
            if c not in taken and self.allowed(c):
                taken.add(c)
                out.append(c)
        if len(out) < n and self.candidates is not None:  # the table's nearest analogue of a mutation
            fresh = [a for a in self.candidates if a not in taken]
            self.rng.shuffle(fresh)
            fresh.sort(key=lambda a: self.space.distance(parent, a))
            for a in fresh[: n - len(out)]:
                taken.add(a)
                out.append(a)
        return out

    def _candidates(self) -> list[Hashable]:
        ranked = sorted(self.evaluated, key=lambda a: -self.evaluated[a])
        parents = ranked[: self.num_arches_to_mutate]
        taken = set(self.evaluated)
        out: list[Hashable] = []
        share = max(1, self.num_candidates // len(parents))
        for p in parents:
            out += self._children(p, share, taken)
        for _ in range(self.num_candidates * 5):
            if len(out) >= self.num_candidates:
                break
            try:
                a = self.sample_new()
            except ConfigError:
                break
            if a not in taken:
                taken.add(a)
                out.append(a)
        return out

    # ------------------------------------------------------------------ predictor
    def _predictor(self):
        opts: dict[str, Any] = dict(seed=self.seed * 7919 + self.fits, space=self.space, features=self.features)
        if self.predictor_name in ("rf", "gbm"):
            pass
        else:
            opts.update(ensemble=self.ensemble, epochs=self.epochs, loss=self.loss)
        if "zc" in self.features:
            from dnas.predictors.zcfeatures import ZCFeatures

            opts["zc"] = ZCFeatures(self.warm.proxies, scorer=self.warm.scores)
        return self._make_predictor(self.predictor_name, **opts)

    def _next_batch(self) -> list[Hashable]:
        archs = list(self.evaluated)
        y = [self.evaluated[a] for a in archs]
        finite = [(a, v) for a, v in zip(archs, y) if math.isfinite(v)]
        cands = self._candidates()
        if len(finite) < 2 or not cands:
            return cands[: self.k] or [self.sample_new()]
        model = self._predictor().fit([a for a, _ in finite], [v for _, v in finite])
        self.fits += 1
        members = model.predict_members(cands)
        acq = acquisition(self.acq, members, max(v for _, v in finite), self.np_rng)
        order = np.argsort(-acq, kind="stable")
        return [cands[i] for i in order[: self.k]]

    # ------------------------------------------------------------------ ask / tell
    def ask(self) -> Proposal:
        while self.queue and (self.queue[0] in self.evaluated):
            self.queue.pop(0)
        if not self.queue:
            self.queue = self._initial() if len(self.evaluated) < self.num_init else self._next_batch()
            if len(self.evaluated) < self.num_init:
                self.queue = self.queue[: self.num_init - len(self.evaluated)]
        return Proposal(self.queue.pop(0))

    def tell(self, proposal: Proposal, result: EvalResult) -> None:
        super().tell(proposal, result)
