"""Evaluation networks built from a genotype, by name.

``NETWORKS`` maps a network name to a class ``cls(genotype, C, layers, num_classes,
in_channels, auxiliary, drop_path_prob)``; other search spaces add their own (e.g. "nb201")
with ``NETWORKS.register("name", cls)``. Classes with ``darts_genotype = True`` receive a
resolved :class:`~dnas.genotype.Genotype` (a published name or JSON path is loaded first);
others receive the genotype spec exactly as given (e.g. an NB201 arch string).

Every network has a settable ``drop_path_prob`` attribute (the trainer ramps it) and returns
logits in eval mode, ``(logits, logits_aux_or_None)`` in train mode.
"""
from __future__ import annotations

from typing import Any, Callable

import torch.nn as nn

from dnas.errors import ConfigError
from dnas.genotype import Genotype, load_genotype
from dnas.models.cell import Cell, drop_path
from dnas.models.cifar import NetworkCIFAR
from dnas.models.heads import AuxiliaryHeadCIFAR, AuxiliaryHeadImageNet
from dnas.models.imagenet import NetworkImageNet
from dnas.models.hierarchical import HIERARCHICAL_NETS, HierarchicalCIFAR, HierarchicalImageNet
from dnas.registry import Registry

NETWORKS: Registry[Callable[..., nn.Module]] = Registry("network")
NETWORKS.register("cifar", NetworkCIFAR)
NETWORKS.register("imagenet", NetworkImageNet)
NETWORKS.register("hier-cifar", HierarchicalCIFAR)
NETWORKS.register("hier-imagenet", HierarchicalImageNet)


def build_network(
    genotype: Genotype | str | Any,
    *,
    net: str = "cifar",
    C: int,
    layers: int,
    num_classes: int,
    in_channels: int = 3,
    auxiliary: bool = False,
    drop_path_prob: float = 0.0,
) -> nn.Module:
    """Build the evaluation network ``net`` for ``genotype`` (for the DARTS networks a Genotype
    or anything :func:`dnas.genotype.load_genotype` accepts)."""
    cls = NETWORKS.get(net, "net")
    if getattr(cls, "darts_genotype", False):
        genotype = load_genotype(genotype)
        own = getattr(genotype, "network", None)  # genotypes that fix their own network (evolved)
        if own is not None:
            cls = NETWORKS.get(own, "net")
        elif genotype.is_hierarchical and net in HIERARCHICAL_NETS:  # per-stage cells / stage layouts
            cls = NETWORKS.get(HIERARCHICAL_NETS[net], "net")
        if C < 2 or C % 2:
            raise ConfigError(f"init_channels: must be an even integer >= 2 (factorized reduce halves it), got {C}")
    if layers < 1:
        raise ConfigError(f"layers: must be >= 1, got {layers}")
    if num_classes < 2:
        raise ConfigError(f"num_classes: must be >= 2, got {num_classes}")
    if in_channels < 1:
        raise ConfigError(f"in_channels: must be >= 1, got {in_channels}")
    if not 0.0 <= drop_path_prob < 1.0:
        raise ConfigError(f"drop_path_prob: must be in [0, 1), got {drop_path_prob}")
    return cls(
        genotype,
        C=C,
        layers=layers,
        num_classes=num_classes,
        in_channels=in_channels,
        auxiliary=auxiliary,
        drop_path_prob=drop_path_prob,
    )


__all__ = [
    "NETWORKS",
    "build_network",
    "Cell",
    "drop_path",
    "NetworkCIFAR",
    "NetworkImageNet",
    "AuxiliaryHeadCIFAR",
    "AuxiliaryHeadImageNet",
    "HierarchicalCIFAR",
    "HierarchicalImageNet",
]
