"""The DARTS cell space: 2 cell inputs, ``steps`` intermediate nodes (4), every node fed by all
earlier nodes (14 edges), 8 candidate ops, cell output = concat of the intermediate nodes.

:func:`derive_cell` turns per-edge op weights into the discrete cell as the reference code
does: each node keeps the 2 incoming edges whose strongest non-``none`` weight is largest, and
each kept edge takes its strongest non-``none`` op.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from dnas.errors import ConfigError
from dnas.genotype import Genotype
from dnas.ops import DARTS_PRIMITIVES, OPS
from dnas.relax.base import node_slices, num_edges


@dataclass(frozen=True)
class DartsSpace:
    primitives: tuple[str, ...] = tuple(DARTS_PRIMITIVES)
    steps: int = 4
    multiplier: int = 4

    def __post_init__(self) -> None:
        for i, p in enumerate(self.primitives):
            if p not in OPS:
                raise ConfigError(f"primitives[{i}]: unknown op {p!r}; known ops: {', '.join(OPS.names())}")
        if len(set(self.primitives)) != len(self.primitives):
            raise ConfigError("primitives: an op is listed twice")
        if not [p for p in self.primitives if p != "none"]:
            raise ConfigError("primitives: needs at least one op other than 'none'")
        if self.steps < 1:
            raise ConfigError("steps: must be at least 1")
        if not 1 <= self.multiplier <= self.steps:
            raise ConfigError(f"multiplier: must be between 1 and steps={self.steps}")

    @property
    def num_edges(self) -> int:
        return num_edges(self.steps)

    @property
    def concat(self) -> list[int]:
        return list(range(2 + self.steps - self.multiplier, self.steps + 2))

    def derive_cell(self, weights: torch.Tensor, keep: int = 2, rule: str = "darts") -> list[tuple[str, int]]:
        if rule not in DERIVATION_RULES:
            raise ConfigError(f"derivation: unknown rule {rule!r}; use one of {', '.join(DERIVATION_RULES)}")
        return DERIVATION_RULES[rule](weights, self.primitives, self.steps, keep)

    def derive(self, w_normal: torch.Tensor, w_reduce: torch.Tensor, rule: str = "darts", **meta) -> Genotype:
        """The discrete genotype of (edges, ops) weights under ``rule`` (see :data:`DERIVATION_RULES`)."""
        return Genotype(
            self.derive_cell(w_normal, rule=rule), self.concat, self.derive_cell(w_reduce, rule=rule), self.concat, "darts", meta
        )


def derive_cell(weights: torch.Tensor, primitives: Sequence[str], steps: int, keep: int = 2) -> list[tuple[str, int]]:
    """Reference DARTS parsing of an (edges, ops) weight matrix into ``keep`` edges per node.

    Ties are broken by the lower index (stable sort), like the reference implementation."""
    W = weights.detach().cpu().double().numpy()
    none = primitives.index("none") if "none" in primitives else -1
    real = [k for k in range(len(primitives)) if k != none]
    gene: list[tuple[str, int]] = []
    for i, sl in enumerate(node_slices(steps)):
        Wn = W[sl]
        n_in = i + 2
        edges = sorted(range(n_in), key=lambda j: -max(Wn[j][k] for k in real))[: min(keep, n_in)]
        for j in edges:
            k_best = max(real, key=lambda k: (Wn[j][k], -k))
            gene.append((primitives[k_best], j))
    return gene


def derive_cell_op_pairs(weights: torch.Tensor, primitives: Sequence[str], steps: int, keep: int = 2) -> list[tuple[str, int]]:
    """The released GDAS parsing (NASNet space): per node, rank every (non-``none`` op, input)
    pair of its incoming edges by weight and keep the ``keep`` strongest. Two kept ops may read
    the same input; ties go to the lower input, then the lower op index (stable sort)."""
    W = weights.detach().cpu().double().numpy()
    real = [k for k, p in enumerate(primitives) if p != "none"]
    gene: list[tuple[str, int]] = []
    for i, sl in enumerate(node_slices(steps)):
        Wn = W[sl]
        pairs = sorted(((j, k) for j in range(i + 2) for k in real), key=lambda jk: -Wn[jk[0]][jk[1]])
        gene.extend((primitives[k], j) for j, k in pairs[:keep])
    return gene


#: Derivation rules by name: ``rule(weights, primitives, steps, keep) -> [(op, input), ...]``.
DERIVATION_RULES = {"darts": derive_cell, "op-pairs": derive_cell_op_pairs}


def random_genotype(seed: int, space: DartsSpace | None = None) -> Genotype:
    """A genotype drawn uniformly from the discrete DARTS space: each node picks 2 distinct
    inputs and each edge an op other than ``none`` (the baseline a search has to beat)."""
    import random

    space = space or DartsSpace()
    rng = random.Random(seed)
    ops = [p for p in space.primitives if p != "none"]

    def cell() -> list[tuple[str, int]]:
        edges = []
        for i in range(space.steps):
            for j in sorted(rng.sample(range(i + 2), 2)):
                edges.append((rng.choice(ops), j))
        return edges

    return Genotype(cell(), space.concat, cell(), space.concat, "darts", {"method": "random", "seed": seed})
