"""BANANAS (White, Neiswanger & Savani, AAAI 2021, "BANANAS: Bayesian Optimization with Neural
Architectures for Neural Architecture Search").

Bayesian optimisation whose surrogate is an *ensemble of neural predictors* (the paper: 5
feed-forward nets on the path encoding, trained independently; their spread is the
uncertainty), with independent Thompson sampling as the acquisition, optimised over
candidates made by mutating the best architectures so far; ``k`` architectures are evaluated
per fit. Defaults follow the paper / NASLib's configuration: ``num_init=10``, ``k=10``,
``num_candidates=100``, ``num_arches_to_mutate=2``, ``max_mutations=1``, ensemble of 5, ITS.

Our choices: the members are dnas's MLP predictor (MSE loss, 200 full-batch epochs) on the
space's one-hot encoding - the path encoding is specific to cell DAGs, the one-hot exists for
every space (``predictor="gcn"`` uses the space's graph instead); ``acquisition="ei"`` gives
the paper's expected-improvement variant. The loop itself is :mod:`dnas.strategies.guided`;
``warm_start="zc:PROXY"`` picks the initial design by a zero-cost proxy and
``features="graph+zc"`` adds the proxy scores to the predictor's inputs.
"""
from __future__ import annotations

from dnas.strategies.base import STRATEGIES
from dnas.strategies.guided import PredictorGuided


@STRATEGIES.register("bananas")
class BANANAS(PredictorGuided):
    """Ensemble-of-MLPs BO with independent Thompson sampling over mutated candidates."""

    default_predictor = "mlp"
    default_acquisition = "its"
    default_ensemble = 5
    default_loss = "mse"
