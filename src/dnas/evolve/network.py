"""The network genotype (space ``"network"``) and the evaluation network built from it.

A cell search yields *blocks* (cell genotypes); the network level assembles them. A network is
a stem and a sequence of stages; each stage optionally starts with its block's reduction cell
(halving the resolution), then repeats its block's normal cell ``repeats`` times at ``width``
channels per node. Unlike the DARTS macro layout (one cell, fixed 1/3 and 2/3 reductions, one
width doubled at each reduction), every stage picks its own block, depth and width, which is
what lets a search trade accuracy against size per stage.

File format (read by :meth:`NetworkGenotype.from_dict`, written by ``to_dict``)::

    {"format": "dnas.genotype", "version": 1, "space": "network",
     "stem": 16,
     "blocks": [GENOTYPE, ...],                  # cell genotypes (normal + reduce cells)
     "stages": [{"block": 0, "repeats": 2, "width": 16, "reduce": false}, ...],
     "meta": {...}}

:class:`NetworkGenotype` is a :class:`~dnas.genotype.Genotype` (its ``normal``/``reduce`` are
those of block 0), so the trainer, exporter and cost code take it as they take a cell genotype;
its hash covers the whole network. ``build_network(..., net="evolved")`` builds it; the widths
and depth come from the genotype, so ``C`` and ``layers`` are ignored.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable, Sequence

import torch
import torch.nn as nn

from dnas.errors import ConfigError, GenotypeError
from dnas.genotype import FORMAT, Genotype, load_genotype
from dnas.models import NETWORKS
from dnas.models.cell import Cell, cells_forward
from dnas.models.heads import AuxiliaryHeadCIFAR

SPACE = "network"
NET_NAME = "evolved"
_KEYS = {"format", "version", "space", "stem", "blocks", "stages", "meta"}
_STAGE_KEYS = {"block", "repeats", "width", "reduce"}


@dataclass(frozen=True)
class StageSpec:
    """One stage: ``repeats`` normal cells of block ``block`` at ``width`` channels per node,
    preceded by that block's reduction cell when ``reduce`` is true."""

    block: int
    repeats: int
    width: int
    reduce: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"block": self.block, "repeats": self.repeats, "width": self.width, "reduce": self.reduce}


@dataclass(frozen=True)
class NetworkGenotype(Genotype):
    """A whole network assembled from cell blocks (see the module docstring for the format)."""

    blocks: tuple[Genotype, ...] = ()
    stem: int = 16
    layout: tuple[StageSpec, ...] = ()
    #: ``build_network`` uses this network class for this genotype, whatever ``net`` says.
    network: ClassVar[str] = NET_NAME

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "blocks", tuple(self.blocks))
        object.__setattr__(self, "layout", tuple(self.layout))
        object.__setattr__(self, "stem", int(self.stem))

    @classmethod
    def make(cls, blocks: Sequence[Genotype], stem: int, layout: Sequence[StageSpec], meta: dict | None = None) -> "NetworkGenotype":
        """Build and validate; ``normal``/``reduce`` mirror block 0 for cell-only readers."""
        if not blocks:
            raise GenotypeError("genotype.blocks: a network needs at least one block")
        b0 = blocks[0]
        plain = [Genotype(b.normal, b.normal_concat, b.reduce, b.reduce_concat, b.space) for b in blocks]
        g = cls(b0.normal, b0.normal_concat, b0.reduce, b0.reduce_concat, SPACE, dict(meta or {}),
                blocks=tuple(plain), stem=stem, layout=tuple(layout))
        return g.validate()

    # ------------------------------------------------------------------ structure
    @property
    def num_cells(self) -> int:
        return sum(s.repeats + int(s.reduce) for s in self.layout)

    @property
    def num_reductions(self) -> int:
        return sum(int(s.reduce) for s in self.layout)

    def validate(self, ops: Iterable[str] | None = None) -> "NetworkGenotype":
        if self.space != SPACE:
            raise GenotypeError(f"genotype.space: a network genotype has space {SPACE!r}, got {self.space!r}")
        if not self.blocks:
            raise GenotypeError("genotype.blocks: a network needs at least one block")
        for k, b in enumerate(self.blocks):
            try:
                b.validate(ops)
            except GenotypeError as e:
                raise GenotypeError(f"genotype.blocks[{k}]: {str(e).removeprefix('genotype.')}") from None
        if self.stem < 1:
            raise GenotypeError(f"genotype.stem: stem width must be >= 1, got {self.stem}")
        if not self.layout:
            raise GenotypeError("genotype.stages: a network needs at least one stage")
        for k, s in enumerate(self.layout):
            if not 0 <= s.block < len(self.blocks):
                raise GenotypeError(f"genotype.stages[{k}].block: {s.block} is not a block index (0..{len(self.blocks) - 1})")
            if s.repeats < 1:
                raise GenotypeError(f"genotype.stages[{k}].repeats: must be >= 1, got {s.repeats}")
            if s.width < 2 or s.width % 2:
                raise GenotypeError(f"genotype.stages[{k}].width: must be an even integer >= 2 (factorized reduce halves it), got {s.width}")
        return self

    # ------------------------------------------------------------------ serialisation
    def to_dict(self, with_meta: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "format": FORMAT, "version": 1, "space": SPACE, "stem": self.stem,
            "blocks": [b.to_dict(with_meta=False) for b in self.blocks],
            "stages": [s.to_dict() for s in self.layout],
        }
        if with_meta and self.meta:
            d["meta"] = dict(self.meta)
        return d

    @classmethod
    def from_dict(cls, d: Any, ops: Iterable[str] | None = None) -> "NetworkGenotype":
        if not isinstance(d, dict):
            raise GenotypeError(f"genotype: expected a JSON object, got {type(d).__name__}")
        if d.get("format", FORMAT) != FORMAT:
            raise GenotypeError(f"genotype.format: expected {FORMAT!r}, got {d.get('format')!r}")
        if d.get("space") != SPACE:
            raise GenotypeError(f"genotype.space: expected {SPACE!r} for a network genotype, got {d.get('space')!r}")
        if d.get("version", 1) != 1:
            raise GenotypeError(f"genotype.version: network genotypes are version 1, got {d.get('version')!r}; upgrade dnas")
        unknown = set(d) - _KEYS
        if unknown:
            raise GenotypeError(f"genotype: unknown field(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(_KEYS))}")
        for key in ("stem", "blocks", "stages"):
            if key not in d:
                raise GenotypeError(f"genotype.{key}: missing required field")
        if not isinstance(d["blocks"], list) or not d["blocks"]:
            raise GenotypeError("genotype.blocks: expected a non-empty list of cell genotypes")
        blocks = []
        for k, b in enumerate(d["blocks"]):
            try:
                blocks.append(Genotype.from_dict(b, ops))
            except GenotypeError as e:
                raise GenotypeError(f"genotype.blocks[{k}]: {str(e).removeprefix('genotype.')}") from None
        if not isinstance(d["stages"], list):
            raise GenotypeError("genotype.stages: expected a list of {block, repeats, width, reduce}")
        layout = []
        for k, s in enumerate(d["stages"]):
            if not isinstance(s, dict) or set(s) - _STAGE_KEYS or not {"block", "repeats", "width"} <= set(s):
                raise GenotypeError(f'genotype.stages[{k}]: expected {{"block": int, "repeats": int, "width": int, "reduce": bool}}')
            vals = [s["block"], s["repeats"], s["width"]]
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in vals) or not isinstance(s.get("reduce", False), bool):
                raise GenotypeError(f"genotype.stages[{k}]: block, repeats and width must be integers and reduce a boolean")
            layout.append(StageSpec(*vals, s.get("reduce", False)))
        stem = d["stem"]
        if not isinstance(stem, int) or isinstance(stem, bool):
            raise GenotypeError("genotype.stem: expected an integer (stem channels)")
        meta = d.get("meta", {}) or {}
        if not isinstance(meta, dict):
            raise GenotypeError("genotype.meta: expected a JSON object")
        return cls.make(blocks, stem, layout, meta).validate(ops)

    def __str__(self) -> str:
        stages = ", ".join(f"{'R+' if s.reduce else ''}b{s.block}x{s.repeats}@{s.width}" for s in self.layout)
        return f"Network(stem={self.stem}, stages=[{stages}], blocks={len(self.blocks)})"


def load_network_genotype(spec: "str | os.PathLike | dict | Genotype") -> NetworkGenotype:
    """A network genotype from a dict, a JSON file, a run directory (its ``genotype.json``) or
    an object; cell genotypes are refused with a message saying what to pass instead."""
    if isinstance(spec, NetworkGenotype):
        return spec.validate()
    if isinstance(spec, dict):
        return NetworkGenotype.from_dict(spec)
    if isinstance(spec, Genotype):
        raise GenotypeError("genotype: a cell genotype, not a network; pass a member of `dnas evolve`'s pareto.json")
    p = Path(spec)
    if p.is_dir():
        p = p / "genotype.json"
    from dnas.errors import DnasError
    from dnas.io import read_json

    try:
        d = read_json(p, "network genotype")
    except DnasError as e:
        raise GenotypeError(str(e)) from None
    try:
        return NetworkGenotype.from_dict(d)
    except GenotypeError as e:
        raise GenotypeError(f"{p}: {e}") from None


# --------------------------------------------------------------------------- the network
class EvolvedNetwork(nn.Module):
    """Stem (3x3 conv + BN), the stages' cells, global pooling, a linear classifier; an optional
    auxiliary head after the cell at 2/3 depth. Same interface as the other NETWORKS: eval mode
    returns logits, train mode ``(logits, logits_aux or None)``."""

    darts_genotype = True  # build_network resolves and validates the genotype first

    def __init__(
        self,
        genotype: Genotype,
        C: int = 0,
        layers: int = 0,
        num_classes: int = 10,
        in_channels: int = 3,
        auxiliary: bool = False,
        drop_path_prob: float = 0.0,
    ) -> None:
        super().__init__()
        if not isinstance(genotype, NetworkGenotype):
            raise ConfigError(f"net {NET_NAME!r} needs a network genotype (space {SPACE!r}), e.g. a member of "
                              "`dnas evolve`'s pareto.json; use net cifar for cell genotypes")
        del C, layers  # the genotype fixes the widths and the depth
        self.genotype = genotype
        self.drop_path_prob = float(drop_path_prob)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, genotype.stem, 3, padding=1, bias=False), nn.BatchNorm2d(genotype.stem))
        self.cells = nn.ModuleList()
        C_pp = C_p = genotype.stem
        reduction_prev = False
        for stage in genotype.layout:
            block = genotype.blocks[stage.block]
            for reduction in [True] * int(stage.reduce) + [False] * stage.repeats:
                cell = Cell(block, C_pp, C_p, stage.width, reduction, reduction_prev)
                self.cells.append(cell)
                C_pp, C_p, reduction_prev = C_p, cell.multiplier * stage.width, reduction
        n = len(self.cells)
        self.aux_index = max(0, 2 * n // 3 - 1) if n > 1 else 0
        self.auxiliary_head = None
        if auxiliary:
            c = self.cells[self.aux_index]
            self.auxiliary_head = AuxiliaryHeadCIFAR(c.multiplier * _cell_width(genotype, self.aux_index), num_classes)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_p, num_classes)

    def forward(self, x: torch.Tensor):
        s = self.stem(x)
        return cells_forward(self, s, s)


def _cell_width(g: NetworkGenotype, index: int) -> int:
    i = 0
    for stage in g.layout:
        i += stage.repeats + int(stage.reduce)
        if index < i:
            return stage.width
    raise IndexError(index)


def build_evolved(genotype: "NetworkGenotype | str | os.PathLike | dict", num_classes: int, in_channels: int,
                  auxiliary: bool = False) -> EvolvedNetwork:
    """The network of a network genotype (any form :func:`load_network_genotype` reads)."""
    return EvolvedNetwork(load_network_genotype(genotype), num_classes=num_classes, in_channels=in_channels, auxiliary=auxiliary)


if NET_NAME not in NETWORKS:
    NETWORKS.register(NET_NAME, EvolvedNetwork)

__all__ = ["SPACE", "NET_NAME", "StageSpec", "NetworkGenotype", "EvolvedNetwork", "load_network_genotype", "build_evolved"]
