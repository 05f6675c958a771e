"""Relaxations: how a supernet edge mixes its candidate ops. Importing this package registers
every built-in relaxation in :data:`RELAXATIONS`."""
from dnas.relax.base import RELAXATIONS, Relaxation, make_relaxation, node_slices, num_edges
from dnas.relax import softmax as _softmax  # noqa: F401  (registers "darts")
from dnas.relax import partial as _partial  # noqa: F401  (registers "pc")

__all__ = ["RELAXATIONS", "Relaxation", "make_relaxation", "node_slices", "num_edges"]
