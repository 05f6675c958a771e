"""A tabular evaluator: architectures are scored by looking them up in a records file.

Benchmarks such as NAS-Bench-201 trained every architecture once; a search on the table costs
nothing per query, so search strategies can be compared over many seeds. The records file is a
JSON list; each record names its architecture either as an NB201 string or as a DARTS-style
genotype, and gives its accuracy and, optionally, its cost::

    [{"arch": "|nor_conv_3x3~0|+|...|", "val_accuracy": 90.1, "flops_m": 80.4, "params_m": 0.59},
     {"normal": [["sep_conv_3x3", 0], ...], "normal_concat": [2, 3, 4, 5],
      "reduce": [...], "reduce_concat": [2, 3, 4, 5], "val_accuracy": 97.0}]

A search on a tabular evaluator is restricted to the architectures it holds (:meth:`archs`).
"""
from __future__ import annotations

import math
import os
from importlib import resources
from pathlib import Path
from typing import Any, Hashable, Sequence

from dnas.errors import DataError, DnasError
from dnas.evaluators.base import EVALUATORS, EvalResult
from dnas.genotype import Genotype
from dnas.spaces.nb201 import NB201Arch

#: Record files shipped with dnas, usable by name (``tabular:nb201_cifar10``).
BUILTIN_TABLES = {"nb201_cifar10": "nb201_cifar10.json", "nb301_cifar10": "nb301_cifar10.json",
                  # the same records with NAS-Bench-Suite-Zero's published zero-cost proxy scores
                  "nb201_cifar10_zc": "nb201_cifar10_zc.json", "nb301_cifar10_zc": "nb301_cifar10_zc.json"}
_GENOTYPE_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")
_COST_FIELDS = ("flops_m", "params_m")
_RECORD_FIELDS = ("arch", "val_accuracy", *_GENOTYPE_FIELDS, *_COST_FIELDS)


def resolve_table(name_or_path: "str | os.PathLike") -> tuple[str, str]:
    """Return ``(source_label, json_text)`` for a built-in table name or a file path."""
    s = str(name_or_path)
    if s in BUILTIN_TABLES:
        text = resources.files("dnas.resources").joinpath(BUILTIN_TABLES[s]).read_text()
        return s, text
    p = Path(s)
    if not p.is_file():
        raise DataError(
            f"records {s!r}: no such file and not a built-in table ({', '.join(BUILTIN_TABLES)}); "
            "pass a JSON list of records"
        )
    from dnas.errors import DnasError
    from dnas.io import read_text

    try:
        return str(p), read_text(p, "records file")
    except DnasError as e:
        raise DataError(f"records {s}: {e}") from None


def _number(src: str, i: int, key: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(f"records {src}[{i}].{key}: expected a finite number, got {value!r}")
    if not lo <= value <= hi:
        raise DataError(f"records {src}[{i}].{key}: {value} out of range [{lo}, {hi}]")
    return float(value)


def arch_key(arch: Any) -> Hashable:
    """Normalise an architecture (NB201 string/dict/object or DARTS genotype/dict) to the
    hashable value the table is keyed by."""
    if isinstance(arch, (NB201Arch, Genotype)):
        return arch if isinstance(arch, NB201Arch) else _plain(arch)
    if isinstance(arch, str):
        return NB201Arch.parse(arch)
    if isinstance(arch, dict):
        if "arch" in arch:
            return NB201Arch.parse(arch["arch"])
        return _plain(Genotype.from_dict({k: arch[k] for k in _GENOTYPE_FIELDS if k in arch}))
    raise DataError(f"architecture: expected an NB201 string or a genotype, got {type(arch).__name__}")


def _plain(g: Genotype) -> Genotype:
    """The DARTS cell space's canonical form (each node's two edges sorted by input, no
    ``meta``/``space``), so equal cells compare equal however a record lists a node's edges."""
    from dnas.spaces.base import get_space

    if len(g.normal) % 2 or len(g.reduce) % 2 or g.is_hierarchical:
        return Genotype(g.normal, g.normal_concat, g.reduce, g.reduce_concat)
    return get_space("darts", steps=len(g.normal) // 2).canonical(g)


def load_records(source: "str | os.PathLike | list") -> tuple[str, list[dict]]:
    """Load and validate records; return ``(source_label, records)`` where each record has a
    parsed ``key`` (NB201Arch or Genotype), ``val_accuracy``, the cost fields it gave, and
    ``fields``: every other numeric field of the record (e.g. zero-cost proxy scores), as floats
    (``null`` and non-numbers are left out; ``NaN``/``inf`` are kept for the reader to handle).
    Any problem raises a one-line :class:`DataError` naming the record index and field."""
    if isinstance(source, list):
        src, raw = "<list>", source
    else:
        src, text = resolve_table(source)
        from dnas.errors import DnasError
        from dnas.io import loads_json

        try:
            raw = loads_json(text, f"records {src}")
        except DnasError as e:
            raise DataError(str(e)) from None
    if not isinstance(raw, list) or not raw:
        raise DataError(f"records {src}: expected a non-empty JSON list of records")
    out: list[dict] = []
    seen: dict[Hashable, int] = {}
    for i, r in enumerate(raw):
        if not isinstance(r, dict):
            raise DataError(f"records {src}[{i}]: expected a JSON object, got {type(r).__name__}")
        if "arch" in r:
            field = "arch"
            if not isinstance(r["arch"], str):
                raise DataError(f"records {src}[{i}].arch: expected an NB201 arch string")
        elif all(k in r for k in _GENOTYPE_FIELDS):
            field = "normal"
        else:
            raise DataError(
                f"records {src}[{i}]: needs 'arch' (NB201 string) or all of {', '.join(_GENOTYPE_FIELDS)}"
            )
        try:
            key = arch_key(r)
        except DnasError as e:
            raise DataError(f"records {src}[{i}].{field}: {e}") from None
        if key in seen:
            raise DataError(f"records {src}[{i}].{field}: duplicate of record {seen[key]}; keep one")
        seen[key] = i
        if "val_accuracy" not in r:
            raise DataError(f"records {src}[{i}].val_accuracy: missing required field")
        rec = {"key": key, "val_accuracy": _number(src, i, "val_accuracy", r["val_accuracy"], 0.0, 100.0)}
        for k in _COST_FIELDS:
            if k in r and r[k] is not None:
                rec[k] = _number(src, i, k, r[k], 0.0, math.inf)
        rec["fields"] = {k: float(v) for k, v in r.items()
                         if k not in _RECORD_FIELDS and isinstance(v, (int, float)) and not isinstance(v, bool)}
        out.append(rec)
    kinds = {type(r["key"]) for r in out}
    if len(kinds) > 1:
        raise DataError(f"records {src}: mixes NB201 'arch' records with DARTS genotypes; use one space per file")
    return src, out


class TabularEvaluator:
    """Looks architectures up in a records table and counts the queries made.

    ``queries`` counts every :meth:`evaluate` call, ``unique_queries`` the distinct
    architectures asked for (a repeated query is returned with ``cached=True``). ``budget`` is
    accepted for multi-fidelity strategies but the table holds one fidelity, so it only echoes
    back in the result.
    """

    def __init__(self, source: "str | os.PathLike | list"):
        self.source, self.records = load_records(source)
        self._table = {r["key"]: r for r in self.records}
        self._archs = [r["key"] for r in self.records]
        self.space = "nb201" if isinstance(self._archs[0], NB201Arch) else "darts"
        self.queries = 0
        self._seen: set[Hashable] = set()

    @property
    def unique_queries(self) -> int:
        return len(self._seen)

    def archs(self) -> Sequence[Hashable]:
        """The architectures this table holds, in file order."""
        return list(self._archs)

    def __len__(self) -> int:
        return len(self._archs)

    def __contains__(self, arch: Any) -> bool:
        try:
            return arch_key(arch) in self._table
        except DnasError:
            return False

    def lookup(self, arch: Any) -> dict:
        """The record of ``arch`` without counting a query."""
        key = arch_key(arch)
        try:
            return self._table[key]
        except KeyError:
            raise DataError(
                f"tabular evaluator ({self.source}): architecture {key} is not among its {len(self)} records; "
                "restrict the search to evaluator.archs()"
            ) from None

    def evaluate(self, arch: Any, budget: float | None = None) -> EvalResult:
        rec = self.lookup(arch)
        self.queries += 1
        cached = rec["key"] in self._seen
        self._seen.add(rec["key"])
        cost = {k: rec[k] for k in _COST_FIELDS if k in rec}
        return EvalResult(accuracy=rec["val_accuracy"], cost=cost, budget=budget, cached=cached)

    def best(self) -> tuple[Hashable, float]:
        """The table's best architecture and accuracy (for reporting regret, not for searching)."""
        r = max(self.records, key=lambda r: r["val_accuracy"])
        return r["key"], r["val_accuracy"]


def table_accuracy(space: Any, arch: Any) -> dict:
    """``{"table": NAME, "table_accuracy": ACC}`` for the first built-in table of ``space``
    (``space.tables``) that holds ``arch``; ``table_accuracy`` is ``None`` when none holds it
    and the dict is empty when the space has no table. A one-shot search reports this next to
    its own validation accuracy, so its result reads like the NAS-Bench-201 one-shot benchmark."""
    from dnas.spaces.base import get_space

    sp = get_space(space)
    for name in sp.tables:
        ev = TabularEvaluator(name)
        if arch in ev:
            return {"table": name, "table_accuracy": ev.lookup(arch)["val_accuracy"]}
    return {"table": sp.tables[0], "table_accuracy": None} if sp.tables else {}


@EVALUATORS.register("tabular")
def _make_tabular(arg: str) -> TabularEvaluator:
    if not arg:
        raise DataError("evaluator tabular: give a records file or built-in name, e.g. 'tabular:nb201_cifar10'")
    return TabularEvaluator(arg)
