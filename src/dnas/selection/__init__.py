"""Selections: how the genotype is chosen from a trained supernet (``--selection``). Importing
this package registers argmax, evolution and random (SPOS / RSPS search over the supernet)
and darts-pt (perturbation-based selection)."""
from dnas.selection.base import SELECTIONS, run_selection, selection_name
from dnas.selection import oneshot as _oneshot  # noqa: F401  (registers "evolution", "random")
from dnas.selection import darts_pt as _darts_pt  # noqa: F401  (registers "darts-pt")

__all__ = ["SELECTIONS", "run_selection", "selection_name"]
