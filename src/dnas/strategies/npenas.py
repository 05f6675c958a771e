"""NPENAS (Wei, Niu, Tang, Wang & Liang, IEEE TNNLS 2022, "NPENAS: Neural Predictor Guided
Evolution for Neural Architecture Search").

Evolution whose mutation step is filtered by a neural predictor: the best architectures are
mutated into a large candidate pool, a graph predictor scores the pool, and only the top ``k``
are evaluated. The paper has two predictors: NPENAS-NP, a GIN regressor whose prediction is
used directly (exploit only; NASLib's ``Npenas`` implements this one), and NPENAS-BO, a graph
network that predicts a mean and a standard deviation, sampled by independent Thompson
sampling.

Ours: ``acquisition="exploit"`` (default, NPENAS-NP) with dnas's GCN on the space's graph
(bidirectional graph convolutions, a close relative of the paper's GIN: both sum neighbours'
features through learned layers), one model trained with MSE; ``acquisition="its"`` with
``ensemble=3`` is our NPENAS-BO, where the ensemble spread stands in for the paper's learned
variance head. Candidate pool and defaults as BANANAS (``num_init=10``, ``k=10``, 100
candidates from the 2 best); the loop is :mod:`dnas.strategies.guided`.
"""
from __future__ import annotations

from dnas.strategies.base import STRATEGIES
from dnas.strategies.guided import PredictorGuided


@STRATEGIES.register("npenas")
class NPENAS(PredictorGuided):
    """Predictor-guided evolution: GCN-filtered mutations of the best architectures."""

    default_predictor = "gcn"
    default_acquisition = "exploit"
    default_ensemble = 1
    default_loss = "mse"
