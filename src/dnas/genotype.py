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
hash. Later format versions may add fields (per-stage cells, a stage layout); files of older
versions keep loading.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from dnas.errors import GenotypeError

FORMAT = "dnas.genotype"
VERSION = 1
_KEYS = {"format", "version", "space", "normal", "normal_concat", "reduce", "reduce_concat", "meta"}

Edge = tuple[str, int]


def _known_ops() -> list[str]:
    from dnas.ops import OPS

    return OPS.names()


@dataclass(frozen=True)
class Genotype:
    """A DARTS-style cell architecture: a normal cell and a reduction cell."""

    normal: tuple[Edge, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Edge, ...]
    reduce_concat: tuple[int, ...]
    space: str = "darts"
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "normal", tuple((str(o), int(i)) for o, i in self.normal))
        object.__setattr__(self, "reduce", tuple((str(o), int(i)) for o, i in self.reduce))
        object.__setattr__(self, "normal_concat", tuple(int(i) for i in self.normal_concat))
        object.__setattr__(self, "reduce_concat", tuple(int(i) for i in self.reduce_concat))

    # ------------------------------------------------------------------ validation
    @property
    def steps(self) -> int:
        """Number of intermediate nodes per cell."""
        return len(self.normal) // 2

    def validate(self, ops: Iterable[str] | None = None) -> "Genotype":
        """Check structure and op names; raise :class:`GenotypeError` naming the field."""
        known = set(ops) if ops is not None else set(_known_ops())
        for name in ("normal", "reduce"):
            edges = getattr(self, name)
            if len(edges) == 0 or len(edges) % 2:
                raise GenotypeError(
                    f"genotype.{name}: needs 2 edges per intermediate node (an even, non-zero count), got {len(edges)}"
                )
            if name == "reduce" and len(edges) != len(self.normal):
                raise GenotypeError(
                    f"genotype.reduce: has {len(edges)} edges but normal has {len(self.normal)}; both cells need the same node count"
                )
            for k, (op, inp) in enumerate(edges):
                node = k // 2
                if op not in known:
                    raise GenotypeError(
                        f"genotype.{name}[{k}]: unknown op {op!r}; known ops: {', '.join(sorted(known))}"
                    )
                if not 0 <= inp < node + 2:
                    raise GenotypeError(
                        f"genotype.{name}[{k}]: input {inp} out of range for node {node} (must be 0..{node + 1})"
                    )
            concat = getattr(self, f"{name}_concat")
            if not concat:
                raise GenotypeError(f"genotype.{name}_concat: must list at least one node to concatenate")
            for c in concat:
                if not 0 <= c < self.steps + 2:
                    raise GenotypeError(
                        f"genotype.{name}_concat: index {c} out of range (must be 0..{self.steps + 1})"
                    )
            if len(set(concat)) != len(concat):
                raise GenotypeError(f"genotype.{name}_concat: repeated index in {list(concat)}")
        return self

    # ------------------------------------------------------------------ serialisation
    def to_dict(self, with_meta: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "space": self.space,
            "normal": [[o, i] for o, i in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [[o, i] for o, i in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }
        if with_meta and self.meta:
            d["meta"] = dict(self.meta)
        return d

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: Any, ops: Iterable[str] | None = None) -> "Genotype":
        if not isinstance(d, dict):
            raise GenotypeError(f"genotype: expected a JSON object, got {type(d).__name__}")
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
        for key in ("normal", "normal_concat", "reduce", "reduce_concat"):
            if key not in d:
                raise GenotypeError(f"genotype.{key}: missing required field")
        edges = {}
        for key in ("normal", "reduce"):
            val = d[key]
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
            edges[key] = out
        concats = {}
        for key in ("normal_concat", "reduce_concat"):
            val = d[key]
            if not isinstance(val, (list, tuple)) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in val
            ):
                raise GenotypeError(f"genotype.{key}: expected a list of node indices")
            concats[key] = val
        meta = d.get("meta", {}) or {}
        if not isinstance(meta, dict):
            raise GenotypeError("genotype.meta: expected a JSON object")
        space = d.get("space", "darts")
        if not isinstance(space, str):
            raise GenotypeError("genotype.space: expected a string")
        g = cls(edges["normal"], concats["normal_concat"], edges["reduce"], concats["reduce_concat"], space, meta)
        return g.validate(ops)

    @classmethod
    def from_json(cls, text: str) -> "Genotype":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise GenotypeError(f"genotype: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
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
        return Genotype(self.normal, self.normal_concat, self.reduce, self.reduce_concat, self.space, {**self.meta, **meta})

    def __str__(self) -> str:  # compact, reference-style
        return (
            f"Genotype(normal={list(self.normal)}, normal_concat={list(self.normal_concat)}, "
            f"reduce={list(self.reduce)}, reduce_concat={list(self.reduce_concat)})"
        )


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
    try:
        text = p.read_text()
    except OSError as e:
        raise GenotypeError(f"genotype {s!r}: cannot read file ({e.strerror})") from None
    try:
        return Genotype.from_json(text)
    except GenotypeError as e:
        raise GenotypeError(f"{p}: {e}") from None
