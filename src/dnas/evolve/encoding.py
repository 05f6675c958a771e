"""A compact integer encoding of network genotypes, and variation operators that keep it valid.

Layout of one vector (``1 + 4 * stages`` integers)::

    [stem,  block_0, repeats_0, width_0, reduce_0,  block_1, ...]

``stem`` and ``width_s`` index the allowed channel counts, ``block_s`` the candidate blocks,
``repeats_s`` is ``repeats - 1`` and ``reduce_s`` is 0/1. Every vector inside the bounds is a
network, except that at most ``max_reductions`` stages may reduce (so small inputs are not
pooled away); :meth:`NetworkSpace.repair` enforces that by clearing the latest extra reduction
flags, and every operator here ends with it, so sampling, mutation and crossover only ever
produce valid vectors. Since there are no unused genes, the encoding is one-to-one: decode and
encode are inverses.

The pymoo operators (:class:`NetworkSampling`, :class:`NetworkMutation`,
:class:`NetworkCrossover`) draw from the ``random_state`` the algorithm hands them, so a seeded
NSGA-II run is reproducible. Mutation resets a gene uniformly (block, reduce) or steps it by
+-1 (repeats, widths: ordinal genes, where small changes are the useful ones); crossover swaps
whole stages between the two parents, so a stage's block, depth and width travel together.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from pymoo.core.crossover import Crossover
from pymoo.core.mutation import Mutation
from pymoo.core.sampling import Sampling

from dnas.errors import ConfigError
from dnas.genotype import Genotype
from dnas.evolve.network import NetworkGenotype, StageSpec

GENES_PER_STAGE = 4
BLOCK, REPEATS, WIDTH, REDUCE = range(GENES_PER_STAGE)


@dataclass(frozen=True)
class NetworkSpace:
    """The network-level search space: candidate blocks, allowed widths and stage structure."""

    blocks: tuple[Genotype, ...]
    widths: tuple[int, ...] = (8, 16, 24, 32)
    stem_widths: tuple[int, ...] = (8, 16, 24)
    stages: int = 3
    max_repeats: int = 3
    max_reductions: int = 2
    block_names: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", tuple(self.blocks))
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "stem_widths", tuple(int(w) for w in self.stem_widths))
        object.__setattr__(self, "block_names", tuple(self.block_names))
        if not self.blocks:
            raise ConfigError("blocks: the network space needs at least one candidate block")
        if not self.widths or any(w < 2 or w % 2 for w in self.widths):
            raise ConfigError(f"widths: need even channel counts >= 2, got {list(self.widths)}")
        if not self.stem_widths or any(w < 1 for w in self.stem_widths):
            raise ConfigError(f"stem_widths: need channel counts >= 1, got {list(self.stem_widths)}")
        if self.stages < 1 or self.max_repeats < 1 or self.max_reductions < 0:
            raise ConfigError("stages and max_repeats must be >= 1 and max_reductions >= 0")

    # ------------------------------------------------------------------ bounds
    @property
    def n_var(self) -> int:
        return 1 + GENES_PER_STAGE * self.stages

    @property
    def upper(self) -> np.ndarray:
        """Inclusive upper bound of every gene (the lower bound is 0)."""
        stage = [len(self.blocks) - 1, self.max_repeats - 1, len(self.widths) - 1, 1]
        return np.array([len(self.stem_widths) - 1] + stage * self.stages, dtype=np.int64)

    @property
    def lower(self) -> np.ndarray:
        return np.zeros(self.n_var, dtype=np.int64)

    def size(self) -> int:
        """Number of distinct valid networks (for tests and for sizing a run)."""
        from math import comb

        per_stage = len(self.blocks) * self.max_repeats * len(self.widths)
        flags = sum(comb(self.stages, k) for k in range(min(self.max_reductions, self.stages) + 1))
        return len(self.stem_widths) * per_stage**self.stages * flags

    # ------------------------------------------------------------------ validity
    def is_valid(self, x: Sequence[int]) -> bool:
        x = np.asarray(x)
        return (x.shape == (self.n_var,) and bool(np.all(x >= 0)) and bool(np.all(x <= self.upper))
                and int(x[1 + REDUCE::GENES_PER_STAGE].sum()) <= self.max_reductions)

    def repair(self, x: Sequence[int]) -> np.ndarray:
        """Clip to the bounds and clear the latest reduction flags beyond ``max_reductions``."""
        x = np.clip(np.rint(np.asarray(x, dtype=float)).astype(np.int64), 0, self.upper)
        flags = np.flatnonzero(x[1 + REDUCE::GENES_PER_STAGE])
        for s in flags[self.max_reductions:]:
            x[1 + GENES_PER_STAGE * s + REDUCE] = 0
        return x

    # ------------------------------------------------------------------ decode / encode
    def decode(self, x: Sequence[int]) -> NetworkGenotype:
        x = np.asarray(x)
        if not self.is_valid(x):
            raise ConfigError(f"encoding: {list(map(int, x))} is not a valid network vector for this space")
        layout = []
        for s in range(self.stages):
            g = x[1 + GENES_PER_STAGE * s: 1 + GENES_PER_STAGE * (s + 1)]
            layout.append(StageSpec(int(g[BLOCK]), int(g[REPEATS]) + 1, self.widths[int(g[WIDTH])], bool(g[REDUCE])))
        meta = {"block_names": list(self.block_names)} if self.block_names else {}
        return NetworkGenotype.make(self.blocks, self.stem_widths[int(x[0])], layout, meta)

    def encode(self, net: NetworkGenotype) -> np.ndarray:
        """The vector of ``net``; raises ConfigError if ``net`` is outside this space."""
        if len(net.layout) != self.stages:
            raise ConfigError(f"encoding: network has {len(net.layout)} stages, the space {self.stages}")
        if tuple(b.hash() for b in net.blocks) != tuple(b.hash() for b in self.blocks):
            raise ConfigError("encoding: the network's blocks differ from the space's candidate blocks")
        try:
            x = [self.stem_widths.index(net.stem)]
            for s in net.layout:
                x += [s.block, s.repeats - 1, self.widths.index(s.width), int(s.reduce)]
        except ValueError:
            raise ConfigError(f"encoding: a width of {net} is not among the allowed widths") from None
        x = np.array(x, dtype=np.int64)
        if not self.is_valid(x):
            raise ConfigError(f"encoding: {net} is outside this space (repeats or reductions out of range)")
        return x

    # ------------------------------------------------------------------ variation
    def random(self, rng: np.random.Generator) -> np.ndarray:
        return self.repair(rng.integers(0, self.upper + 1))

    def mutate(self, x: Sequence[int], rng: np.random.Generator, prob: float | None = None) -> np.ndarray:
        """Change each gene with probability ``prob`` (default ``1/n_var``; at least one gene
        changes, so a mutant always differs from its parent before repair)."""
        x = np.array(x, dtype=np.int64)
        up = self.upper
        p = 1.0 / self.n_var if prob is None else prob
        genes = np.flatnonzero(rng.random(self.n_var) < p)
        movable = np.flatnonzero(up > 0)
        if len(genes) == 0 and len(movable):
            genes = [int(rng.choice(movable))]
        for i in genes:
            if up[i] == 0:
                continue
            kind = (i - 1) % GENES_PER_STAGE if i > 0 else WIDTH
            if kind in (REPEATS, WIDTH):  # ordinal: one step up or down
                step = int(rng.choice([-1, 1]))
                v = x[i] + step
                x[i] = v if 0 <= v <= up[i] else x[i] - step
            else:  # categorical: any other value
                x[i] = (x[i] + int(rng.integers(1, up[i] + 1))) % (up[i] + 1)
        return self.repair(x)

    def crossover(self, a: Sequence[int], b: Sequence[int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Uniform crossover over units (the stem gene, each whole stage): two children."""
        ca, cb = np.array(a, dtype=np.int64), np.array(b, dtype=np.int64)
        units = [slice(0, 1)] + [slice(1 + GENES_PER_STAGE * s, 1 + GENES_PER_STAGE * (s + 1)) for s in range(self.stages)]
        for u in units:
            if rng.random() < 0.5:
                ca[u], cb[u] = cb[u].copy(), ca[u].copy()
        return self.repair(ca), self.repair(cb)


# --------------------------------------------------------------------------- pymoo operators
class NetworkSampling(Sampling):
    """Uniform random valid networks."""

    def __init__(self, space: NetworkSpace) -> None:
        super().__init__()
        self.space = space

    def _do(self, problem, n_samples, *args, random_state=None, **kwargs):
        return np.stack([self.space.random(random_state) for _ in range(n_samples)])


class NetworkMutation(Mutation):
    """Per-gene reset/step mutation followed by repair (see :meth:`NetworkSpace.mutate`)."""

    def __init__(self, space: NetworkSpace, gene_prob: float | None = None) -> None:
        super().__init__()
        self.space = space
        self.gene_prob = gene_prob

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        return np.stack([self.space.mutate(x, random_state, self.gene_prob) for x in X])


class NetworkCrossover(Crossover):
    """Stage-wise uniform crossover of two parents into two children."""

    def __init__(self, space: NetworkSpace, prob: float = 0.9) -> None:
        super().__init__(n_parents=2, n_offsprings=2, prob=prob)
        self.space = space

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        _, n_matings, n_var = X.shape
        Y = np.empty((2, n_matings, n_var), dtype=np.int64)
        for k in range(n_matings):
            Y[0, k], Y[1, k] = self.space.crossover(X[0, k], X[1, k], random_state)
        return Y


__all__ = ["NetworkSpace", "NetworkSampling", "NetworkMutation", "NetworkCrossover", "GENES_PER_STAGE"]
