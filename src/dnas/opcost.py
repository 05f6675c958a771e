"""Per-op cost of the DARTS cell space: parameters, multiply-adds and table latency of every
candidate op at the exact shape it has in an evaluation network, and the decomposition

    cost(network of genotype) = cost(skeleton) + sum over the genotype's edges of cost(op, shape)

where the skeleton is the same network with every op replaced by ``none``. For parameters and
multiply-adds the decomposition is exact (ops are the only part that changes, and ``none`` has
neither), which is what lets a search take the *expected* cost of its op distribution: the
cost matrices below, weighted by per-edge op probabilities, plus the skeleton constant.
For latency it is the classic lookup-table approximation (it ignores memory effects between
ops and the framework's per-call overhead outside the ops).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Sequence

import torch

from dnas.cost import count_macs, count_params
from dnas.genotype import Genotype
from dnas.ops import make_op
from dnas.relax.base import num_edges

METRICS = ("params", "macs", "latency")


@dataclass(frozen=True)
class NetShape:
    """The evaluation network whose cost is modelled (NetworkCIFAR at this size)."""

    C: int = 8
    layers: int = 5
    image_size: int = 32
    in_channels: int = 3
    num_classes: int = 10
    steps: int = 4

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.image_size, self.image_size)


@dataclass(frozen=True)
class CellShape:
    reduction: bool
    C: int
    H: int  # spatial size of the cell's (preprocessed) inputs


def cell_shapes(net: NetShape) -> list[CellShape]:
    """Channels and input size of every cell of NetworkCIFAR (reductions at 1/3 and 2/3)."""
    from dnas.models.cell import reduction_layers

    reds = reduction_layers(net.layers)
    out, C, H = [], net.C, net.image_size
    for i in range(net.layers):
        red = i in reds
        if red:
            C *= 2
        out.append(CellShape(red, C, H))
        if red:
            H = (H + 1) // 2
    return out


def edge_shapes(cell: CellShape, steps: int) -> list[tuple[int, int, int]]:
    """``(C, H, stride)`` of each of the cell's edges, in supernet edge order."""
    out = []
    for i in range(steps):
        for j in range(i + 2):
            stride = 2 if cell.reduction and j < 2 else 1
            H = cell.H if j < 2 or not cell.reduction else (cell.H + 1) // 2
            out.append((cell.C, H, stride))
    return out


@functools.lru_cache(maxsize=4096)
def op_params(op: str, C: int, stride: int) -> int:
    """Parameters of an ``OPS`` op (affine BN, as in evaluation networks)."""
    return count_params(make_op(op, C, stride, True))


@functools.lru_cache(maxsize=4096)
def op_macs(op: str, C: int, H: int, W: int, stride: int) -> int:
    """Multiply-adds of an ``OPS`` op at input ``(1, C, H, W)``."""
    with torch.device("meta"):
        m = make_op(op, C, stride, True)
    return count_macs(m, (C, H, W))


def skeleton_genotype(steps: int = 4) -> Genotype:
    """The genotype whose every op is ``none``: the fixed part of any network of the space."""
    edges = [("none", j) for _ in range(steps) for j in (0, 1)]
    concat = list(range(2, steps + 2))
    return Genotype(edges, concat, edges, concat)


def build_net(genotype: Genotype, net: NetShape) -> torch.nn.Module:
    from dnas.models import build_network

    return build_network(genotype, C=net.C, layers=net.layers, num_classes=net.num_classes, in_channels=net.in_channels)


def cost_matrices(
    primitives: Sequence[str], net: NetShape, metric: str, table=None
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``(M_normal, M_reduce, fixed)``: per-edge, per-op cost summed over all cells of each
    type (shape ``(edges, ops)``, float64), and the skeleton's cost.

    ``metric`` is ``params`` (millions), ``macs`` (millions) or ``latency`` (ms, needs a
    :class:`dnas.latency.LatencyTable`). The cost of a genotype is ``fixed`` plus the entries
    of its chosen (edge, op) pairs, see :func:`genotype_cost`.
    """
    if metric not in METRICS:
        raise ValueError(f"metric: one of {METRICS}, got {metric!r}")
    E, K = num_edges(net.steps), len(primitives)
    mats = {False: torch.zeros(E, K, dtype=torch.float64), True: torch.zeros(E, K, dtype=torch.float64)}
    specs: list[tuple[str, int, int, int, int]] = []
    where: list[tuple[bool, int, int]] = []
    for cell in cell_shapes(net):
        for e, (C, H, s) in enumerate(edge_shapes(cell, net.steps)):
            for k, op in enumerate(primitives):
                specs.append((op, C, H, H, s))
                where.append((cell.reduction, e, k))
    if metric == "params":
        values = [op_params(op, C, s) / 1e6 for op, C, H, W, s in specs]
    elif metric == "macs":
        values = [op_macs(op, C, H, W, s) / 1e6 for op, C, H, W, s in specs]
    else:
        if table is None:
            raise ValueError("metric 'latency' needs a LatencyTable")
        values = table.ops(specs)
    for (red, e, k), v in zip(where, values):
        mats[red][e, k] += v
    fixed = skeleton_cost(net, metric, table)
    if metric == "latency":
        # The skeleton ran `none` ops on edges 0->i and 1->i of every node; those belong to
        # the per-edge entries instead, so take them out of the constant.
        sk = [edge_index(i, j) for i in range(net.steps) for j in (0, 1)]
        for cell in cell_shapes(net):
            shapes = edge_shapes(cell, net.steps)
            fixed -= sum(table.ops([("none", shapes[e][0], shapes[e][1], shapes[e][1], shapes[e][2]) for e in sk]))
    return mats[False], mats[True], float(fixed)


def edge_index(node: int, inp: int) -> int:
    """Supernet edge index of the edge ``inp -> node``."""
    return sum(i + 2 for i in range(node)) + inp


def skeleton_cost(net: NetShape, metric: str, table=None) -> float:
    g = skeleton_genotype(net.steps)
    if metric in ("params", "macs"):
        with torch.device("meta"):
            model = build_net(g, net)
        if metric == "params":
            return count_params(model) / 1e6
        return count_macs(model, net.input_shape) / 1e6
    key = f"skeleton|C{net.C}|L{net.layers}|{net.in_channels}x{net.image_size}x{net.image_size}|n{net.num_classes}|steps{net.steps}|b{table.batch}"
    return table.lookup([(key, lambda: build_net(g, net), net.input_shape)])[0]


def genotype_onehot(genotype: Genotype, primitives: Sequence[str], steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(edges, ops)`` count matrices of a genotype's normal and reduce cells (1 where the
    cell uses that op on that edge)."""
    E, K = num_edges(steps), len(primitives)
    out = []
    for cell in (genotype.normal, genotype.reduce):
        m = torch.zeros(E, K, dtype=torch.float64)
        for idx, (op, inp) in enumerate(cell):
            m[edge_index(idx // 2, inp), list(primitives).index(op)] += 1.0
        out.append(m)
    return out[0], out[1]


def genotype_cost(genotype: Genotype, primitives: Sequence[str], mats: tuple[torch.Tensor, torch.Tensor, float], steps: int = 4) -> float:
    """Table-sum cost of a genotype: skeleton + its ops' entries."""
    n, r = genotype_onehot(genotype, primitives, steps)
    return float(mats[2] + (n * mats[0]).sum() + (r * mats[1]).sum())
