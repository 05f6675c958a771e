"""Network-level multi-objective search (Enhanced-gradient DAS, Zhang et al. 2021).

Two levels: cell searches with a complexity term give candidate *blocks*
(:mod:`dnas.evolve.blocks`); NSGA-II (pymoo) then assembles networks from them, a sequence of
stages each with its own block, depth and width (:mod:`dnas.evolve.encoding`,
:mod:`dnas.evolve.network`), scoring each by short real training and its cost
(:mod:`dnas.evolve.problem`) and keeping the Pareto front (:mod:`dnas.evolve.run`).

>>> from dnas.evolve import evolve
>>> result = evolve("runs/evolve", data="digits", blocks=["DARTS_V2", "PC_DARTS_cifar"], population=6, generations=3)
>>> result.front[0]["objectives"], result.front[0]["file"]
"""
from dnas.evolve.network import EvolvedNetwork, NetworkGenotype, StageSpec, build_evolved, load_network_genotype
from dnas.evolve.encoding import NetworkSpace
from dnas.evolve.blocks import Block, resolve_blocks, search_blocks
from dnas.evolve.problem import NetworkProblem, evaluate_candidate
from dnas.evolve.run import EvolveConfig, EvolveResult, evolve, evolve_config, pareto_front, run_evolution

__all__ = [
    "NetworkGenotype", "StageSpec", "EvolvedNetwork", "build_evolved", "load_network_genotype", "NetworkSpace",
    "Block", "resolve_blocks", "search_blocks", "NetworkProblem", "evaluate_candidate", "EvolveConfig",
    "EvolveResult", "evolve", "evolve_config", "pareto_front", "run_evolution",
]
