"""The genotype: an architecture as plain, validated, JSON-serialisable data.

Every search method produces a :class:`Genotype` and every consumer (evaluation network,
trainer, exporter, cost model) reads one, so results of one method feed another.

File format (``version`` 1)::

    {"format": "dnas.genotype", "version": 1, "space": "darts",
     "normal": [["sep_conv_3x3", 0], ...], "normal_concat": [2, 3, 4, 5],
     "reduce": [["max_pool_3x3", 0], ...], "reduce_concat": [2, 3, 4, 5],
     "meta": {...}}

Edges come in pairs: edges ``2i`` and ``2i+1`` feed intermediate node ``i``; an edge's input
index is 0 or 1 for the two cell inputs and ``k + 2`` for intermediate node ``k`` (the DARTS
convention). ``meta`` is free-form provenance (method, seed, run) and is excluded from the
hash.

Format ``version`` 2 (hierarchical genotypes, H-DAS) adds two optional fields; a genotype
without them is written as version 1, so every version-1 file and hash stays as it was::

    "cells":  {"normal": [CELL, CELL, CELL], "reduce": [CELL, CELL]}   # stage-specific cells
    "stages": [STAGE, STAGE, STAGE]                                    # stage layouts
    CELL  = {"edges": [["sep_conv_3x3", 0], ...], "concat": [2, 3, 4, 5]}
    STAGE = {"links": [[["skip_connect", 0], ["max_pool_3x3", 1]], ...], "concat": [6, 7]}

``cells`` gives each of the three stages its own normal cell and each of the two reductions
its own reduction cell (``normal``/``reduce`` then hold the first stage's cells, so readers
that only know version 1 still see a valid cell). ``stages`` makes each stage a small DAG of
cells: state 0 and 1 are the stage's two inputs, state ``k + 2`` is the output of cell ``k``;
``links[k]`` lists the (inter-cell op, state) pairs whose sum feeds cell ``k`` as both of its
inputs; the stage output concatenates the states in ``concat``. The number of cells of a stage
is ``len(links)``, so a genotype with ``stages`` fixes the depth of its network.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from dataclasses import replace
from typing import Any, Iterable, Optional, Sequence

from dnas.errors import GenotypeError

FORMAT = "dnas.genotype"
VERSION = 2  #: newest format this module reads and writes
_KEYS_V1 = {"format", "version", "space", "normal", "normal_concat", "reduce", "reduce_concat", "meta"}
_KEYS = _KEYS_V1 | {"cells", "stages"}
#: Number of stages (normal-cell groups) and reductions of the DARTS-style macro layout.
NUM_STAGES, NUM_REDUCTIONS = 3, 2

Edge = tuple[str, int]


@dataclass(frozen=True)
class CellGene:
    """One cell of a hierarchical genotype: edges in pairs per node (as in :class:`Genotype`)
    and the node indices concatenated into the cell output."""

    edges: tuple[Edge, ...]
    concat: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "edges", tuple((str(o), int(i)) for o, i in self.edges))
        object.__setattr__(self, "concat", tuple(int(i) for i in self.concat))

    def to_dict(self) -> dict[str, Any]:
        return {"edges": [[o, i] for o, i in self.edges], "concat": list(self.concat)}


@dataclass(frozen=True)
class StageGene:
    """The layout of one stage: per cell, the kept incoming links ``(op, state)`` (state 0/1
    are the stage inputs, ``k + 2`` is cell ``k``) and the states concatenated at the end."""

    links: tuple[tuple[Edge, ...], ...]
    concat: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "links", tuple(tuple((str(o), int(i)) for o, i in cell) for cell in self.links))
        object.__setattr__(self, "concat", tuple(int(i) for i in self.concat))

    @property
    def num_cells(self) -> int:
        return len(self.links)

    def to_dict(self) -> dict[str, Any]:
        return {"links": [[[o, i] for o, i in cell] for cell in self.links], "concat": list(self.concat)}


def _known_ops() -> list[str]:
    from dnas.ops import OPS

    return OPS.names()


#: Spaces whose genotypes this class reads itself; a file of any other registered space is read
#: by that space (:meth:`dnas.spaces.base.SearchSpace.read_genotype`, imported on use so the
#: genotype module stays free of model code).
OWN_SPACES: tuple[str, ...] = ("darts", "hierarchical")


def _other_space(d: dict) -> "str | None":
    """The registered space that reads ``d`` when it is not a DARTS-style genotype."""
    name = d.get("space", "darts")
    if not isinstance(name, str) or name in OWN_SPACES:
        return None
    from dnas.spaces.base import space_names

    return name if name in space_names() else None


@dataclass(frozen=True)
class Genotype:
    """A DARTS-style cell architecture: a normal cell and a reduction cell."""

    normal: tuple[Edge, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Edge, ...]
    reduce_concat: tuple[int, ...]
    space: str = "darts"
    meta: dict = field(default_factory=dict, compare=False, hash=False)
    #: Hierarchical (version 2) parts; ``None`` for a plain cell genotype.
    stage_normal: Optional[tuple[CellGene, ...]] = None
    stage_reduce: Optional[tuple[CellGene, ...]] = None
    stages: Optional[tuple[StageGene, ...]] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "normal", tuple((str(o), int(i)) for o, i in self.normal))
        object.__setattr__(self, "reduce", tuple((str(o), int(i)) for o, i in self.reduce))
        object.__setattr__(self, "normal_concat", tuple(int(i) for i in self.normal_concat))
        object.__setattr__(self, "reduce_concat", tuple(int(i) for i in self.reduce_concat))
        for name in ("stage_normal", "stage_reduce", "stages"):
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, tuple(v))

    # ------------------------------------------------------------------ hierarchy
    @property
    def is_hierarchical(self) -> bool:
        """True when the genotype has stage-specific cells or stage layouts (format version 2)."""
        return self.stage_normal is not None or self.stages is not None

    @property
    def version(self) -> int:
        return 2 if self.is_hierarchical else 1

    def stage_genotype(self, stage: int) -> "Genotype":
        """The plain (version 1) genotype of one stage: its normal cell and the reduction cell
        that follows it (the last stage keeps the base reduction cell, which no network uses)."""
        if not 0 <= stage < NUM_STAGES:
            raise GenotypeError(f"stage: must be 0..{NUM_STAGES - 1}, got {stage}")
        if self.stage_normal is None:
            return Genotype(self.normal, self.normal_concat, self.reduce, self.reduce_concat, self.space)
        n = self.stage_normal[stage]
        r = self.stage_reduce[stage] if stage < NUM_REDUCTIONS else CellGene(self.reduce, self.reduce_concat)
        return Genotype(n.edges, n.concat, r.edges, r.concat, "darts")

    # ------------------------------------------------------------------ validation
    @property
    def steps(self) -> int:
        """Number of intermediate nodes per cell."""
        return len(self.normal) // 2

    def validate(self, ops: Iterable[str] | None = None) -> "Genotype":
        """Check structure and op names; raise :class:`GenotypeError` naming the field."""
        known = set(ops) if ops is not None else set(_known_ops())
        _validate_cell("normal", self.normal, self.normal_concat, known)
        if len(self.reduce) and not len(self.reduce) % 2 and len(self.reduce) != len(self.normal):
            raise GenotypeError(
                f"genotype.reduce: has {len(self.reduce)} edges but normal has {len(self.normal)}; both cells need the same node count"
            )
        _validate_cell("reduce", self.reduce, self.reduce_concat, known)
        if self.stage_normal is not None or self.stage_reduce is not None:
            if self.stage_normal is None or len(self.stage_normal) != NUM_STAGES:
                raise GenotypeError(f"genotype.cells.normal: needs one cell per stage ({NUM_STAGES})")
            if self.stage_reduce is None or len(self.stage_reduce) != NUM_REDUCTIONS:
                raise GenotypeError(f"genotype.cells.reduce: needs one cell per reduction ({NUM_REDUCTIONS})")
            for kind, cells in (("normal", self.stage_normal), ("reduce", self.stage_reduce)):
                for k, c in enumerate(cells):
                    _validate_cell(f"cells.{kind}[{k}]", c.edges, c.concat, known, edges_key="edges", concat_key="concat")
        if self.stages is not None:
            if len(self.stages) != NUM_STAGES:
                raise GenotypeError(f"genotype.stages: needs one layout per stage ({NUM_STAGES}), got {len(self.stages)}")
            for k, st in enumerate(self.stages):
                _validate_stage(f"stages[{k}]", st, known)
        return self

    # ------------------------------------------------------------------ serialisation
    def to_dict(self, with_meta: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "format": FORMAT,
            "version": self.version,  # plain cell genotypes stay version 1 (same file, same hash)
            "space": self.space,
            "normal": [[o, i] for o, i in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [[o, i] for o, i in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }
        if self.stage_normal is not None:
            d["cells"] = {"normal": [c.to_dict() for c in self.stage_normal], "reduce": [c.to_dict() for c in self.stage_reduce or ()]}
        if self.stages is not None:
            d["stages"] = [st.to_dict() for st in self.stages]
        if with_meta and self.meta:
            d["meta"] = dict(self.meta)
        return d

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: Any, ops: Iterable[str] | None = None) -> "Genotype":
        if not isinstance(d, dict):
            raise GenotypeError(f"genotype: expected a JSON object, got {type(d).__name__}")
        space = d.get("space", "darts")
        if not isinstance(space, str):
            raise GenotypeError(f"genotype.space: expected a space name (text), got {type(space).__name__}")
        other = _other_space(d) if cls is Genotype else None
        if other is not None:
            from dnas.spaces.base import get_space

            return get_space(other).read_genotype(d)
        fmt = d.get("format", FORMAT)
        if fmt != FORMAT:
            raise GenotypeError(f"genotype.format: expected {FORMAT!r}, got {fmt!r}")
        version = d.get("version", VERSION)
        if not isinstance(version, int) or version < 1:
            raise GenotypeError(f"genotype.version: expected a positive integer, got {version!r}")
        if version > VERSION:
            raise GenotypeError(
                f"genotype.version: file is version {version}, this dnas reads up to {VERSION}; upgrade dnas"
            )
        unknown = set(d) - _KEYS
        if unknown:
            raise GenotypeError(f"genotype: unknown field(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(_KEYS))}")
        if version < 2 and set(d) & {"cells", "stages"}:
            raise GenotypeError('genotype.version: fields "cells"/"stages" need version 2; set "version": 2')
        for key in ("normal", "normal_concat", "reduce", "reduce_concat"):
            if key not in d:
                raise GenotypeError(f"genotype.{key}: missing required field")
        edges = {key: _edge_list(key, d[key]) for key in ("normal", "reduce")}
        concats = {key: _index_list(key, d[key]) for key in ("normal_concat", "reduce_concat")}
        meta = d.get("meta", {}) or {}
        if not isinstance(meta, dict):
            raise GenotypeError("genotype.meta: expected a JSON object")
        space = d.get("space", "darts")
        if not isinstance(space, str):
            raise GenotypeError("genotype.space: expected a string")
        stage_normal = stage_reduce = stages = None
        if "cells" in d:
            stage_normal, stage_reduce = _parse_cells(d["cells"])
        if "stages" in d:
            stages = _parse_stages(d["stages"])
        g = cls(
            edges["normal"], concats["normal_concat"], edges["reduce"], concats["reduce_concat"], space, meta,
            stage_normal=stage_normal, stage_reduce=stage_reduce, stages=stages,
        )
        return g.validate(ops)

    @classmethod
    def from_json(cls, text: str) -> "Genotype":
        from dnas.errors import DnasError
        from dnas.io import loads_json

        try:
            d = loads_json(text, "genotype")
        except DnasError as e:
            raise GenotypeError(str(e)) from None
        return cls.from_dict(d)

    def save(self, path: str | os.PathLike) -> Path:
        from dnas.io import write_text

        return write_text(path, self.to_json() + "\n")

    # ------------------------------------------------------------------ identity
    def hash(self) -> str:
        """A stable 16-hex-digit hash of the architecture (meta excluded)."""
        canon = json.dumps(self.to_dict(with_meta=False), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()[:16]

    def with_meta(self, **meta: Any) -> "Genotype":
        return replace(self, meta={**self.meta, **meta})

    def __str__(self) -> str:  # compact, reference-style
        base = (
            f"Genotype(normal={list(self.normal)}, normal_concat={list(self.normal_concat)}, "
            f"reduce={list(self.reduce)}, reduce_concat={list(self.reduce_concat)}"
        )
        if self.stage_normal is not None:
            cells = [list(c.edges) for c in self.stage_normal] + [list(c.edges) for c in self.stage_reduce or ()]
            base += f", stage_cells={cells}"
        if self.stages is not None:
            base += ", stages=[" + ", ".join(
                f"{{cells: {st.num_cells}, links: {[list(l) for l in st.links]}, concat: {list(st.concat)}}}" for st in self.stages
            ) + "]"
        return base + ")"


def _validate_cell(name: str, edges, concat, known: set[str], edges_key: str = "", concat_key: str = "") -> None:
    ek = f"{name}.{edges_key}" if edges_key else name
    ck = f"{name}.{concat_key}" if concat_key else f"{name}_concat"
    if len(edges) == 0 or len(edges) % 2:
        raise GenotypeError(f"genotype.{ek}: needs 2 edges per intermediate node (an even, non-zero count), got {len(edges)}")
    steps = len(edges) // 2
    for k, (op, inp) in enumerate(edges):
        node = k // 2
        if op not in known:
            raise GenotypeError(f"genotype.{ek}[{k}]: unknown op {op!r}; known ops: {', '.join(sorted(known))}")
        if not 0 <= inp < node + 2:
            raise GenotypeError(f"genotype.{ek}[{k}]: input {inp} out of range for node {node} (must be 0..{node + 1})")
    _validate_concat(ck, concat, steps + 2)


def _validate_concat(key: str, concat, n_states: int) -> None:
    if not concat:
        raise GenotypeError(f"genotype.{key}: must list at least one node to concatenate")
    for c in concat:
        if not 0 <= c < n_states:
            raise GenotypeError(f"genotype.{key}: index {c} out of range (must be 0..{n_states - 1})")
    if len(set(concat)) != len(concat):
        raise GenotypeError(f"genotype.{key}: repeated index in {list(concat)}")


def _validate_stage(name: str, st: StageGene, known: set[str]) -> None:
    if st.num_cells < 1:
        raise GenotypeError(f"genotype.{name}.links: a stage needs at least one cell")
    for k, links in enumerate(st.links):
        if not links:
            raise GenotypeError(f"genotype.{name}.links[{k}]: cell {k} needs at least one incoming link")
        for j, (op, inp) in enumerate(links):
            if op not in known:
                raise GenotypeError(f"genotype.{name}.links[{k}][{j}]: unknown op {op!r}; known ops: {', '.join(sorted(known))}")
            if not 0 <= inp < k + 2:
                raise GenotypeError(f"genotype.{name}.links[{k}][{j}]: state {inp} out of range for cell {k} (must be 0..{k + 1})")
    _validate_concat(f"{name}.concat", st.concat, st.num_cells + 2)


def _edge_list(key: str, val: Any) -> list[Edge]:
    if not isinstance(val, (list, tuple)):
        raise GenotypeError(f"genotype.{key}: expected a list of [op, input] pairs")
    out = []
    for k, e in enumerate(val):
        if (
            not isinstance(e, (list, tuple))
            or len(e) != 2
            or not isinstance(e[0], str)
            or isinstance(e[1], bool)
            or not isinstance(e[1], int)
        ):
            raise GenotypeError(f"genotype.{key}[{k}]: expected [op_name, input_index], got {e!r}")
        out.append((e[0], e[1]))
    return out


def _index_list(key: str, val: Any) -> list[int]:
    if not isinstance(val, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in val):
        raise GenotypeError(f"genotype.{key}: expected a list of node indices")
    return list(val)


def _parse_cells(val: Any) -> tuple[tuple[CellGene, ...], tuple[CellGene, ...]]:
    if not isinstance(val, dict) or set(val) != {"normal", "reduce"}:
        raise GenotypeError('genotype.cells: expected {"normal": [3 cells], "reduce": [2 cells]}')
    out = []
    for kind in ("normal", "reduce"):
        cells = val[kind]
        if not isinstance(cells, list):
            raise GenotypeError(f"genotype.cells.{kind}: expected a list of cells")
        parsed = []
        for k, c in enumerate(cells):
            if not isinstance(c, dict) or set(c) != {"edges", "concat"}:
                raise GenotypeError(f'genotype.cells.{kind}[{k}]: expected {{"edges": [...], "concat": [...]}}')
            parsed.append(CellGene(_edge_list(f"cells.{kind}[{k}].edges", c["edges"]), _index_list(f"cells.{kind}[{k}].concat", c["concat"])))
        out.append(tuple(parsed))
    return out[0], out[1]


def _parse_stages(val: Any) -> tuple[StageGene, ...]:
    if not isinstance(val, list):
        raise GenotypeError("genotype.stages: expected a list of stage layouts")
    out = []
    for k, st in enumerate(val):
        if not isinstance(st, dict) or set(st) != {"links", "concat"}:
            raise GenotypeError(f'genotype.stages[{k}]: expected {{"links": [...], "concat": [...]}}')
        if not isinstance(st["links"], list):
            raise GenotypeError(f"genotype.stages[{k}].links: expected one list of [op, state] pairs per cell")
        links = [_edge_list(f"stages[{k}].links[{j}]", cell) for j, cell in enumerate(st["links"])]
        out.append(StageGene(links, _index_list(f"stages[{k}].concat", st["concat"])))
    return tuple(out)


def _g(normal: Sequence[Edge], reduce: Sequence[Edge], source: str) -> Genotype:
    return Genotype(normal, range(2, 6), reduce, range(2, 6), meta={"source": source})


#: Published genotypes, copied as facts from the papers' released code
#: (DARTS: cnn/genotypes.py; PC-DARTS: genotypes.py).
PUBLISHED: dict[str, Genotype] = {
    "DARTS_V1": _g(
        [("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
         ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)],
        [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
         ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)],
        "DARTS (Liu et al. 2019), first order",
    ),
    "DARTS_V2": _g(
        [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
         ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
        [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
         ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)],
        "DARTS (Liu et al. 2019), second order",
    ),
    "PC_DARTS_cifar": _g(
        [("sep_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 0), ("dil_conv_3x3", 1),
         ("sep_conv_5x5", 0), ("sep_conv_3x3", 1), ("avg_pool_3x3", 0), ("dil_conv_3x3", 1)],
        [("sep_conv_5x5", 1), ("max_pool_3x3", 0), ("sep_conv_5x5", 1), ("sep_conv_5x5", 2),
         ("sep_conv_3x3", 0), ("sep_conv_3x3", 3), ("sep_conv_3x3", 1), ("sep_conv_3x3", 2)],
        "PC-DARTS (Xu et al. 2020), CIFAR-10",
    ),
    "PC_DARTS_image": _g(
        [("skip_connect", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 0), ("skip_connect", 1),
         ("sep_conv_3x3", 1), ("sep_conv_3x3", 3), ("sep_conv_3x3", 1), ("dil_conv_5x5", 4)],
        [("sep_conv_3x3", 0), ("skip_connect", 1), ("dil_conv_5x5", 2), ("max_pool_3x3", 1),
         ("sep_conv_3x3", 2), ("sep_conv_3x3", 1), ("sep_conv_5x5", 0), ("sep_conv_3x3", 3)],
        "PC-DARTS (Xu et al. 2020), ImageNet",
    ),
}


def load_genotype(spec: "str | os.PathLike | dict | Genotype") -> Genotype:
    """Resolve a genotype from a published name, a JSON file, a run directory or a dict."""
    if isinstance(spec, Genotype):
        return spec.validate()
    if not isinstance(spec, (str, os.PathLike, dict)) and hasattr(spec, "validate") and hasattr(spec, "to_dict"):
        return spec.validate()  # another space's genotype object
    if isinstance(spec, dict):
        return Genotype.from_dict(spec)
    s = str(spec)
    if s in PUBLISHED:
        return PUBLISHED[s]
    p = Path(s)
    if p.is_dir():
        p = p / "genotype.json"
    if not p.exists():
        raise GenotypeError(
            f"genotype {s!r}: not a published name ({', '.join(PUBLISHED)}) nor an existing JSON file or run directory"
        )
    from dnas.errors import DnasError
    from dnas.io import read_text

    try:
        text = read_text(p, "genotype file")
    except DnasError as e:
        raise GenotypeError(str(e)) from None
    try:
        return Genotype.from_json(text)
    except GenotypeError as e:
        raise GenotypeError(f"{p}: {e}") from None
