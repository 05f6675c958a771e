"""The DARTS cell space: 2 cell inputs, ``steps`` intermediate nodes (4), every node fed by all
earlier nodes (14 edges), 8 candidate ops, cell output = concat of the intermediate nodes.

:func:`derive_cell` turns per-edge op weights into the discrete cell as the reference code
does: each node keeps the 2 incoming edges whose strongest non-``none`` weight is largest, and
each kept edge takes its strongest non-``none`` op.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Sequence

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


# ---------------------------------------------------------------------------- one-shot supernet
# The supernet owns the architecture parameters (``alpha`` per cell type, plus ``beta`` edge
# parameters for relaxations that use them) and keeps them apart from the weights, because the
# bilevel search updates the two on different data splits with different optimizers.
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from dnas.archsplit import ArchWeightSplit  # noqa: E402
from dnas.ops import FactorizedReduce, ReLUConvBN  # noqa: E402
from dnas.relax.base import Relaxation, edge_output  # noqa: E402


class SearchCell(nn.Module):
    def __init__(self, space: DartsSpace, relax: Relaxation, C_pp: int, C_p: int, C: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        self.steps = space.steps
        self.multiplier = space.multiplier
        self.preprocess0 = FactorizedReduce(C_pp, C, affine=False) if reduction_prev else ReLUConvBN(C_pp, C, 1, 1, 0, affine=False)
        self.preprocess1 = ReLUConvBN(C_p, C, 1, 1, 0, affine=False)
        self.edges = nn.ModuleList()
        for i in range(self.steps):
            for j in range(i + 2):
                stride = 2 if reduction and j < 2 else 1
                self.edges.append(relax.mixed_op(C, stride, space.primitives))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor, edge_w: torch.Tensor | None) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(self.steps):
            s = None
            for j, h in enumerate(states):
                y = edge_output(self.edges[offset + j], h, weights[offset + j], None if edge_w is None else edge_w[offset + j])
                s = y if s is None else s + y
            offset += len(states)
            states.append(s)
        return torch.cat(states[-self.multiplier :], dim=1)


class Supernet(ArchWeightSplit, nn.Module):
    """DARTS-style search network: stem, ``layers`` search cells (reductions at 1/3 and 2/3 of
    depth), global pooling, classifier."""

    def __init__(
        self,
        space: DartsSpace,
        relax: Relaxation,
        *,
        C: int = 16,
        layers: int = 8,
        num_classes: int = 10,
        in_channels: int = 3,
        stem_multiplier: int = 3,
    ) -> None:
        super().__init__()
        self.space, self.relax = space, relax
        self.primitives = list(space.primitives)  # column names of alpha (selections read them)
        self.steps = space.steps
        C_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C_curr, 3, padding=1, bias=False), nn.BatchNorm2d(C_curr))
        C_pp, C_p, C_curr = C_curr, C_curr, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = layers >= 3 and i in (layers // 3, 2 * layers // 3)
            if reduction:
                C_curr *= 2
            cell = SearchCell(space, relax, C_pp, C_p, C_curr, reduction, reduction_prev)
            reduction_prev = reduction
            self.cells.append(cell)
            C_pp, C_p = C_p, space.multiplier * C_curr
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_p, num_classes)

        E, K = space.num_edges, len(space.primitives)
        # Architecture parameters, initialised 1e-3 * N(0, 1) as in the reference code.
        self.alpha_normal = nn.Parameter(1e-3 * torch.randn(E, K))
        self.alpha_reduce = nn.Parameter(1e-3 * torch.randn(E, K))
        if relax.uses_edge_params:
            # One scalar per edge (PC-DARTS), or whatever shape the relaxation asks for
            # (TopoNAS: one logit per pair of a node's inputs).
            shape = relax.edge_param_shape(self.steps)
            self.beta_normal = nn.Parameter(1e-3 * torch.randn(*shape))
            self.beta_reduce = nn.Parameter(1e-3 * torch.randn(*shape))
        else:
            self.beta_normal = self.beta_reduce = None

    # -------------------------------------------------------------- parameter groups
    def arch_parameters(self) -> list[nn.Parameter]:
        ps = [self.alpha_normal, self.alpha_reduce]
        if self.beta_normal is not None:
            ps += [self.beta_normal, self.beta_reduce]
        return ps

    # -------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.relax
        w_n = r.forward_op_weights(self.alpha_normal, training=self.training)
        w_r = r.forward_op_weights(self.alpha_reduce, training=self.training)
        e_n = r.forward_edge_weights(self.beta_normal, self.steps, training=self.training)
        e_r = r.forward_edge_weights(self.beta_reduce, self.steps, training=self.training)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            if cell.reduction:
                s0, s1 = s1, cell(s0, s1, w_r, e_r)
            else:
                s0, s1 = s1, cell(s0, s1, w_n, e_n)
        out = self.global_pooling(s1)
        return self.classifier(out.flatten(1))

    # -------------------------------------------------------------- derivation
    def derive_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return (
                self.relax.derive_weights(self.alpha_normal, self.beta_normal, self.steps),
                self.relax.derive_weights(self.alpha_reduce, self.beta_reduce, self.steps),
            )

    def genotype(self, **meta) -> Genotype:
        w_n, w_r = self.derive_weights()
        return self.space.derive(w_n, w_r, rule=getattr(self.relax, "derive_rule", "darts"), **meta)

    def arch_summary(self) -> dict:
        """Softmaxed op weights per edge (and edge weights), as plain lists for the event log."""
        with torch.no_grad():
            d = {
                "normal": F.softmax(self.alpha_normal, -1).tolist(),
                "reduce": F.softmax(self.alpha_reduce, -1).tolist(),
            }
            if self.beta_normal is not None:
                d["edge_normal"] = self.relax.edge_weights(self.beta_normal, self.steps).tolist()
                d["edge_reduce"] = self.relax.edge_weights(self.beta_reduce, self.steps).tolist()
        return d


# ---------------------------------------------------------------------------- the SearchSpace
from itertools import combinations as _combinations  # noqa: E402

import numpy as _np  # noqa: E402

from dnas.spaces.base import PIN, SearchSpace, register_space  # noqa: E402


def _input_pairs(n_inputs: int) -> list[tuple[int, int]]:
    """The unordered pairs of distinct inputs a node with ``n_inputs`` inputs can read."""
    return list(_combinations(range(n_inputs), 2))


def pinned_cell_logits(cell: Sequence[tuple[str, int]], primitives: Sequence[str], steps: int) -> torch.Tensor:
    """``(edges, ops)`` logits under which a search cell computes exactly ``cell``: each kept
    edge pinned to its op, every other edge to ``none`` (see :data:`dnas.spaces.base.PIN`)."""
    prims = list(primitives)
    if "none" not in prims:
        raise ConfigError("primitives: pinning a single path needs the 'none' candidate on unused edges")
    rows = []
    for i in range(steps):
        kept = {j: op for op, j in cell[2 * i : 2 * i + 2]}
        for j in range(i + 2):
            row = torch.zeros(len(prims))
            row[prims.index(kept.get(j, "none"))] = PIN
            rows.append(row)
    return torch.stack(rows)


@register_space("darts")
class DartsCellSpace(SearchSpace):
    """The discrete DARTS cell space (normal + reduction cell) behind :class:`DartsSpace`.

    Each intermediate node reads two *distinct* inputs, each through an op other than ``none``
    (the reference derivation never keeps ``none`` and never keeps one input twice). The
    canonical form sorts each node's two edges by input index, so equal cells compare equal.

    Categorical view, per cell and node ``i``: the input pair (``C(i+2, 2)`` choices), then the
    op of the lower and of the higher input; every vector inside the cardinalities is a valid
    cell, so BOHB's KDE and trees never propose an invalid one.

    Graph view (predictors): per cell an op-node DAG (``input0``, ``input1``, one node per edge,
    ``output``); an edge reading node ``k+2`` receives from both op nodes of node ``k``; every op
    node feeds the output (all intermediate nodes are concatenated). The two cells are stacked
    block-diagonally, node features one-hot over ``[input0, input1, *ops, output]`` plus a
    reduction-cell flag.
    """

    @property
    def relaxations(self) -> tuple[str, ...]:  # type: ignore[override]
        """Every registered cell relaxation mixes DARTS-cell edges."""
        from dnas.relax import RELAXATIONS

        return tuple(RELAXATIONS.names())

    def __init__(self, primitives: Sequence[str] = tuple(DARTS_PRIMITIVES), steps: int = 4) -> None:
        self.cell = DartsSpace(tuple(primitives), steps, steps)
        self.ops = tuple(p for p in self.cell.primitives if p != "none")
        self.steps = steps
        self._pairs = [_input_pairs(i + 2) for i in range(steps)]
        per_cell = []
        for i in range(steps):
            per_cell += [len(self._pairs[i]), len(self.ops), len(self.ops)]
        self._cards = tuple(per_cell * 2)

    # -------------------------------------------------------------- data
    def canonical(self, g: Genotype) -> Genotype:
        def canon(cell):
            out = []
            for i in range(self.steps):
                a, b = sorted(cell[2 * i : 2 * i + 2], key=lambda e: (e[1], e[0]))
                out += [a, b]
            return out

        return Genotype(canon(g.normal), self.cell.concat, canon(g.reduce), self.cell.concat)

    def parse(self, obj: Any) -> Genotype:
        from dnas.errors import GenotypeError
        from dnas.genotype import load_genotype

        if isinstance(obj, str) and obj.lstrip().startswith("{"):  # the to_str form (JSON)
            import json

            try:
                obj = json.loads(obj)
            except json.JSONDecodeError as e:
                raise GenotypeError(f"darts genotype: invalid JSON ({e.msg} at column {e.colno})") from None
        g = obj if isinstance(obj, Genotype) else load_genotype(obj)
        if not isinstance(g, Genotype) or g.space not in ("darts", "hierarchical"):
            raise GenotypeError(f"darts genotype: got a {getattr(g, 'space', type(g).__name__)} architecture; "
                                f"use --space {getattr(g, 'space', 'darts')}")
        if g.is_hierarchical:
            raise GenotypeError("darts genotype: has per-stage cells or stages; use the hierarchical space")
        for name, cell, concat in (("normal", g.normal, g.normal_concat), ("reduce", g.reduce, g.reduce_concat)):
            self.check_cell(name, cell, concat)
        return self.canonical(g)

    def check_cell(self, name: str, cell: Sequence[tuple[str, int]], concat: Sequence[int]) -> None:
        """One line naming the field when ``cell`` is not a cell of this space."""
        from dnas.errors import GenotypeError

        if len(cell) != 2 * self.steps:
            raise GenotypeError(f"genotype.{name}: the DARTS cell space has {2 * self.steps} edges, got {len(cell)}")
        if list(concat) != self.cell.concat:
            raise GenotypeError(f"genotype.{name}_concat: must be {self.cell.concat} in the DARTS cell space")
        for i in range(self.steps):
            (o1, j1), (o2, j2) = cell[2 * i], cell[2 * i + 1]
            if j1 == j2:
                raise GenotypeError(f"genotype.{name}[{2 * i + 1}]: node {i} reads input {j1} twice; pick two distinct inputs")
            for k, (o, j) in ((2 * i, cell[2 * i]), (2 * i + 1, cell[2 * i + 1])):
                if o not in self.ops:
                    raise GenotypeError(f"genotype.{name}[{k}]: op {o!r} is not a candidate here ({', '.join(self.ops)})")
                if not 0 <= j < i + 2:
                    raise GenotypeError(f"genotype.{name}[{k}]: node {i} cannot read state {j} (inputs 0..{i + 1})")

    def to_dict(self, arch: Genotype) -> dict:
        return arch.to_dict(with_meta=False)

    def to_str(self, arch: Genotype) -> str:
        """Compact JSON of the two cells (``parse`` reads it back)."""
        import json

        g = self.canonical(arch)
        return json.dumps({"normal": [list(e) for e in g.normal], "normal_concat": list(g.normal_concat),
                           "reduce": [list(e) for e in g.reduce], "reduce_concat": list(g.reduce_concat)},
                          separators=(",", ":"))

    def hash(self, arch: Genotype) -> str:
        return arch.hash()

    def op_names(self, arch: Genotype) -> list[str]:
        return [o for o, _ in list(arch.normal) + list(arch.reduce)]

    # -------------------------------------------------------------- categorical view
    @property
    def cardinalities(self) -> tuple[int, ...]:
        return self._cards

    def encode(self, arch: Genotype) -> list[int]:
        g = self.canonical(arch)
        return self.encode_cell(g.normal) + self.encode_cell(g.reduce)

    def decode(self, vector: Sequence[int]) -> Genotype:
        v = [int(x) for x in vector]
        if len(v) != len(self._cards) or any(not 0 <= x < c for x, c in zip(v, self._cards)):
            raise ValueError(f"darts space: vector {v} outside the cardinalities {self._cards}")
        n = len(self._cards) // 2
        return Genotype(self.decode_cell(v[:n]), self.cell.concat, self.decode_cell(v[n:]), self.cell.concat)

    # One cell's categorical view (the hierarchical space reuses it for its five cells).
    @property
    def cell_cardinalities(self) -> tuple[int, ...]:
        return self._cards[: len(self._cards) // 2]

    def encode_cell(self, cell: Sequence[tuple[str, int]]) -> list[int]:
        """Per node: the index of its (sorted) input pair, then the ops of the lower and higher input."""
        out: list[int] = []
        for i in range(self.steps):
            (o1, j1), (o2, j2) = sorted(cell[2 * i : 2 * i + 2], key=lambda e: (e[1], e[0]))
            out += [self._pairs[i].index((j1, j2)), self.ops.index(o1), self.ops.index(o2)]
        return out

    def decode_cell(self, v: Sequence[int]) -> list[tuple[str, int]]:
        edges: list[tuple[str, int]] = []
        for i in range(self.steps):
            p, a, b = (int(x) for x in v[3 * i : 3 * i + 3])
            j1, j2 = self._pairs[i][p]
            edges += [(self.ops[a], j1), (self.ops[b], j2)]
        return edges

    def sample(self, rng: random.Random) -> Genotype:
        return self.decode([rng.randrange(c) for c in self._cards])

    def neighbours(self, arch: Genotype) -> list[Genotype]:
        """One edge changes its op, or one edge moves to another input that its sibling edge
        does not read (the usual DARTS-space mutation, e.g. NASLib's)."""
        g = self.canonical(arch)
        out: list[Genotype] = []
        seen = {g}

        def add(normal, reduce) -> None:
            b = self.canonical(Genotype(normal, self.cell.concat, reduce, self.cell.concat))
            if b not in seen:
                seen.add(b)
                out.append(b)

        for c in range(2):
            cells = [list(g.normal), list(g.reduce)]
            cell = cells[c]
            for k, (op, j) in enumerate(cell):
                i = k // 2
                sibling = cell[k ^ 1][1]
                for o in self.ops:
                    if o != op:
                        new = cell[:k] + [(o, j)] + cell[k + 1 :]
                        add(*(new, cells[1]) if c == 0 else (cells[0], new))
                for jj in range(i + 2):
                    if jj not in (j, sibling):
                        new = cell[:k] + [(op, jj)] + cell[k + 1 :]
                        add(*(new, cells[1]) if c == 0 else (cells[0], new))
        return out

    # -------------------------------------------------------------- graph
    def graph(self, arch: Genotype) -> tuple[_np.ndarray, _np.ndarray]:
        g = self.canonical(arch)
        E = 2 * self.steps
        per = E + 3  # input0, input1, E op nodes, output
        types = ["input0", "input1", *self.ops, "output"]
        A = _np.zeros((2 * per, 2 * per), _np.float32)
        X = _np.zeros((2 * per, len(types) + 1), _np.float32)
        for c, cell in enumerate((g.normal, g.reduce)):
            o = c * per
            X[o + 0, 0] = X[o + 1, 1] = 1.0
            X[o + per - 1, len(types) - 1] = 1.0
            for k, (op, j) in enumerate(cell):
                node = o + 2 + k
                X[node, 2 + self.ops.index(op)] = 1.0
                if j < 2:
                    A[o + j, node] = 1.0
                else:
                    for src in (2 * (j - 2), 2 * (j - 2) + 1):
                        A[o + 2 + src, node] = 1.0
                A[node, o + per - 1] = 1.0
            if c == 1:
                X[o : o + per, -1] = 1.0
        return A, X

    def distance(self, a: Genotype, b: Genotype) -> int:
        from dnas.shrink.distance import darts_distance

        return darts_distance(a, b)  # matches each node's edges, so edge order needs no canonical form

    # -------------------------------------------------------------- networks and cost
    input_shape = (3, 32, 32)

    def build(self, arch: Genotype, *, num_classes: int = 10, in_channels: int | None = None, C: int = 16,
              layers: int = 8, net: str = "cifar", auxiliary: bool = False, drop_path_prob: float = 0.0, **_: Any):
        from dnas.models import build_network

        return build_network(arch, net=net, C=C, layers=layers, num_classes=num_classes,
                             in_channels=in_channels or self.input_shape[0], auxiliary=auxiliary,
                             drop_path_prob=drop_path_prob)

    tables = ("nb301_cifar10",)
    proxy_net = {"C": 8, "layers": 5}

    def latency_adapter(self, options: dict | None = None, **shape: Any):
        from dnas.errors import ConfigError
        from dnas.predictors.latency import DartsLatencySpace

        try:
            if options is not None:
                return DartsLatencySpace.from_options(**options, primitives=self.cell.primitives, steps=self.steps)
            return DartsLatencySpace(**shape)
        except TypeError as e:
            raise ConfigError(f"space darts: bad latency option ({e})") from None

    def supernet_config(self) -> dict:
        return {"space": "darts", "primitives": list(self.cell.primitives), "steps": self.steps, "multiplier": self.steps}

    def describe(self, arch: Genotype) -> list[str]:
        g = self.canonical(arch)
        return [f"normal: {', '.join(f'{o}<-{i}' for o, i in g.normal)}  concat {list(g.normal_concat)}",
                f"reduce: {', '.join(f'{o}<-{i}' for o, i in g.reduce)}  concat {list(g.reduce_concat)}"]

    def fix_arch(self, supernet: Any, arch: Genotype) -> None:
        g = self.canonical(self.parse(arch))
        for alpha, cell in ((supernet.alpha_normal, g.normal), (supernet.alpha_reduce, g.reduce)):
            alpha.data.copy_(pinned_cell_logits(cell, supernet.space.primitives, supernet.space.steps).to(alpha))
        for beta in (getattr(supernet, "beta_normal", None), getattr(supernet, "beta_reduce", None)):
            if beta is not None:
                raise ConfigError("relaxation: weight sharing pins single paths; use a relaxation without edge "
                                  "weights (darts, gdas, msg)")

    def supernet(self, cfg: Any, num_classes: int, in_channels: int):
        from dnas.relax import relaxation_from_config

        self.check_relaxation(cfg.relaxation)
        space = DartsSpace(tuple(cfg.primitives), cfg.steps, cfg.multiplier)
        net = Supernet(space, relaxation_from_config(cfg), C=cfg.init_channels, layers=cfg.layers,
                       num_classes=num_classes, in_channels=in_channels, stem_multiplier=cfg.stem_multiplier)
        net.search_space = DartsCellSpace(tuple(cfg.primitives), cfg.steps)  # SPOS / DARTS-PT place archs in it
        return net

    topology_keep = 2

    def supernet_weights(self, arch: Genotype, model: Any) -> dict:
        """Per cell type an (edges, ops) matrix: 1 at (edge of each kept input, its op)."""
        prims = list(model.space.primitives)
        out = {}
        for cell, alpha in ((arch.normal, model.alpha_normal), (arch.reduce, model.alpha_reduce)):
            w = torch.zeros(alpha.shape, dtype=alpha.dtype, device=alpha.device)
            for i, s in enumerate(node_slices(self.steps)):
                for op, j in cell[2 * i : 2 * i + 2]:
                    w[s.start + j, prims.index(op)] = 1.0
            out[id(alpha)] = w
        return out

    def arch_from_weights(self, model: Any, weights: dict) -> Genotype:
        """The DARTS rule on the given weights (top-2 inputs by strongest real op, then that op)."""
        g = model.space.derive(weights[id(model.alpha_normal)].detach(), weights[id(model.alpha_reduce)].detach())
        return self.canonical(g)
