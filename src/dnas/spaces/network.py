"""The evolved-network space behind ``dnas evolve`` as a :class:`~dnas.spaces.base.SearchSpace`.

A network stacks stages of DARTS cell *blocks* (see :mod:`dnas.evolve.network`); the integer
encoding of :class:`dnas.evolve.encoding.NetworkSpace` is its categorical view
(``[stem, block_0, repeats_0, width_0, reduce_0, ...]``). That encoding has one constraint (at
most ``max_reductions`` stages reduce, so small inputs are not pooled away); ``decode`` repairs
a vector that breaks it the way the NSGA-II operators do (the latest extra reduction flags are
cleared), so every in-bounds vector still decodes to a valid network, ``sample`` is uniform over
the valid vectors (rejection), and ``neighbours`` are the distinct valid networks one gene away.

Registering this here, rather than in :mod:`dnas.evolve`, lets random search, evolution, BOHB
or local search run on the network level with any evaluator, not only NSGA-II.
"""
from __future__ import annotations

import random
from typing import Any, Sequence

import numpy as np
import torch.nn as nn

from dnas.errors import ConfigError, GenotypeError
from dnas.evolve.encoding import NetworkSpace
from dnas.evolve.network import EvolvedNetwork, NetworkGenotype
from dnas.genotype import Genotype, load_genotype
from dnas.spaces.base import SearchSpace, register_space


@register_space("network")
class EvolvedNetworkSpace(SearchSpace):
    """Networks assembled from ``blocks`` (published names or genotype files of DARTS cells)."""

    def __init__(self, blocks: Sequence[str] = ("DARTS_V2", "PC_DARTS_cifar"), widths: Sequence[int] = (8, 16, 24, 32),
                 stem_widths: Sequence[int] = (8, 16, 24), stages: int = 3, max_repeats: int = 3,
                 max_reductions: int = 2) -> None:
        cells = []
        for b in blocks:
            g = load_genotype(b)
            if g.is_hierarchical or g.space != "darts":
                raise ConfigError(f"blocks: {b!r} is not a plain DARTS cell genotype")
            cells.append(Genotype(g.normal, g.normal_concat, g.reduce, g.reduce_concat))
        self.net = NetworkSpace(tuple(cells), tuple(widths), tuple(stem_widths), stages, max_repeats, max_reductions,
                                block_names=tuple(str(b) for b in blocks))

    # ------------------------------------------------------------------ data
    def parse(self, obj: Any) -> NetworkGenotype:
        g = self.read_genotype(obj) if not isinstance(obj, NetworkGenotype) else obj
        try:
            self.net.encode(g)
        except ConfigError as e:
            raise GenotypeError(f"network genotype: not in this space ({e})") from None
        return g

    def read_genotype(self, obj: Any) -> NetworkGenotype:
        from dnas.evolve.network import load_network_genotype

        return load_network_genotype(obj)

    def to_dict(self, arch: NetworkGenotype) -> dict:
        return arch.to_dict(with_meta=False)

    def to_str(self, arch: NetworkGenotype) -> str:
        return "net:" + ",".join(str(int(x)) for x in self.net.encode(arch))

    def hash(self, arch: NetworkGenotype) -> str:
        return arch.hash()

    def describe(self, arch: NetworkGenotype) -> list[str]:
        return [str(arch)] + [f"stage {k + 1}: block {s.block}, {s.repeats} cell(s) at width {s.width}"
                              + (", after a reduction cell" if s.reduce else "") for k, s in enumerate(arch.layout)]

    # ------------------------------------------------------------------ categorical view
    @property
    def cardinalities(self) -> tuple[int, ...]:
        return tuple(int(u) + 1 for u in self.net.upper)

    def encode(self, arch: NetworkGenotype) -> list[int]:
        return [int(x) for x in self.net.encode(arch)]

    def decode(self, vector: Sequence[int]) -> NetworkGenotype:
        v = np.asarray([int(x) for x in vector], dtype=np.int64)
        if v.shape != (self.net.n_var,) or np.any(v < 0) or np.any(v > self.net.upper):
            raise ValueError(f"network space: vector {list(v)} outside the cardinalities")
        return self.net.decode(self.net.repair(v))

    def sample(self, rng: random.Random) -> NetworkGenotype:
        while True:  # uniform over valid vectors (most are valid: rejection is cheap)
            v = [rng.randrange(c) for c in self.cardinalities]
            if self.net.is_valid(v):
                return self.net.decode(v)

    # ------------------------------------------------------------------ networks
    def build(self, arch: NetworkGenotype, *, num_classes: int = 10, in_channels: int | None = None,
              auxiliary: bool = False, **_: Any) -> nn.Module:
        # any valid network genotype builds (it carries its own blocks), not only this space's
        return EvolvedNetwork(self.read_genotype(arch), num_classes=num_classes, in_channels=in_channels or self.input_shape[0],
                              auxiliary=auxiliary)
