"""Discrete (black-box) search strategies: the interface and the spaces they search.

A discrete strategy proposes whole architectures and learns only from their scores, so it works
unchanged on a table, on short real training or on a predictor (see :mod:`dnas.evaluators`).

Writing a strategy
------------------
Subclass :class:`DiscreteStrategy`, implement :meth:`~DiscreteStrategy.ask` (return a
:class:`Proposal`: an architecture and, for multi-fidelity methods, a budget) and
:meth:`~DiscreteStrategy.tell` (receive its :class:`~dnas.evaluators.base.EvalResult`), and
register the class::

    from dnas.strategies.base import STRATEGIES, DiscreteStrategy, Proposal

    @STRATEGIES.register("bohb")
    class BOHB(DiscreteStrategy):
        def __init__(self, space, *, seed, candidates=None, eta=3, min_budget=1, max_budget=9):
            super().__init__(space, seed=seed, candidates=candidates)
            ...
        def ask(self) -> Proposal:
            return Proposal(arch, budget=current_rung_budget)
        def tell(self, proposal, result) -> None:
            ...

Keyword options given to :func:`dnas.strategies.discrete.run_discrete_search` (and so on the
CLI) are passed to the constructor. The run loop (:meth:`DiscreteStrategy.run`) calls
``ask -> evaluator.evaluate(arch, budget) -> tell`` once per query; a strategy that evaluates
in parallel (Ray) or resumes from a directory overrides :meth:`~DiscreteStrategy.run` and
calls ``report(proposal, result)`` for every finished evaluation so the history is recorded.

Rules every strategy follows:

* all randomness comes from ``self.rng`` (a ``random.Random(seed)``) or generators seeded from
  ``seed``, so the same seed gives the same search;
* when ``candidates`` is given (a tabular evaluator's architectures), every proposal is one of
  them; strategies avoid re-proposing an evaluated architecture (``self.evaluated``), so the
  query count equals the number of distinct architectures paid for.

Spaces
------
A strategy knows a space only through :class:`dnas.spaces.base.SearchSpace`: ``sample``
(uniform random), ``neighbours`` (valid one-mutation changes, for mutation / local search),
``parse`` (string or dict -> hashable architecture), ``encode`` (a vector of categorical
indices, one per decision, with ``cardinalities``) for model-based methods such as BOHB's KDE,
and ``decode`` back. Every registered space (``dnas.spaces.base.space_names()``) works.
"""
from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Sequence

from dnas.errors import ConfigError
from dnas.evaluators.base import EvalResult, Evaluator
from dnas.registry import Registry
from dnas.spaces.base import SearchSpace, get_space


# ---------------------------------------------------------------------------- spaces
# ---------------------------------------------------------------------------- strategies
@dataclass(frozen=True)
class Proposal:
    """An architecture to evaluate, at ``budget`` (``None`` = the evaluator's full fidelity)."""

    arch: Hashable
    budget: float | None = None


Report = Callable[[Proposal, EvalResult], None]


class DiscreteStrategy(ABC):
    """Base class of ask/tell strategies (see the module docstring for the contract)."""

    def __init__(self, space: SearchSpace, *, seed: int, candidates: Sequence[Hashable] | None = None):
        self.space = space
        self.seed = int(seed)
        self.rng = random.Random(self.seed)
        self.candidates: list[Hashable] | None = list(candidates) if candidates is not None else None
        self._candidate_set = set(self.candidates) if self.candidates is not None else None
        self.evaluated: dict[Hashable, float] = {}

    # ------------------------------------------------------------------ helpers
    def allowed(self, arch: Hashable) -> bool:
        """Whether ``arch`` may be proposed (it is in the candidate set, if there is one)."""
        return self._candidate_set is None or arch in self._candidate_set

    def sample_new(self) -> Hashable:
        """A uniformly random architecture not evaluated yet (from the candidates if given)."""
        if self.candidates is not None:
            fresh = [a for a in self.candidates if a not in self.evaluated]
            if not fresh:
                raise ConfigError(
                    f"budget: all {len(self.candidates)} candidate architectures are evaluated; lower --budget"
                )
            return self.rng.choice(fresh)
        for _ in range(10_000):
            a = self.space.sample(self.rng)
            if a not in self.evaluated:
                return a
        raise ConfigError("budget: could not draw an unevaluated architecture in 10000 tries; lower --budget")

    # ------------------------------------------------------------------ contract
    @abstractmethod
    def ask(self) -> Proposal:
        """The next architecture (and budget) to evaluate."""

    def tell(self, proposal: Proposal, result: EvalResult) -> None:
        """Receive the result of ``proposal``; subclasses extend this (call ``super().tell``)."""
        self.evaluated[proposal.arch] = result.accuracy

    def run(self, evaluator: Evaluator, max_queries: int, report: Report) -> None:
        """Evaluate ``max_queries`` proposals one at a time, calling ``report`` after each."""
        for _ in range(max_queries):
            p = self.ask()
            r = evaluator.evaluate(p.arch, p.budget)
            self.tell(p, r)
            report(p, r)


#: ``name -> DiscreteStrategy subclass``; ``cls(space, seed=..., candidates=..., **options)``.
STRATEGIES: Registry[type[DiscreteStrategy]] = Registry("strategy")
