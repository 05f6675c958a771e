"""The NAS-Bench-201 cell space: architectures, their string form and the evaluation network.

A NAS-Bench-201 cell is a DAG of 4 nodes; every node ``j`` sums one op applied to each earlier
node ``i < j``, so the cell has 6 edges and each edge carries one of 5 ops (5**6 = 15625
architectures). The edges are listed in the benchmark's standard order (:data:`NB201_EDGES`)::

    |op~0|+|op~0|op~1|+|op~0|op~1|op~2|
      1->   2<-0  2<-1   3<-0  3<-1  3<-2

The evaluation network follows the benchmark's reference implementation (AutoDL-Projects,
``TinyNetwork`` / ``InferCell`` / ``ResNetBasicblock``) so that parameter counts equal the
benchmark's records exactly: a 3x3 conv + BN stem with ``C`` channels, three stages of ``N``
cells at ``C``, ``2C``, ``4C`` channels joined by ResNet basic blocks (stride 2, avg-pool + 1x1
conv shortcut), then BN + ReLU, global average pooling and a linear classifier.

For one-shot search, :data:`NB201_EDGES`, :data:`NB201_OPS` and :func:`search_cell` describe the
cell as plain data (nodes, edges, candidates, an op factory) so that a supernet can put a mixed
op on every edge, and :meth:`NB201Arch.from_weights` turns per-edge op weights back into an
architecture.
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import random as _random
import re
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator, Sequence

import torch
import torch.nn as nn

from dnas.errors import GenotypeError
from dnas.ops import OPS, Identity, ReLUConvBN, Zero

#: Candidate ops in the benchmark's order (the order used by its one-hot encodings).
NB201_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: Number of nodes in a cell (node 0 is the cell input, node 3 its output).
NB201_NODES = 4
#: ``(from_node, to_node)`` for each of the 6 edges, in the arch-string order.
NB201_EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))

FORMAT = "dnas.genotype"
VERSION = 1
SPACE = "nb201"


# ---------------------------------------------------------------------------- ops
def _nb201_op(name: str, C: int, stride: int = 1, affine: bool = True) -> nn.Module:
    """Build one NB201 candidate mapping ``C`` to ``C`` channels (cells never change width)."""
    if name == "none":
        return Zero(stride)
    if name == "skip_connect":
        if stride != 1:
            raise GenotypeError("nb201: skip_connect with stride > 1 does not occur in NB201 cells")
        return Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(C, C, 1, stride, 0, affine)
    if name == "nor_conv_3x3":
        return ReLUConvBN(C, C, 3, stride, 1, affine)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    raise GenotypeError(f"nb201: unknown op {name!r}; known ops: {', '.join(NB201_OPS)}")


#: ``name -> factory(C, stride, affine)``, the same signature as :data:`dnas.ops.OPS`.
NB201_OP_FACTORIES: dict[str, Callable[[int, int, bool], nn.Module]] = {
    name: (lambda C, stride, affine, _n=name: _nb201_op(_n, C, stride, affine)) for name in NB201_OPS
}

# The two NB201 convs are also registered in the global op registry, so a supernet that builds
# edges with ``dnas.ops.make_op`` can mix all five NB201 candidates (the other three exist there).
for _name in ("nor_conv_1x1", "nor_conv_3x3"):
    if _name not in OPS:
        OPS.register(_name, NB201_OP_FACTORIES[_name])


# ---------------------------------------------------------------------------- architecture
_NODE_RE = re.compile(r"^\|(.*)\|$")


@dataclass(frozen=True)
class NB201Arch:
    """One NB201 architecture: the op on each of the 6 edges, in :data:`NB201_EDGES` order.

    Immutable and hashable, so it can key dicts and sets (tabular lookups, search histories).
    """

    #: Genotype-reader protocol (:meth:`dnas.spaces.base.SearchSpace.read_genotype`): the space and the network
    #: that :func:`dnas.models.build_network` builds for this genotype.
    space: ClassVar[str] = SPACE
    network: ClassVar[str] = "nb201"

    ops: tuple[str, ...]
    #: Free-form provenance (seed, method, run); ignored by equality and the hash.
    meta: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        ops = tuple(self.ops)
        if len(ops) != len(NB201_EDGES):
            raise GenotypeError(f"nb201 arch: needs {len(NB201_EDGES)} edge ops, got {len(ops)}")
        for k, op in enumerate(ops):
            if op not in NB201_OPS:
                src, dst = NB201_EDGES[k]
                raise GenotypeError(
                    f"nb201 arch: edge {k} ({src}->{dst}) has unknown op {op!r}; known ops: {', '.join(NB201_OPS)}"
                )
        object.__setattr__(self, "ops", ops)

    # ------------------------------------------------------------------ string form
    @classmethod
    def parse(cls, text: str) -> "NB201Arch":
        """Parse the standard string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` strictly."""
        if not isinstance(text, str):
            raise GenotypeError(f"nb201 arch: expected a string, got {type(text).__name__}")
        s = text.strip()
        nodes = s.split("+")
        if len(nodes) != NB201_NODES - 1:
            raise GenotypeError(
                f"nb201 arch {text!r}: expected {NB201_NODES - 1} nodes separated by '+', got {len(nodes)}"
            )
        ops: list[str] = []
        for j, node in enumerate(nodes, start=1):
            m = _NODE_RE.match(node)
            if not m:
                raise GenotypeError(f"nb201 arch {text!r}: node {j} must look like |op~0|...|, got {node!r}")
            items = m.group(1).split("|")
            if len(items) != j:
                raise GenotypeError(f"nb201 arch {text!r}: node {j} needs {j} inputs, got {len(items)}")
            for i, item in enumerate(items):
                op, sep, idx = item.partition("~")
                if not sep:
                    raise GenotypeError(f"nb201 arch {text!r}: node {j} entry {item!r} must be op~input")
                if op not in NB201_OPS:
                    raise GenotypeError(
                        f"nb201 arch {text!r}: node {j} has unknown op {op!r}; known ops: {', '.join(NB201_OPS)}"
                    )
                if idx != str(i):
                    raise GenotypeError(
                        f"nb201 arch {text!r}: node {j} entry {i} must read from input {i}, got {idx!r}"
                    )
                ops.append(op)
        return cls(tuple(ops))

    def __str__(self) -> str:
        parts, k = [], 0
        for j in range(1, NB201_NODES):
            parts.append("|" + "|".join(f"{self.ops[k + i]}~{i}" for i in range(j)) + "|")
            k += j
        return "+".join(parts)

    def __repr__(self) -> str:
        return f"NB201Arch({str(self)!r})"

    # ------------------------------------------------------------------ JSON
    def to_dict(self, with_meta: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {"format": FORMAT, "version": VERSION, "space": SPACE, "arch": str(self)}
        if with_meta and self.meta:
            d["meta"] = dict(self.meta)
        return d

    def to_json(self, indent: int | None = 2) -> str:
        import json

        return json.dumps(self.to_dict(), indent=indent)

    def save(self, path: "str | Any") -> Any:
        """Write the genotype JSON file atomically."""
        from dnas.io import write_text

        return write_text(path, self.to_json() + "\n")

    def with_meta(self, **meta: Any) -> "NB201Arch":
        return NB201Arch(self.ops, {**self.meta, **meta})

    def validate(self) -> "NB201Arch":
        return self

    @property
    def is_hierarchical(self) -> bool:
        return False

    @classmethod
    def from_dict(cls, d: Any, ops: Any = None) -> "NB201Arch":
        if not isinstance(d, dict):
            raise GenotypeError(f"nb201 genotype: expected a JSON object, got {type(d).__name__}")
        if d.get("format", FORMAT) != FORMAT:
            raise GenotypeError(f"nb201 genotype.format: expected {FORMAT!r}, got {d.get('format')!r}")
        if d.get("space", SPACE) != SPACE:
            raise GenotypeError(f"nb201 genotype.space: expected {SPACE!r}, got {d.get('space')!r}")
        version = d.get("version", VERSION)
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= VERSION:
            raise GenotypeError(f"nb201 genotype.version: expected 1..{VERSION}, got {version!r}")
        unknown = set(d) - {"format", "version", "space", "arch", "meta"}
        if unknown:
            raise GenotypeError(f"nb201 genotype: unknown field(s) {', '.join(sorted(unknown))}")
        if "arch" not in d:
            raise GenotypeError("nb201 genotype.arch: missing required field (the |op~0|+... string)")
        a = cls.parse(d["arch"])
        meta = d.get("meta")
        return cls(a.ops, dict(meta)) if isinstance(meta, dict) else a

    def hash(self) -> str:
        """A stable 16-hex-digit hash of the architecture string."""
        return hashlib.sha256(str(self).encode()).hexdigest()[:16]

    # ------------------------------------------------------------------ structure
    def edges(self) -> Iterator[tuple[int, int, str]]:
        """Yield ``(from_node, to_node, op)`` for every edge."""
        for (src, dst), op in zip(NB201_EDGES, self.ops):
            yield src, dst, op

    def index(self) -> int:
        """Position in :func:`all_archs` (base-5 number of op indices, first edge most significant)."""
        n = 0
        for op in self.ops:
            n = n * len(NB201_OPS) + NB201_OPS.index(op)
        return n

    def neighbours(self) -> list["NB201Arch"]:
        """All architectures that differ in exactly one edge's op (6 x 4 = 24)."""
        out = []
        for k, cur in enumerate(self.ops):
            for op in NB201_OPS:
                if op != cur:
                    out.append(NB201Arch(self.ops[:k] + (op,) + self.ops[k + 1 :]))
        return out

    @classmethod
    def from_weights(cls, weights: "torch.Tensor | Sequence[Sequence[float]]") -> "NB201Arch":
        """Derive the arch from per-edge op weights of shape ``(6, 5)`` (argmax per edge), as
        one-shot methods on NB201 do; columns follow :data:`NB201_OPS`."""
        w = torch.as_tensor(weights, dtype=torch.float64)
        if tuple(w.shape) != (len(NB201_EDGES), len(NB201_OPS)):
            raise GenotypeError(
                f"nb201 weights: expected shape ({len(NB201_EDGES)}, {len(NB201_OPS)}), got {tuple(w.shape)}"
            )
        return cls(tuple(NB201_OPS[int(i)] for i in w.argmax(dim=1)))

    @classmethod
    def random(cls, seed: "int | _random.Random | None" = None) -> "NB201Arch":
        """A uniformly random architecture; ``seed`` is an int or a ``random.Random``."""
        rng = seed if isinstance(seed, _random.Random) else _random.Random(seed)
        return cls(tuple(rng.choice(NB201_OPS) for _ in NB201_EDGES))


def parse_arch(spec: "str | dict | NB201Arch") -> NB201Arch:
    """Accept an arch string, a genotype dict or an :class:`NB201Arch`."""
    if isinstance(spec, NB201Arch):
        return spec
    if isinstance(spec, dict):
        return NB201Arch.from_dict(spec)
    return NB201Arch.parse(spec)


def all_archs() -> list[NB201Arch]:
    """Every architecture of the space (15625), in :meth:`NB201Arch.index` order."""
    return [NB201Arch(ops) for ops in itertools.product(NB201_OPS, repeat=len(NB201_EDGES))]


def sample_archs(n: int, seed: int) -> list[NB201Arch]:
    """``n`` distinct architectures drawn uniformly without replacement."""
    idx = _random.Random(seed).sample(range(len(NB201_OPS) ** len(NB201_EDGES)), n)
    every = all_archs()
    return [every[i] for i in idx]


# ---------------------------------------------------------------------------- search cell
@dataclass(frozen=True)
class NB201SearchCell:
    """The NB201 cell as data for a one-shot supernet.

    ``edges[k] = (from_node, to_node)``; node 0 is the cell input and node ``nodes - 1`` its
    output; node ``j`` is the sum over its incoming edges. A supernet puts one mixed op over
    ``candidates`` on each edge (build a candidate with ``op_factory(name, C, stride, affine)``;
    NB201 cells always use stride 1 and keep ``C`` channels) and derives the final arch with
    :meth:`NB201Arch.from_weights` on its ``(len(edges), len(candidates))`` weights.
    """

    nodes: int
    edges: tuple[tuple[int, int], ...]
    candidates: tuple[str, ...]
    op_factory: Callable[..., nn.Module]

    def incoming(self, node: int) -> list[int]:
        """Indices of the edges that feed ``node``."""
        return [k for k, (_, dst) in enumerate(self.edges) if dst == node]


def search_cell() -> NB201SearchCell:
    """The NB201 search cell description (see :class:`NB201SearchCell`)."""
    return NB201SearchCell(NB201_NODES, NB201_EDGES, NB201_OPS, _nb201_op)


# ---------------------------------------------------------------------------- network
class NB201Cell(nn.Module):
    """A fixed NB201 cell (the reference ``InferCell``): node j = sum of op(node i), i < j."""

    def __init__(self, arch: NB201Arch, C: int):
        super().__init__()
        self.edges = list(NB201_EDGES)
        self.ops = nn.ModuleList(_nb201_op(op, C) for op in arch.ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for j in range(1, NB201_NODES):
            nodes.append(sum(self.ops[k](nodes[src]) for k, (src, dst) in enumerate(self.edges) if dst == j))
        return nodes[-1]


class ResNetBasicBlock(nn.Module):
    """The reduction block between NB201 stages: two ReLU-conv-BN 3x3 (the first strided) plus
    a shortcut of 2x2 average pooling and a 1x1 conv, as in the benchmark's reference."""

    def __init__(self, C_in: int, C_out: int, stride: int = 2):
        super().__init__()
        self.conv_a = ReLUConvBN(C_in, C_out, 3, stride, 1, True)
        self.conv_b = ReLUConvBN(C_out, C_out, 3, 1, 1, True)
        if stride == 2:
            self.downsample: nn.Module | None = nn.Sequential(
                nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
                nn.Conv2d(C_in, C_out, kernel_size=1, stride=1, padding=0, bias=False),
            )
        elif C_in != C_out:
            self.downsample = ReLUConvBN(C_in, C_out, 1, 1, 0, True)
        else:
            self.downsample = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_b(self.conv_a(x))
        res = self.downsample(x) if self.downsample is not None else x
        return res + out


def nb201_skeleton(C: int, N: int, in_channels: int, make_cell) -> tuple[nn.Sequential, list[nn.Module], int]:
    """The NB201 macro skeleton shared by the evaluation network and one-shot supernets: a 3x3
    conv stem, then 3 stages of ``N`` cells (``make_cell(width)``) at widths C, 2C, 4C with a
    ResNet basic block (stride 2) before stages 2 and 3. Returns the stem, the body layers and
    the final width."""
    stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
    layers: list[nn.Module] = []
    C_prev = C
    for stage, width in enumerate((C, 2 * C, 4 * C)):
        if stage > 0:
            layers.append(ResNetBasicBlock(C_prev, width, 2))
            C_prev = width
        layers.extend(make_cell(width) for _ in range(N))
    return stem, layers, C_prev


class NB201Network(nn.Module):
    """The NB201 evaluation network (the reference ``TinyNetwork``)."""

    def __init__(self, arch: NB201Arch, C: int = 16, N: int = 5, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.arch = arch
        self.stem, layers, C_prev = nb201_skeleton(C, N, in_channels, lambda width: NB201Cell(arch, width))
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(C_prev), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.lastact(self.cells(self.stem(x)))
        return self.classifier(self.global_pooling(out).flatten(1))


def build_nb201_network(
    arch: "NB201Arch | str | dict", C: int = 16, N: int = 5, num_classes: int = 10, in_channels: int = 3
) -> NB201Network:
    """Build the evaluation network of ``arch`` (defaults: the benchmark's C=16, N=5)."""
    return NB201Network(parse_arch(arch), C=C, N=N, num_classes=num_classes, in_channels=in_channels)


def count_params(model: nn.Module) -> int:
    """Trainable parameters (BN running statistics excluded), as the benchmark counts them."""
    return sum(p.numel() for p in model.parameters())


@functools.lru_cache(maxsize=None)
def _skeleton_params(C: int, N: int, num_classes: int, in_channels: int) -> int:
    # every cell op "none" has no parameters, so this is stem + reduction blocks + head
    return count_params(NB201Network(NB201Arch(("none",) * 6), C, N, num_classes, in_channels))


@functools.lru_cache(maxsize=None)
def _op_params(op: str, C: int) -> int:
    return count_params(_nb201_op(op, C))


def nb201_param_count(arch: "NB201Arch | str", C: int = 16, N: int = 5, num_classes: int = 10, in_channels: int = 3) -> int:
    """The evaluation network's parameter count without building it (~1000x faster).

    Cells are the only part that depends on the arch and each holds its ops' own parameters,
    so the count is the all-``none`` network plus ``N`` cells per stage of each op's
    parameters at that stage's width (both measured on real modules, then cached).
    Equal to ``count_params(build_nb201_network(...))``; tests check both against the records.
    """
    a = parse_arch(arch)
    cells = sum(_op_params(op, w) for w in (C, 2 * C, 4 * C) for op in a.ops)
    return _skeleton_params(C, N, num_classes, in_channels) + N * cells


def nb201_params_m(arch: "NB201Arch | str", num_classes: int = 10, C: int = 16, N: int = 5) -> float:
    """Parameters in millions, rounded like the benchmark records (6 decimals)."""
    return round(nb201_param_count(arch, C, N, num_classes) / 1e6, 6)


class NB201RegisteredNetwork(NB201Network):
    """The NB201 network under the :data:`dnas.models.NETWORKS` contract (``net="nb201"``):
    constructor ``(genotype, C, layers, num_classes, in_channels, auxiliary, drop_path_prob)``
    with ``layers = 3 * N`` cells, a ``drop_path_prob`` attribute (NB201 trains without drop
    path, so it is unused) and ``(logits, None)`` in train mode, plain logits in eval mode."""

    def __init__(
        self,
        genotype: "NB201Arch | str | dict",
        C: int = 16,
        layers: int = 15,
        num_classes: int = 10,
        in_channels: int = 3,
        auxiliary: bool = False,
        drop_path_prob: float = 0.0,
    ):
        from dnas.errors import ConfigError

        if layers < 3 or layers % 3:
            raise ConfigError(f"layers: NB201 has 3 stages of N cells, so layers must be a multiple of 3, got {layers}")
        # The NB201 network has no auxiliary head (the benchmark trains without one), so an
        # auxiliary request (the DARTS trainer's default) trains the plain network.
        super().__init__(parse_arch(genotype), C=C, N=layers // 3, num_classes=num_classes, in_channels=in_channels)
        self.drop_path_prob = drop_path_prob

    def forward(self, x: torch.Tensor):  # type: ignore[override]
        logits = super().forward(x)
        return (logits, None) if self.training else logits


def _register_network() -> None:
    try:
        from dnas.models import NETWORKS
    except ImportError:  # pragma: no cover - models package missing
        return
    if "nb201" not in NETWORKS:
        NETWORKS.register("nb201", NB201RegisteredNetwork)


_register_network()


# ---------------------------------------------------------------------------- graph encoding
import numpy as np  # noqa: E402

#: Node types of the DAG encoding (columns of the node-feature matrix).
NODE_TYPES: tuple[str, ...] = ("input", *NB201_OPS, "output")
DAG_NODES = len(NB201_EDGES) + 2


def onehot(arch: "NB201Arch | str") -> np.ndarray:
    """The flattened 6x5 edge-op one-hot matrix (float32, length 30)."""
    a = parse_arch(arch)
    m = np.zeros((len(NB201_EDGES), len(NB201_OPS)), np.float32)
    for k, op in enumerate(a.ops):
        m[k, NB201_OPS.index(op)] = 1.0
    return m.reshape(-1)


def _dag_adjacency() -> np.ndarray:
    """The op-node adjacency is the same for every NB201 arch; only node features differ."""
    A = np.zeros((DAG_NODES, DAG_NODES), np.float32)
    out = DAG_NODES - 1
    for k, (src, dst) in enumerate(NB201_EDGES):
        if src == 0:
            A[0, k + 1] = 1.0
        for k2, (src2, _) in enumerate(NB201_EDGES):
            if src2 == dst:
                A[k + 1, k2 + 1] = 1.0
        if dst == 3:
            A[k + 1, out] = 1.0
    return A


_ADJ = _dag_adjacency()


def nb201_dag(arch: "NB201Arch | str") -> tuple[np.ndarray, np.ndarray]:
    """``(A, X)``: the 8x8 directed adjacency (``A[u, v] = 1`` for ``u -> v``) and the 8x7
    node-type one-hot matrix of the op-node DAG (see module docstring)."""
    a = parse_arch(arch)
    X = np.zeros((DAG_NODES, len(NODE_TYPES)), np.float32)
    X[0, 0] = 1.0
    X[-1, -1] = 1.0
    for k, op in enumerate(a.ops):
        X[k + 1, 1 + NB201_OPS.index(op)] = 1.0
    return _ADJ.copy(), X


# ---------------------------------------------------------------------------- one-shot supernet
# The NAS-Bench-201 one-shot supernet under any cell relaxation (the NB201 one-shot benchmark:
# DARTS, PC-DARTS, GDAS, ... searching the NB201 cell).
#
# As in the benchmark's reference search code (AutoDL-Projects ``TinyNetworkDarts`` /
# ``TinyNetworkGDAS``): the macro skeleton of the evaluation network (3x3 conv stem, 3 stages of
# ``N`` cells at C, 2C, 4C joined by ResNet basic blocks, BN + ReLU, global pooling, linear), every
# cell a mixed op on each of the 6 edges, and **one** set of architecture parameters ``alpha``
# (6 edges x 5 ops, 1e-3·N(0,1)) shared by all cells. Derivation is the reference's: the
# strongest op per edge, ``none`` included (an NB201 cell may cut an edge).
#
# Edges are grouped by their destination node (1, 2 and 3 incoming edges), which is what
# edge-normalising relaxations (PC-DARTS's beta) normalise over.
#
# Where this differs from the reference: the mixed op comes from the relaxation's
# ``mixed_op`` (shared with the DARTS supernet), which follows the DARTS search cell in putting a
# non-affine BatchNorm after pooling candidates; the NB201 reference search cell has none.
import torch.nn.functional as F  # noqa: E402

from dnas.archsplit import ArchWeightSplit  # noqa: E402
from dnas.relax.base import Relaxation, edge_output  # noqa: E402

#: Incoming edges per node (nodes 1, 2, 3), in edge order: the relaxations' node grouping.
NB201_NODE_INPUTS: tuple[int, ...] = tuple(sum(1 for _, d in NB201_EDGES if d == j) for j in range(1, NB201_NODES))


class NB201MixedCell(nn.Module):
    """One NB201 cell with a relaxation's mixed op on every edge."""

    def __init__(self, relax: Relaxation, C: int, primitives=NB201_OPS) -> None:
        super().__init__()
        self.edges = nn.ModuleList(relax.mixed_op(C, 1, list(primitives)) for _ in NB201_EDGES)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, edge_w: torch.Tensor | None) -> torch.Tensor:
        nodes = [x]
        for j in range(1, NB201_NODES):
            s = None
            for k, (src, dst) in enumerate(NB201_EDGES):
                if dst != j:
                    continue
                y = edge_output(self.edges[k], nodes[src], weights[k], None if edge_w is None else edge_w[k])
                s = y if s is None else s + y
            nodes.append(s)
        return nodes[-1]


class NB201Supernet(ArchWeightSplit, nn.Module):
    """The NB201 search network (see the module docstring); ``genotype()`` is an :class:`NB201Arch`."""

    def __init__(self, relax: Relaxation, *, C: int = 16, N: int = 5, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.relax = relax
        self.primitives = list(NB201_OPS)  # column names of alpha (selections read them)
        self.steps = NB201_NODE_INPUTS  # what relaxations group edges by
        self.stem, layers, C_prev = nb201_skeleton(C, N, in_channels, lambda width: NB201MixedCell(relax, width))
        self.layers = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(C_prev), nn.ReLU())
        self.classifier = nn.Linear(C_prev, num_classes)
        self.alpha = nn.Parameter(1e-3 * torch.randn(len(NB201_EDGES), len(NB201_OPS)))
        if relax.uses_edge_params:
            self.beta = nn.Parameter(1e-3 * torch.randn(*relax.edge_param_shape(self.steps)))
        else:
            self.beta = None

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha] if self.beta is None else [self.alpha, self.beta]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.relax.forward_op_weights(self.alpha, training=self.training)
        e = self.relax.forward_edge_weights(self.beta, self.steps, training=self.training)
        out = self.stem(x)
        for layer in self.layers:
            out = layer(out, w, e) if isinstance(layer, NB201MixedCell) else layer(out)
        out = self.lastact(out)
        return self.classifier(F.adaptive_avg_pool2d(out, 1).flatten(1))

    def derive_weights(self) -> torch.Tensor:
        with torch.no_grad():
            return self.relax.derive_weights(self.alpha, self.beta, self.steps)

    def genotype(self, **meta: Any) -> NB201Arch:
        return NB201Arch.from_weights(self.derive_weights()).with_meta(**meta)

    def arch_summary(self) -> dict:
        with torch.no_grad():
            d = {"cell": F.softmax(self.alpha, -1).tolist()}
            if self.beta is not None:
                ew = self.relax.edge_weights(self.beta, self.steps)
                if ew is not None:
                    d["edge_cell"] = ew.tolist()
        return d


# ---------------------------------------------------------------------------- the SearchSpace
import numpy as _np  # noqa: E402

from dnas.spaces.base import PIN, SearchSpace, register_space  # noqa: E402


@register_space("nb201")
class NB201Space(SearchSpace):
    """The NAS-Bench-201 cell space (5**6 = 15625 cells): one op per edge, every vector valid.

    Graph view: the op-node DAG of NB201 predictor papers (:func:`dnas.predictors.encodings.nb201_dag`).
    Supernet: :class:`NB201Supernet` under the cell relaxations
    (``topo`` does not apply: NB201 keeps every edge). ``cost`` uses the exact parameter formula
    of the benchmark's network for ``params``.
    """

    input_shape = (3, 32, 32)

    @property
    def relaxations(self) -> tuple[str, ...]:  # type: ignore[override]
        """Every registered relaxation except those that choose which inputs a node keeps
        (``selects_inputs``: TopoNAS), since an NB201 cell keeps every edge."""
        from dnas.relax import RELAXATIONS

        return tuple(n for n in RELAXATIONS.names() if not getattr(RELAXATIONS.get(n), "selects_inputs", False))

    def parse(self, obj: Any) -> NB201Arch:
        if isinstance(obj, str) and not obj.strip().startswith("|"):
            from pathlib import Path

            p = Path(obj)
            if p.is_dir():
                p = p / "genotype.json"
            if p.is_file():
                import json

                try:
                    return NB201Arch.from_dict(json.loads(p.read_text()))
                except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
                    raise GenotypeError(f"{p}: not a readable nb201 genotype file ({e})") from None
        if isinstance(obj, dict) and "format" not in obj and "arch" in obj:
            return NB201Arch.parse(obj["arch"])  # a records entry
        return parse_arch(obj)

    def to_dict(self, arch: NB201Arch) -> dict:
        return arch.to_dict(with_meta=False)

    def to_str(self, arch: NB201Arch) -> str:
        return str(arch)

    def hash(self, arch: NB201Arch) -> str:
        return arch.hash()

    def op_names(self, arch: NB201Arch) -> list[str]:
        return list(arch.ops)

    @property
    def cardinalities(self) -> tuple[int, ...]:
        return (len(NB201_OPS),) * len(NB201_EDGES)

    def encode(self, arch: NB201Arch) -> list[int]:
        return [NB201_OPS.index(o) for o in arch.ops]

    def decode(self, vector) -> NB201Arch:
        v = [int(x) for x in vector]
        if len(v) != len(NB201_EDGES) or any(not 0 <= x < len(NB201_OPS) for x in v):
            raise ValueError(f"nb201 space: vector {v} outside the cardinalities")
        return NB201Arch(tuple(NB201_OPS[x] for x in v))

    def sample(self, rng) -> NB201Arch:
        return NB201Arch.random(rng)

    def neighbours(self, arch: NB201Arch) -> list[NB201Arch]:
        return arch.neighbours()

    def graph(self, arch: NB201Arch) -> tuple[_np.ndarray, _np.ndarray]:
        return nb201_dag(arch)

    def build(self, arch: NB201Arch, *, num_classes: int = 10, in_channels: int | None = None, C: int = 16,
              N: int = 5, **_: Any) -> nn.Module:
        return NB201Network(parse_arch(arch), C=C, N=N, num_classes=num_classes, in_channels=in_channels or 3)

    def cost(self, arch: NB201Arch, metric: str = "params", *, num_classes: int = 10, image_size: int | None = None,
             **net_opts: Any) -> float:
        if metric == "params":
            return nb201_param_count(arch, C=net_opts.get("C", 16), N=net_opts.get("N", 5), num_classes=num_classes,
                                     in_channels=net_opts.get("in_channels", 3)) / 1e6
        return super().cost(arch, metric, num_classes=num_classes, image_size=image_size, **net_opts)

    tables = ("nb201_cifar10",)
    proxy_net = {"C": 8, "N": 1}

    def supernet_config(self) -> dict:
        return {"space": "nb201", "layers": 3}  # N = 1 cell per stage: the proxy size

    def describe(self, arch: NB201Arch) -> list[str]:
        return [f"NB201 {arch}"]

    def fix_arch(self, supernet: Any, arch: NB201Arch) -> None:
        a = self.parse(arch)
        logits = torch.zeros(len(NB201_EDGES), len(NB201_OPS))
        for k, op in enumerate(a.ops):
            logits[k, NB201_OPS.index(op)] = PIN
        supernet.alpha.data.copy_(logits.to(supernet.alpha))
        if supernet.beta is not None:
            from dnas.errors import ConfigError

            raise ConfigError("relaxation: weight sharing pins single paths; use darts, gdas or msg (no edge weights)")

    def supernet(self, cfg: Any, num_classes: int, in_channels: int):
        from dnas.relax import relaxation_from_config

        self.check_relaxation(cfg.relaxation)
        N = max(1, cfg.layers // 3)
        net = NB201Supernet(relaxation_from_config(cfg), C=cfg.init_channels, N=N, num_classes=num_classes,
                            in_channels=in_channels)
        net.search_space = self  # SPOS / DARTS-PT place architectures in it
        return net

    def supernet_weights(self, arch: NB201Arch, model: Any) -> dict:
        """One-hot op per edge of the shared cell (a ``none`` row computes nothing)."""
        w = torch.zeros(model.alpha.shape, dtype=model.alpha.dtype, device=model.alpha.device)
        for k, op in enumerate(parse_arch(arch).ops):
            w[k, NB201_OPS.index(op)] = 1.0
        return {id(model.alpha): w}

    def arch_from_weights(self, model: Any, weights: dict) -> NB201Arch:
        return NB201Arch.from_weights(weights[id(model.alpha)].detach())
