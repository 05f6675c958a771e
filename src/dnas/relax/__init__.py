"""Relaxations: how a supernet edge mixes its candidate ops. Importing this package registers
every built-in relaxation in :data:`RELAXATIONS`."""
from dnas.relax.base import RELAXATIONS, Relaxation, make_relaxation, node_slices, num_edges, relaxation_from_config
from dnas.relax import softmax as _softmax  # noqa: F401  (registers "darts")
from dnas.relax import partial as _partial  # noqa: F401  (registers "pc")
from dnas.relax import gdas as _gdas  # noqa: F401  (registers "gdas")
from dnas.relax import msg as _msg  # noqa: F401  (registers "msg")
from dnas.relax import topo as _topo  # noqa: F401  (registers "topo" and the "topo_pa" architecture term)
from dnas.relax import masking as _masking  # noqa: F401  (registers "fbnetv2": Gumbel-softmax, FBNetV2 masks)

__all__ = ["RELAXATIONS", "Relaxation", "make_relaxation", "node_slices", "num_edges", "relaxation_from_config"]
