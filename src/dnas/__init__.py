"""dnas: differentiable neural architecture search on PyTorch.

The public API mirrors the command line: :func:`dnas.search` runs a search and returns a
result with the genotype and the run directory; genotypes are plain, validated JSON data.
Spaces and black-box strategies compose the same way::

    space = dnas.get_space("nb201")                   # dnas.space_names(): every space
    net = space.build(space.sample(random.Random(0)))  # an nn.Module for any architecture
    r = dnas.run_strategy(space, "local-search", "tabular:nb201_cifar10", budget=40)
"""
from dnas.errors import DnasError
from dnas.genotype import Genotype, load_genotype, PUBLISHED
from dnas.spaces.base import SearchSpace, get_space, register_space, space_names

__version__ = "0.1.0"


def search(config=None, **overrides):
    """Run an architecture search; see :func:`dnas.api.search`."""
    from dnas.api import search as _search

    return _search(config, **overrides)


def train(genotype, **overrides):
    """Train a genotype from scratch; see :func:`dnas.api.train`."""
    from dnas.api import train as _train

    return _train(genotype, **overrides)


def run_strategy(space, strategy, evaluator, **options):
    """Run a discrete strategy on a space; see :func:`dnas.api.run_strategy`."""
    from dnas.api import run_strategy as _run

    return _run(space, strategy, evaluator, **options)


def strategy_names():
    """Every registered discrete strategy; see :func:`dnas.api.strategy_names`."""
    from dnas.api import strategy_names as _names

    return _names()


__all__ = ["DnasError", "Genotype", "load_genotype", "PUBLISHED", "search", "train", "run_strategy", "strategy_names",
           "SearchSpace", "get_space", "register_space", "space_names", "__version__"]
