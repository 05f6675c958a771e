"""Regularized (aging) evolution, Real et al. 2019, "Regularized Evolution for Image Classifier
Architecture Search".

The population is a queue: each step samples ``sample_size`` members uniformly, mutates the
best of them (one edge's op or input changes) and appends the child, then removes the
*oldest* member rather than the worst. Ageing keeps the population turning over, which the
paper found more robust than tournament selection with elitism.

Adaptations for finite tables: a mutation must land on an architecture the table holds and
has not been evaluated yet; if the parent has no such neighbour, the child is ``fallback``:
``"random"`` (default, "resample") draws an unevaluated candidate uniformly, ``"nearest"``
draws among the unevaluated candidates closest to the parent in Hamming distance over the
space's encoding (useful on sparse tables where one-edge neighbours are rarely present).
"""
from __future__ import annotations

from collections import deque
from typing import Hashable, Sequence

from dnas.errors import ConfigError
from dnas.evaluators.base import EvalResult
from dnas.spaces.base import SearchSpace
from dnas.strategies.base import STRATEGIES, DiscreteStrategy, Proposal


@STRATEGIES.register("evolution")
class RegularizedEvolution(DiscreteStrategy):
    """Aging evolution with tournament selection of ``sample_size`` out of ``population_size``."""

    def __init__(
        self,
        space: SearchSpace,
        *,
        seed: int,
        candidates: Sequence[Hashable] | None = None,
        population_size: int = 10,
        sample_size: int = 3,
        fallback: str = "random",
    ):
        super().__init__(space, seed=seed, candidates=candidates)
        if population_size < 2:
            raise ConfigError(f"population_size: must be >= 2, got {population_size}")
        if not 1 <= sample_size <= population_size:
            raise ConfigError(f"sample_size: must be in [1, population_size={population_size}], got {sample_size}")
        if fallback not in ("random", "nearest"):
            raise ConfigError(f"fallback: must be 'random' or 'nearest', got {fallback!r}")
        self.population_size = population_size
        self.sample_size = sample_size
        self.fallback = fallback
        self.population: deque[tuple[Hashable, float]] = deque()
        self.mutations = 0  # children produced by a true one-edge mutation
        self.fallbacks = 0  # children drawn by the fallback rule
        self._neighbours: dict[Hashable, list[Hashable]] = {}  # allowed neighbours of parents so far

    def ask(self) -> Proposal:
        if len(self.population) < self.population_size:
            return Proposal(self.sample_new())  # the random initial population
        tournament = self.rng.sample(list(self.population), self.sample_size)
        parent = max(tournament, key=lambda m: m[1])[0]
        return Proposal(self._mutate(parent))

    def _mutate(self, parent: Hashable) -> Hashable:
        if parent not in self._neighbours:  # a good parent wins many tournaments: enumerate once
            self._neighbours[parent] = [a for a in self.space.neighbours(parent) if self.allowed(a)]
        options = [a for a in self._neighbours[parent] if a not in self.evaluated]
        if options:
            self.mutations += 1
            return self.rng.choice(options)
        self.fallbacks += 1
        if self.fallback == "nearest" and self.candidates is not None:
            p = self.space.encode(parent)
            fresh = [a for a in self.candidates if a not in self.evaluated]
            if not fresh:
                return self.sample_new()  # raises the "all evaluated" error
            dist = [sum(x != y for x, y in zip(p, self.space.encode(a))) for a in fresh]
            d = min(dist)
            return self.rng.choice([a for a, di in zip(fresh, dist) if di == d])
        return self.sample_new()

    def tell(self, proposal: Proposal, result: EvalResult) -> None:
        super().tell(proposal, result)
        self.population.append((proposal.arch, result.accuracy))
        if len(self.population) > self.population_size:
            self.population.popleft()  # ageing: the oldest dies, not the worst
