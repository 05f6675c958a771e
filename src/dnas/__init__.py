"""dnas: differentiable neural architecture search on PyTorch.

The public API mirrors the command line: :func:`dnas.search` runs a search and returns a
result with the genotype and the run directory; genotypes are plain, validated JSON data.
"""
from dnas.errors import DnasError
from dnas.genotype import Genotype, load_genotype, PUBLISHED

__version__ = "0.1.0"


def search(config=None, **overrides):
    """Run an architecture search; see :func:`dnas.api.search`."""
    from dnas.api import search as _search

    return _search(config, **overrides)


def train(genotype, **overrides):
    """Train a genotype from scratch; see :func:`dnas.api.train`."""
    from dnas.api import train as _train

    return _train(genotype, **overrides)


__all__ = ["DnasError", "Genotype", "load_genotype", "PUBLISHED", "search", "train", "__version__"]
