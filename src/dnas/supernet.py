"""The one-shot network of the DARTS cell space under a relaxation (defined with its space in
:mod:`dnas.spaces.darts`; kept importable from here)."""
from dnas.archsplit import ArchWeightSplit
from dnas.spaces.darts import SearchCell, Supernet

__all__ = ["ArchWeightSplit", "SearchCell", "Supernet"]
