"""Search-space shrinkage (LISSNAS): locality-based extraction of diverse, well-performing pockets.

* :mod:`~dnas.shrink.distance`: edit distance between NB201 archs / DARTS genotypes (a metric);
* :mod:`~dnas.shrink.locality`: how accuracy similarity falls with distance;
* :mod:`~dnas.shrink.pockets`: the shrinkage (:func:`shrink`, :class:`ShrinkConfig`);
* :mod:`~dnas.shrink.space`: the result as a space (:class:`ShrunkSpace`), evaluator wrappers for
  searching it (:class:`RestrictedEvaluator`, :func:`search_shrunk`);
* :mod:`~dnas.shrink.oneshot`: an NB201 weight-sharing supernet that trains on pocket members only;
* :mod:`~dnas.shrink.metrics`: size, quality, diversity and one-shot Kendall tau;
* :mod:`~dnas.shrink.run`: all of it as one experiment (``dnas shrink``).
"""
from dnas.shrink.distance import canonical_darts, darts_distance, distance, nb201_distance, pairwise
from dnas.shrink.locality import locality_report
from dnas.shrink.metrics import ranking_taus, space_metrics
from dnas.shrink.pockets import FiniteUniverse, NeighbourUniverse, ShrinkConfig, select_seeds, shrink
from dnas.shrink.run import run_shrink, true_accuracies
from dnas.shrink.space import Pocket, PredictorEvaluator, RestrictedEvaluator, ShrunkSpace, search_shrunk

__all__ = [
    "canonical_darts", "darts_distance", "distance", "nb201_distance", "pairwise", "locality_report",
    "ranking_taus", "space_metrics", "FiniteUniverse", "NeighbourUniverse", "ShrinkConfig", "select_seeds",
    "shrink", "run_shrink", "true_accuracies", "Pocket", "PredictorEvaluator", "RestrictedEvaluator",
    "ShrunkSpace", "search_shrunk",
]
