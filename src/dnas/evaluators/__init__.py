"""Evaluators: how one architecture is scored (a table lookup, short training, a predictor).

``make_evaluator("tabular:nb201_cifar10")`` builds one from a spec string; new kinds register a
factory in :data:`EVALUATORS` (see :mod:`dnas.evaluators.base`).
"""
from dnas.evaluators.base import EVALUATORS, EvalResult, Evaluator, make_evaluator
from dnas.evaluators.tabular import TabularEvaluator, load_records

__all__ = ["EVALUATORS", "EvalResult", "Evaluator", "make_evaluator", "TabularEvaluator", "load_records"]
