"""BOHB: the Hyperband schedule, the KDE model, determinism, and the discrete strategies."""
from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
from ConfigSpace import (
    CategoricalHyperparameter,
    Configuration,
    ConfigurationSpace,
    OrdinalHyperparameter,
    UniformFloatHyperparameter,
)

from dnas.errors import ConfigError
from dnas.strategies.bohb import BOHB, budget_ladder, hyperband_brackets
from dnas.strategies.kde import ProductKDE
from dnas.trials import SerialExecutor

TABLE = "nb201_cifar10"  # the NB201 records shipped with dnas


# ---------------------------------------------------------------------------- schedule
def test_brackets_match_the_published_table():
    # BOHB / HpBandSter, min 1, max 9, eta 3: s_max = 2, most aggressive bracket first.
    got = [(b.s, b.num_configs, b.budgets) for b in hyperband_brackets(1, 9, 3)]
    assert got == [
        (2, (9, 3, 1), (1.0, 3.0, 9.0)),
        (1, (3, 1), (3.0, 9.0)),
        (0, (3,), (9.0,)),
    ]
    # R = 81: n0 = floor(5 / (s + 1)) * 3**s (HpBandSter's floor, not Hyperband's ceil)
    got81 = [(b.num_configs, b.budgets[0]) for b in hyperband_brackets(1, 81, 3)]
    assert got81 == [((81, 27, 9, 3, 1), 1.0), ((27, 9, 3, 1), 3.0), ((9, 3, 1), 9.0), ((6, 2), 27.0), ((5,), 81.0)]
    assert budget_ladder(1, 1) == [1.0]
    with pytest.raises(ConfigError, match="min_budget"):
        budget_ladder(0, 9)


def _toy_space() -> ConfigurationSpace:
    cs = ConfigurationSpace()
    cs.add([
        UniformFloatHyperparameter("x", -5.0, 10.0),
        UniformFloatHyperparameter("y", 0.0, 15.0),
        CategoricalHyperparameter("c", ["a", "b", "c", "d"]),
        OrdinalHyperparameter("o", [0, 1, 2, 3, 4, 5]),
    ])
    return cs


def _toy_loss(cfg, budget) -> float:
    x, y = cfg["x"], cfg["y"]
    branin = (y - 5.1 / (4 * np.pi**2) * x**2 + 5 / np.pi * x - 6) ** 2 + 10 * (1 - 1 / (8 * np.pi)) * np.cos(x) + 10
    return branin / 10 + {"a": 0.0, "b": 0.3, "c": 0.6, "d": 0.9}[cfg["c"]] + 0.1 * abs(int(cfg["o"]) - 2)


def test_run_follows_the_brackets_and_promotes_the_best_third():
    bohb = BOHB(_toy_space(), min_budget=1, max_budget=9, eta=3, seed=0)
    # noise that shrinks with the budget, so rung results differ from one budget to the next
    res = bohb.run(lambda c, b: _toy_loss(c, b) + np.sin(7 * c["x"]) / b, max_brackets=4)
    assert res.brackets == 4 and res.evaluations == 13 + 4 + 3 + 13
    per_bracket = Counter((h["config_id"][0], h["budget"]) for h in res.history)
    assert per_bracket == Counter({(0, 1.0): 9, (0, 3.0): 3, (0, 9.0): 1, (1, 3.0): 3, (1, 9.0): 1,
                                   (2, 9.0): 3, (3, 1.0): 9, (3, 3.0): 3, (3, 9.0): 1})
    rung0 = [h for h in res.history if h["config_id"][0] == 0 and h["rung"] == 0]
    rung1 = {tuple(h["config_id"]) for h in res.history if h["config_id"][0] == 0 and h["rung"] == 1}
    best3 = {tuple(h["config_id"]) for h in sorted(rung0, key=lambda h: h["loss"])[:3]}
    assert rung1 == best3
    # the incumbent is judged on the largest budget
    assert res.incumbent_budget == 9.0
    assert res.incumbent_loss == min(h["loss"] for h in res.history if h["budget"] == 9.0)


# ---------------------------------------------------------------------------- model
def test_kde_is_a_proper_density_and_sampling_matches_its_pmf():
    rng = np.random.default_rng(0)
    data = np.column_stack([rng.integers(0, 3, 12), rng.integers(0, 4, 12)]).astype(float)
    kde = ProductKDE(data, "uo", [3, 4])
    grid = np.array(list(itertools.product(range(3), range(4))), dtype=float)
    assert kde.pdf(grid).sum() == pytest.approx(1.0)
    assert kde.sampling_pdf(grid, 3.0).sum() == pytest.approx(1.0)
    draws = kde.sample(np.random.default_rng(1), 4000, 3.0)
    freq = np.array([np.mean((draws == g).all(axis=1)) for g in grid])
    assert np.abs(freq - kde.sampling_pdf(grid, 3.0)).max() < 0.03
    # continuous: the density integrates to ~1 and all draws stay on [0, 1]
    cont = ProductKDE(rng.random((10, 1)), "c", [0])
    xs = np.linspace(-1, 2, 3001)[:, None]
    assert np.trapezoid(cont.pdf(xs), xs[:, 0]) == pytest.approx(1.0, abs=1e-3)
    s = cont.sample(np.random.default_rng(2), 500, 3.0)
    assert s.min() >= 0.0 and s.max() <= 1.0


def test_kde_proposals_beat_random_at_equal_evaluations():
    # minimum 0.0398 (Branin's optimum, category "a", ordinal 2)
    def best(rf: float, seed: int) -> float:
        bohb = BOHB(_toy_space(), min_budget=1, max_budget=1, seed=seed, random_fraction=rf)
        return bohb.run(_toy_loss, max_evaluations=60).incumbent_loss

    seeds = range(6)
    model = np.array([best(1 / 3, s) for s in seeds])
    random = np.array([best(1.0, s) for s in seeds])  # the same loop with every proposal random
    assert model.mean() < 0.75 * random.mean(), (model, random)
    assert (model <= random).sum() >= 4, (model, random)


def test_same_seed_same_run_and_different_seed_differs():
    def hist(seed):
        bohb = BOHB(_toy_space(), min_budget=1, max_budget=9, seed=seed)
        return [(h["config"], h["budget"], h["loss"]) for h in bohb.run(_toy_loss, max_evaluations=60).history]

    assert hist(3) == hist(3)
    assert hist(3) != hist(4)


def test_model_kicks_in_on_a_conditional_space_and_configs_stay_valid():
    from dnas.spaces.generalized import structure_space

    cs = structure_space(3, max_depth=3, widths=(8, 16, 32))

    def loss(cfg, budget):  # prefers 2 stages, wide first stage
        return abs(cfg["num_stages"] - 2) + (32 - cfg["width_1"]) / 16 + 0.1 * cfg["depth_1"]

    bohb = BOHB(cs, min_budget=1, max_budget=1, seed=0)
    res = bohb.run(loss, max_evaluations=60)
    assert any(h["model_based"] for h in res.history)
    for h in res.history:
        Configuration(cs, values=h["config"])  # raises if an inactive value is set or one is missing
    assert res.incumbent_loss <= 0.3


def test_failed_trials_count_as_infinite_loss_and_are_kept():
    calls = Counter()

    def flaky(cfg, budget):
        calls[cfg["c"]] += 1
        if cfg["c"] == "d":
            raise RuntimeError("diverged")
        return _toy_loss(cfg, budget)

    bohb = BOHB(_toy_space(), min_budget=1, max_budget=1, seed=0)
    res = bohb.run(flaky, executor=SerialExecutor(max_retries=1), max_evaluations=30)
    failed = [h for h in res.history if h["config"]["c"] == "d"]
    assert failed and all(h["loss"] == float("inf") and "diverged" in h["error"] and h["attempts"] == 2 for h in failed)
    assert res.evaluations == 30 and np.isfinite(res.incumbent_loss)


# ---------------------------------------------------------------------------- discrete strategies
def test_bohb_strategy_on_the_nb201_table_is_deterministic_and_stays_in_the_table():
    from dnas.evaluators.tabular import TabularEvaluator
    from dnas.strategies.discrete import run_discrete_search

    table = TabularEvaluator(TABLE)
    runs = [run_discrete_search(space="nb201", strategy="bohb", evaluator=f"tabular:{TABLE}", budget=40, seed=7)
            for _ in range(2)]
    archs = [h["arch"] for h in runs[0]["history"]]
    assert archs == [h["arch"] for h in runs[1]["history"]]
    assert runs[0]["queries"] == 40 and len(set(archs)) == 40
    assert all(a in table for a in archs)
    assert runs[0]["best_accuracy"] == max(h["accuracy"] for h in runs[0]["history"])


def test_bohb_gcn_ranks_extra_candidates_with_a_trained_predictor():
    from dnas.evaluators.tabular import TabularEvaluator
    from dnas.strategies.discrete import make_strategy

    table = TabularEvaluator(TABLE)
    strat = make_strategy("bohb-gcn", "nb201", seed=0, candidates=table.archs(), refit_every=10,
                          predictor_epochs=60)
    history = []
    strat.run(table, 24, lambda p, r: history.append((p.arch, r.accuracy)))
    assert len(history) == 24 and len({a for a, _ in history}) == 24
    assert strat.predictor_fits >= 2  # trained at 10 and 20 results, then used to rank proposals


def test_bohb_strategy_rejects_half_a_budget_range():
    from dnas.strategies.discrete import make_strategy

    with pytest.raises(ConfigError, match="min_budget"):
        make_strategy("bohb", "nb201", seed=0, min_budget=1)
