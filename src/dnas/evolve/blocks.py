"""The block level: candidate cells for the network search, searched or given.

Enhanced-gradient DAS first searches *blocks* by gradient with a complexity term in the loss,
so that several blocks at different accuracy/complexity trade-offs are available, and only then
assembles networks from them. :func:`search_blocks` runs one small cell search per value of the
cost weight (``cost_lambda``) when the search config has the cost term; on a dnas without it,
it varies the search seed instead (the blocks then differ by chance, not by design) and records
which of the two it did in each block's ``source``. :func:`resolve_blocks` takes given blocks
instead: published names, genotype JSON files or search run directories.

Searches run in ``OUT/blocks/search-<i>`` and resume from there, so a stopped ``dnas evolve``
does not search its blocks twice; the chosen blocks are written to ``OUT/blocks.json``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from dnas.errors import ConfigError, GenotypeError
from dnas.genotype import PUBLISHED, Genotype, load_genotype
from dnas.io import write_json

#: A tiny cell search (seconds to a minute on 2 CPU cores); callers override any field.
TINY_SEARCH: dict[str, Any] = dict(image_size=8, init_channels=4, layers=3, batch_size=32, max_samples=400,
                                   epochs=3, warmup_epochs=1, relaxation="darts")


@dataclass
class Block:
    """A candidate block: a cell genotype with a short name and where it came from."""

    name: str
    genotype: Genotype
    source: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "genotype": self.genotype.to_dict(with_meta=False), "source": self.source}

    @classmethod
    def from_dict(cls, d: dict) -> "Block":
        return cls(d["name"], Genotype.from_dict(d["genotype"]), dict(d.get("source", {})))


def _name_of(spec: str) -> str:
    if spec in PUBLISHED:
        return spec
    p = Path(spec)
    return p.parent.name if p.name == "genotype.json" else (p.name if p.is_dir() else p.stem)


def resolve_blocks(specs: Sequence[str]) -> list[Block]:
    """Blocks from published names, genotype JSON files or run directories (duplicates dropped)."""
    blocks: list[Block] = []
    seen: set[str] = set()
    for spec in specs:
        spec = str(spec).strip()
        if not spec:
            continue
        try:
            g = load_genotype(spec)
        except GenotypeError as e:
            raise ConfigError(f"--blocks {spec!r}: {e}") from None
        if g.is_hierarchical or g.space not in ("darts",):
            raise ConfigError(f"--blocks {spec!r}: a block must be a plain DARTS cell genotype (normal + reduce cell)")
        if g.hash() in seen:
            continue
        seen.add(g.hash())
        blocks.append(Block(_name_of(spec), Genotype(g.normal, g.normal_concat, g.reduce, g.reduce_concat),
                            {"kind": "given", "spec": spec}))
    if not blocks:
        raise ConfigError("--blocks: no blocks given; pass names or files, e.g. --blocks DARTS_V2,PC_DARTS_cifar")
    return blocks


def cost_term_available() -> bool:
    """True when the cell search has the complexity term (``cost_lambda`` in SearchConfig)."""
    from dnas.config import SearchConfig

    return "cost_lambda" in SearchConfig.model_fields


def search_blocks(
    out: str | os.PathLike,
    *,
    data: str,
    lambdas: Sequence[float] = (0.0, 0.5, 2.0),
    seed: int = 0,
    cost_objective: str = "params",
    overrides: dict[str, Any] | None = None,
) -> list[Block]:
    """One cell search per ``lambdas`` entry under ``out/blocks``; returns the distinct blocks.

    With the cost term, search ``i`` uses ``cost_lambda=lambdas[i]`` (and ``cost_objective``)
    and seed ``seed``; without it, seed ``seed + i``. A finished search is read back, a stopped
    one resumed, so calling this again after an interruption repeats no work.
    """
    import dnas
    from dnas.api import search as api_search

    settings = {**TINY_SEARCH, **(overrides or {}), "data": data}
    with_cost = cost_term_available()
    root = Path(out) / "blocks"
    blocks: list[Block] = []
    seen: set[str] = set()
    for i, lam in enumerate(lambdas):
        run = root / f"search-{i}"
        fields = dict(settings)
        if with_cost:
            fields.update(seed=seed, cost_lambda=float(lam), cost_objective=cost_objective)
            source = {"kind": "search", "cost_lambda": float(lam), "cost_objective": cost_objective, "seed": seed, "run": str(run)}
        else:
            fields.update(seed=seed + i)
            source = {"kind": "search", "seed": seed + i, "run": str(run),
                      "note": "no cost term in this dnas: blocks differ by search seed, not by cost weight"}
        if (run / "genotype.json").exists():
            g = load_genotype(run)
        elif (run / "checkpoint.pt").exists():
            g = api_search(resume=run).genotype
        else:
            g = dnas.search(out=run, **fields).genotype
        g = Genotype(g.normal, g.normal_concat, g.reduce, g.reduce_concat)
        if g.hash() in seen:
            continue
        seen.add(g.hash())
        name = f"lambda{lam:g}" if with_cost else f"seed{seed + i}"
        blocks.append(Block(name, g, source))
    return blocks


def save_blocks(path: str | os.PathLike, blocks: Sequence[Block]) -> None:
    write_json(path, {"format": "dnas.evolve.blocks", "version": 1, "blocks": [b.to_dict() for b in blocks]})


def load_blocks(path: str | os.PathLike) -> list[Block]:
    from dnas.errors import DnasError
    from dnas.io import read_json

    p = Path(path)
    try:
        d = read_json(p, "blocks file")
    except DnasError as e:
        raise ConfigError(f"{e} (the blocks file is written by dnas evolve)") from None
    if not isinstance(d, dict) or d.get("format") != "dnas.evolve.blocks":
        raise ConfigError(f"{p}: not a dnas evolve blocks file")
    return [Block.from_dict(b) for b in d["blocks"]]


__all__ = ["Block", "TINY_SEARCH", "resolve_blocks", "search_blocks", "cost_term_available", "save_blocks", "load_blocks"]
