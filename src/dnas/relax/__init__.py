"""Relaxations: how a supernet edge mixes its candidate ops. Importing this package registers
every built-in relaxation in :data:`RELAXATIONS`."""
from dnas.relax.base import RELAXATIONS, Relaxation, make_relaxation, node_slices, num_edges, relaxation_from_config
from dnas.relax import softmax as _softmax  # noqa: F401  (registers "darts")
from dnas.relax import partial as _partial  # noqa: F401  (registers "pc")
from dnas.relax import gdas as _gdas  # noqa: F401  (registers "gdas")
from dnas.relax import msg as _msg  # noqa: F401  (registers "msg")
from dnas.relax import topo as _topo  # noqa: F401  (registers "topo" and the "topo_pa" architecture term)
from dnas.relax import masking as _masking  # noqa: F401  (registers "fbnetv2": Gumbel-softmax, FBNetV2 masks)
from dnas.relax import drnas as _drnas  # noqa: F401  (registers "drnas": Dirichlet samples, KL anchor)
from dnas.relax import snas as _snas  # noqa: F401  (registers "snas": soft Gumbel-softmax samples)
from dnas.relax import fairdarts as _fairdarts  # noqa: F401  (registers "fairdarts": sigmoid weights, zero-one loss)
from dnas.relax import betadarts as _betadarts  # noqa: F401  (registers "beta-darts": beta-decay regulariser)
from dnas.relax import darts_minus as _darts_minus  # noqa: F401  (registers "darts-minus": decaying auxiliary skip)
from dnas.relax import sdarts as _sdarts  # noqa: F401  (registers "sdarts-rs", "sdarts-adv": perturbed weight steps)
from dnas.relax import spos as _spos  # noqa: F401  (registers "spos": uniform single-path training)
from dnas.relax import proxyless as _proxyless  # noqa: F401  (registers "proxyless": binary gates, two paths)

__all__ = ["RELAXATIONS", "Relaxation", "make_relaxation", "node_slices", "num_edges", "relaxation_from_config"]
