"""Structural (edit) distance between architectures of a space.

Every space answers :meth:`~dnas.spaces.base.SearchSpace.distance`; :func:`distance` and
:func:`pairwise` ask it (vectorised when it is the default Hamming distance of the encodings,
as for NB201), so shrinkage, diversity and locality work on any space. The two distances below
are the ones the NB201 and DARTS spaces use.

Locality-based shrinkage rests on one assumption: architectures that are close in structure
perform alike. "Close" needs a distance, and the pockets it builds are balls of that distance,
so it must be a true metric (identity, symmetry, triangle inequality) for "within ``r`` of the
seed" to mean what it says.

* **NB201**: every cell has the same 6 edges, each with one of 5 ops, so the only edit is
  "change the op on an edge" and the edit distance is the Hamming distance over the 6 edges
  (the number of one-edge mutations between the two, :meth:`NB201Arch.neighbours` = distance 1).
* **DARTS genotypes**: each intermediate node has a fixed number of incoming edges, each an
  ``(op, input)`` pair; an edit changes one edge's op (cost 1) or rewires its input (cost 1),
  so one edge costs ``[op differs] + [input differs]``. A node *sums* its edges, so their order
  inside a node carries no meaning: a node's cost is the minimum-cost matching between the two
  nodes' edges (Hungarian algorithm, :func:`scipy.optimize.linear_sum_assignment`). The cell
  distance adds the nodes, plus one per node that is in one concat list but not the other; the
  genotype distance adds the normal and the reduction cell. An optimal matching between
  equal-size multisets under a metric is itself a metric, and sums of metrics are metrics, so
  this is a metric on architectures; on genotype *lists* it is a pseudo-metric (two genotypes
  that only order a node's edges differently are the same network and are at distance 0; use
  :func:`canonical_darts` to get one representative).
"""
from __future__ import annotations

from typing import Any, Hashable, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from dnas.errors import GenotypeError
from dnas.genotype import Genotype
from dnas.spaces.base import SearchSpace, get_space
from dnas.spaces.nb201 import NB201_OPS, NB201Arch


# ---------------------------------------------------------------------------- NB201
def nb201_distance(a: NB201Arch, b: NB201Arch) -> int:
    """Hamming distance over the 6 edges = the number of one-edge op changes from ``a`` to ``b``."""
    return sum(x != y for x, y in zip(a.ops, b.ops))


def nb201_codes(archs: Sequence[NB201Arch]) -> np.ndarray:
    """``(n, 6)`` int8 op indices, for vectorised distances over many archs."""
    index = {op: i for i, op in enumerate(NB201_OPS)}
    return np.array([[index[o] for o in a.ops] for a in archs], dtype=np.int8).reshape(len(archs), 6)


def nb201_distances(center: NB201Arch, codes: np.ndarray) -> np.ndarray:
    """Distance from ``center`` to every row of ``codes`` (see :func:`nb201_codes`)."""
    c = nb201_codes([center])[0]
    return (codes != c).sum(axis=1)


# ---------------------------------------------------------------------------- DARTS
def _nodes(cell: Sequence[tuple[str, int]], per_node: int) -> list[list[tuple[str, int]]]:
    return [list(cell[i : i + per_node]) for i in range(0, len(cell), per_node)]


def _edge_cost(e: tuple[str, int], f: tuple[str, int]) -> int:
    return int(e[0] != f[0]) + int(e[1] != f[1])


def _cell_distance(a: Sequence[tuple[str, int]], ca: Sequence[int], b: Sequence[tuple[str, int]],
                   cb: Sequence[int], per_node: int, which: str) -> int:
    if len(a) != len(b):
        raise GenotypeError(
            f"darts distance: {which} cells have {len(a)} and {len(b)} edges; compare genotypes of one space"
        )
    if len(a) % per_node:
        raise GenotypeError(f"darts distance: {which} cell has {len(a)} edges, not a multiple of {per_node} per node")
    total = 0
    for na, nb in zip(_nodes(a, per_node), _nodes(b, per_node)):
        if per_node == 2:  # two edges: the better of the two pairings (what the matching solves)
            (e0, e1), (f0, f1) = na, nb
            total += min(_edge_cost(e0, f0) + _edge_cost(e1, f1), _edge_cost(e0, f1) + _edge_cost(e1, f0))
            continue
        cost = np.array([[_edge_cost(e, f) for f in nb] for e in na])
        rows, cols = linear_sum_assignment(cost)
        total += int(cost[rows, cols].sum())
    return total + len(set(ca) ^ set(cb))


def darts_distance(a: Genotype, b: Genotype, edges_per_node: int = 2) -> int:
    """Edit distance between two DARTS genotypes (see the module docstring): per node, the
    cheapest matching of edges where changing an edge's op or its input costs 1 each."""
    return _cell_distance(a.normal, a.normal_concat, b.normal, b.normal_concat, edges_per_node, "normal") + (
        _cell_distance(a.reduce, a.reduce_concat, b.reduce, b.reduce_concat, edges_per_node, "reduce")
    )


def canonical_darts(g: Genotype, edges_per_node: int = 2) -> Genotype:
    """The genotype with each node's edges sorted (same network, one representative)."""
    def sort(cell):
        return [tuple(e) for node in _nodes(cell, edges_per_node) for e in sorted(tuple(x) for x in node)]

    return Genotype(sort(g.normal), tuple(g.normal_concat), sort(g.reduce), tuple(g.reduce_concat))


# ---------------------------------------------------------------------------- any space
def space_of(archs: Sequence[Any], space: "str | SearchSpace | None" = None) -> SearchSpace:
    """The space ``archs`` belong to: ``space`` when given, else the one their ``space``
    attribute names (every genotype class carries it). Mixed or unknown archs raise one line."""
    if space is not None:
        return get_space(space)
    names = {getattr(a, "space", None) for a in archs}
    if len(names) != 1 or None in names:
        kinds = ", ".join(sorted({type(a).__name__ for a in archs}))
        raise GenotypeError(f"distance: cannot compare {kinds} archs; give archs of one space (or pass space=)")
    return get_space(names.pop())


def uses_hamming(space: SearchSpace) -> bool:
    """True when the space's distance is the default Hamming distance of its encodings, which
    :func:`pairwise` and balls then compute vectorised over many archs."""
    return type(space).distance is SearchSpace.distance


def codes(space: SearchSpace, archs: Sequence[Hashable]) -> np.ndarray:
    """``(n, d)`` categorical encodings (:meth:`SearchSpace.encode`) for vectorised distances."""
    return np.array([space.encode(a) for a in archs], dtype=np.int16).reshape(len(archs), len(space.cardinalities))


def distance(a: Any, b: Any, space: "str | SearchSpace | None" = None) -> int:
    """Edit distance between two architectures of one space (:meth:`SearchSpace.distance`)."""
    return int(space_of([a, b], space).distance(a, b))


def pairwise(archs: Sequence[Hashable], space: "str | SearchSpace | None" = None) -> np.ndarray:
    """The ``(n, n)`` distance matrix (vectorised for spaces with the Hamming distance)."""
    n = len(archs)
    if n == 0:
        return np.zeros((0, 0), dtype=np.int64)
    sp = space_of(archs, space)
    if uses_hamming(sp):
        c = codes(sp, archs)
        return (c[:, None, :] != c[None, :, :]).sum(axis=2)
    out = np.zeros((n, n), dtype=np.int64)
    for i in range(n):
        for j in range(i + 1, n):
            out[i, j] = out[j, i] = sp.distance(archs[i], archs[j])
    return out
