"""The search-space interface: the one thing strategies, evaluators, predictors, cost models and
the CLI ask about a space.

A space owns everything that depends on what its architectures look like: reading and writing
them (the genotype JSON), sampling, mutation, a categorical encoding for model-based strategies
(BOHB's KDE, trees), a graph encoding for predictors, a distance for shrinkage and diversity,
building the evaluation network, the weight-sharing supernet where it has one, and costs.
Everything else in dnas is written once against this class, so a strategy or predictor that
works on one space works on every space (and on a user's own space) without a branch on the
space's name.

Architectures (``Arch``) are whatever the space chooses, with one rule: they are immutable and
hashable, and equal architectures compare equal (``parse`` canonicalises), so strategies can key
dicts by them and tables can look them up.

Writing a space
---------------
Subclass :class:`SearchSpace`, implement the abstract methods (``parse``, ``to_dict``, ``sample``,
``encode``, ``decode``, ``cardinalities``) and whatever else the space supports, and register it::

    from dnas.spaces.base import SearchSpace, register_space

    @register_space("chain")
    class ChainSpace(SearchSpace):
        ...

``dnas.spaces.get_space("chain")`` then returns an instance, and every strategy, the
``tabular:``/``train:`` evaluators and the predictors take it. ``examples/custom_space.py`` is a
complete example.

Defaults
--------
Methods that have a sensible generic form are implemented here in terms of the categorical view:
``neighbours`` changes one coordinate (spaces with constraints override it), ``distance`` is the
Hamming distance of the encodings, ``graph`` is a chain of one node per decision with one-hot
features, ``to_str``/``hash`` come from ``to_dict``, and ``cost`` counts the built network's
parameters and multiply-adds. ``supernet`` returns ``None`` (no weight sharing).
"""
from __future__ import annotations

import hashlib
import importlib
import json
import random
from abc import ABC, abstractmethod
from typing import Any, Callable, Hashable, Sequence, TypeVar

import numpy as np

from dnas.errors import ConfigError
from dnas.registry import Registry

Arch = Hashable

#: ``name -> SearchSpace subclass`` (instantiated with keyword options by :func:`get_space`).
SPACES: Registry[Callable[..., "SearchSpace"]] = Registry("search space")

#: Built-in spaces and the module that registers each; imported on first use so that importing
#: dnas does not import every space (and the spaces' modules never import each other).
SPACE_MODULES: dict[str, str] = {
    "darts": "dnas.spaces.darts",
    "nb201": "dnas.spaces.nb201",
    "hierarchical": "dnas.supernet_hier",
    "fbnetv2": "dnas.spaces.mobile",
    "generalized": "dnas.spaces.generalized",
    "network": "dnas.evolve.network",
}

#: Supernet builders of spaces not yet expressed as a :class:`SearchSpace` (``name ->
#: builder(cfg, num_classes, in_channels)``); :func:`build_supernet` asks the space first.
SUPERNET_BUILDERS: Registry[Callable[..., Any]] = Registry("supernet")

S = TypeVar("S", bound=type)


def register_space(name: str) -> Callable[[S], S]:
    """Class decorator: register a :class:`SearchSpace` subclass under ``name``."""

    def add(cls: S) -> S:
        cls.name = name  # type: ignore[attr-defined]
        SPACES.register(name, cls, overwrite=True)
        return cls

    return add


def space_names() -> list[str]:
    """Every space that can be asked for: the built-in ones and any registered by the user."""
    return sorted(set(SPACE_MODULES) | set(SPACES.names()))


def get_space(name: "str | SearchSpace", **options: Any) -> "SearchSpace":
    """The space called ``name`` (a :class:`SearchSpace` is returned unchanged).

    Unknown names fail with one line listing the known ones."""
    if isinstance(name, SearchSpace):
        return name
    if not isinstance(name, str):
        raise ConfigError(f"space: expected a space name, got {type(name).__name__}")
    if name not in SPACES and name in SPACE_MODULES:
        importlib.import_module(SPACE_MODULES[name])
    if name not in SPACES:
        raise ConfigError(f"space: unknown search space {name!r}; choose one of: {', '.join(space_names())}")
    return SPACES.get(name, "space")(**options)


def build_supernet(cfg: Any, num_classes: int, in_channels: int):
    """The weight-sharing supernet for ``cfg.space`` under ``cfg.relaxation``."""
    name = cfg.space
    if name in SPACE_MODULES:
        importlib.import_module(SPACE_MODULES[name])
    if name in SUPERNET_BUILDERS and name not in SPACES:
        return SUPERNET_BUILDERS.get(name)(cfg, num_classes, in_channels)
    net = get_space(name).supernet(cfg, num_classes, in_channels)
    if net is None:
        raise ConfigError(f"space: {name} has no weight-sharing supernet; search it with a discrete --strategy")
    return net


class SearchSpace(ABC):
    """Everything dnas needs to know about one space's architectures (see the module docstring)."""

    #: The space's registered name (set by :func:`register_space`).
    name: str = "space"
    #: Relaxations its supernet supports (empty: no weight sharing); ``supernet`` checks it.
    #: Spaces may make it a property over the registered relaxations.
    relaxations: tuple[str, ...] = ()
    #: (channels, height, width) the evaluation network expects by default.
    input_shape: tuple[int, int, int] = (3, 32, 32)

    # ------------------------------------------------------------------ architecture as data
    @abstractmethod
    def parse(self, obj: Any) -> Arch:
        """A validated, canonical architecture from whatever a user or a file gives: the
        space's own object, its genotype dict, its string form or a genotype file path. Bad
        input raises a one-line :class:`~dnas.errors.GenotypeError` naming the field."""

    @abstractmethod
    def to_dict(self, arch: Arch) -> dict:
        """The genotype JSON object (``format``, ``version``, ``space`` and the space's fields);
        ``parse(to_dict(a)) == a``."""

    def to_str(self, arch: Arch) -> str:
        """A short, stable, human-readable form (history rows, records' ``arch`` field)."""
        d = {k: v for k, v in self.to_dict(arch).items() if k not in ("format", "version", "space", "meta")}
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    def hash(self, arch: Arch) -> str:
        """A stable 16-hex-digit hash of the architecture (meta excluded)."""
        return hashlib.sha256(self.to_str(arch).encode()).hexdigest()[:16]

    def validate(self, obj: Any) -> Arch:
        """Alias of :meth:`parse`, for readers who only want the check."""
        return self.parse(obj)

    def op_names(self, arch: Arch) -> list[str]:
        """The candidate-op names the architecture uses, one per decision that picks an op
        (the collapse guard's parameter-free share, reports). Default: none known."""
        return []

    # ------------------------------------------------------------------ sampling and mutation
    @abstractmethod
    def sample(self, rng: random.Random) -> Arch:
        """An architecture drawn uniformly from the valid ones (all randomness from ``rng``)."""

    def neighbours(self, arch: Arch) -> list[Arch]:
        """Every valid architecture one mutation away, in a fixed order (local search,
        evolution). Default: change one coordinate of the categorical encoding."""
        v = list(self.encode(arch))
        out: list[Arch] = []
        seen = {arch}
        for i, c in enumerate(self.cardinalities):
            for x in range(c):
                if x == v[i]:
                    continue
                try:
                    b = self.decode(v[:i] + [x] + v[i + 1 :])
                except (ValueError, ConfigError):
                    continue
                if b not in seen:
                    seen.add(b)
                    out.append(b)
        return out

    def mutate(self, arch: Arch, rng: random.Random) -> Arch:
        """One random neighbour (regularized evolution's mutation)."""
        nb = self.neighbours(arch)
        if not nb:
            return arch
        return nb[rng.randrange(len(nb))]

    # ------------------------------------------------------------------ categorical view
    @property
    @abstractmethod
    def cardinalities(self) -> tuple[int, ...]:
        """Number of choices of each categorical decision; :meth:`encode` returns one index
        per decision and every vector inside these bounds decodes to a valid architecture."""

    @abstractmethod
    def encode(self, arch: Arch) -> list[int]:
        """The architecture as one categorical index per decision."""

    @abstractmethod
    def decode(self, vector: Sequence[int]) -> Arch:
        """The architecture of a vector of categorical indices (inverse of :meth:`encode`)."""

    def onehot(self, arch: Arch) -> np.ndarray:
        """The concatenated one-hot of :meth:`encode` (float32): flat features for MLPs/trees."""
        v = self.encode(arch)
        out = np.zeros(sum(self.cardinalities), np.float32)
        off = 0
        for x, c in zip(v, self.cardinalities):
            out[off + int(x)] = 1.0
            off += c
        return out

    # ------------------------------------------------------------------ predictors
    def graph(self, arch: Arch) -> tuple[np.ndarray, np.ndarray]:
        """``(A, X)``: directed adjacency (``A[u, v] = 1`` for ``u -> v``) and node features of
        an op-node DAG, for graph predictors. Every architecture of a space gives the same
        number of nodes and feature columns. Default: a chain input -> one node per decision
        -> output, each decision node one-hot over all decisions' choices."""
        v = self.encode(arch)
        n = len(v) + 2
        width = sum(self.cardinalities) + 2
        A = np.zeros((n, n), np.float32)
        for i in range(n - 1):
            A[i, i + 1] = 1.0
        X = np.zeros((n, width), np.float32)
        X[0, 0] = 1.0
        X[-1, -1] = 1.0
        off = 1
        for k, (x, c) in enumerate(zip(v, self.cardinalities)):
            X[k + 1, off + int(x)] = 1.0
            off += c
        return A, X

    def all_archs(self, limit: int = 20_000) -> list[Arch] | None:
        """Every architecture, when the space is small enough to list (shrinkage then works on
        the whole space, not only on sampled neighbourhoods); ``None`` above ``limit``.
        Default: every vector of the categorical view, decoded, in lexicographic order."""
        import itertools
        import math

        if math.prod(self.cardinalities) > limit:
            return None
        return list(dict.fromkeys(self.decode(v) for v in itertools.product(*(range(c) for c in self.cardinalities))))

    # ------------------------------------------------------------------ shrinkage / diversity
    def distance(self, a: Arch, b: Arch) -> int:
        """Edit distance between two architectures (0 iff equal). Default: Hamming distance of
        the encodings."""
        return int(sum(x != y for x, y in zip(self.encode(a), self.encode(b))))

    # ------------------------------------------------------------------ networks
    def build(self, arch: Arch, *, num_classes: int = 10, in_channels: int | None = None, **net_opts: Any):
        """The evaluation network (an ``nn.Module`` mapping images to logits)."""
        raise ConfigError(f"space {self.name}: builds no evaluation network")

    def supernet(self, cfg: Any, num_classes: int, in_channels: int):
        """The weight-sharing supernet for a :class:`~dnas.config.SearchConfig` (its
        ``relaxation``), or ``None`` when the space has no weight sharing. A supernet exposes
        ``arch_parameters()``, ``weights()``, ``named_weights()``, ``relax``, ``genotype(**meta)``
        and ``arch_summary()`` (see :class:`dnas.supernet.Supernet`)."""
        return None

    # ------------------------------------------------------------------ architectures inside the supernet
    #: Inputs each node keeps in a derived architecture when the supernet has more incoming
    #: edges than that (DARTS: 2 of 2..5); None: every edge stays (NB201 cuts edges with ``none``).
    #: Selection by perturbation (DARTS-PT) prunes the topology to this many edges per node.
    topology_keep: int | None = None

    def supernet_weights(self, arch: Arch, model: Any) -> "dict[int, Any]":
        """The fixed op weights that make ``model`` (this space's supernet) compute exactly
        ``arch``: ``{id(arch parameter): (edges, ops) tensor}``, one-hot rows for kept edges,
        zero rows for dropped ones. SPOS trains single paths and scores architectures with
        them (:meth:`dnas.relax.base.Relaxation.fixed_weights`)."""
        raise ConfigError(f"space {self.name}: cannot place one architecture in its supernet (single-path training and "
                          "supernet scoring need it); use a relaxation without a selection phase")

    def arch_from_weights(self, model: Any, weights: "dict[int, Any]") -> Arch:
        """The architecture derived from explicit op weights (the inverse of
        :meth:`supernet_weights`; DARTS-PT's projected weights)."""
        raise ConfigError(f"space {self.name}: cannot derive an architecture from supernet weights; use --selection argmax")

    def check_relaxation(self, relaxation: str) -> None:
        """One line when the space's supernet cannot use ``relaxation``."""
        if not self.relaxations:
            raise ConfigError(f"space {self.name}: has no weight-sharing supernet; use a discrete --strategy (random, evolution, ...)")
        if relaxation not in self.relaxations:
            raise ConfigError(
                f"relaxation: {relaxation!r} does not apply to space {self.name}; choose one of: {', '.join(self.relaxations)}"
            )

    # ------------------------------------------------------------------ cost
    def cost(self, arch: Arch, metric: str = "params", *, num_classes: int = 10, image_size: int | None = None,
             **net_opts: Any) -> float:
        """``params`` (millions) or ``macs`` (millions, batch 1) of the evaluation network.
        Spaces with a faster closed form (a table, a formula) override this."""
        from dnas.cost import count_macs, count_params

        if metric not in ("params", "macs"):
            raise ConfigError(f"cost metric: {metric!r} unknown; choose params or macs")
        model = self.build(arch, num_classes=num_classes, **net_opts)
        if metric == "params":
            return count_params(model) / 1e6
        C, H, W = self.input_shape
        if image_size is not None:
            H = W = int(image_size)
        return count_macs(model, (1, net_opts.get("in_channels") or C, H, W)) / 1e6

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
