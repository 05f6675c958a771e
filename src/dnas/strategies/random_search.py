"""Random search: uniform proposals without repeats.

The baseline every NAS method should beat (Li & Talwalkar 2019); on a table it draws the
table's architectures in a random order, so ``n`` queries see ``n`` distinct architectures.
"""
from __future__ import annotations

from dnas.strategies.base import STRATEGIES, DiscreteStrategy, Proposal


@STRATEGIES.register("random")
class RandomSearch(DiscreteStrategy):
    """Uniform random architectures, each evaluated at most once."""

    def ask(self) -> Proposal:
        return Proposal(self.sample_new())
