"""Local search and NSGA-II on any space; objectives, fronts and the hypervolume of every run."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dnas.cli import main
from dnas.evaluators.base import EvalResult, make_evaluator
from dnas.spaces.base import get_space
from dnas.strategies.discrete import make_strategy, run_discrete_search
from dnas.strategies.objectives import hypervolume, pareto_front, parse_objectives

NB201 = "tabular:nb201_cifar10"
NB301 = "tabular:nb301_cifar10"


class ConvCount:
    """An analytic evaluator on NB201: accuracy = 10 x the number of 3x3 convs, params = the
    network's exact parameter count. Unimodal, so a hill climber must reach the optimum."""

    space = "nb201"

    def __init__(self) -> None:
        self.calls = 0

    def evaluate(self, arch, budget=None) -> EvalResult:
        self.calls += 1
        n = sum(o == "nor_conv_3x3" for o in arch.ops)
        return EvalResult(accuracy=10.0 * n, cost={"params_m": get_space("nb201").cost(arch, "params")})


def test_local_search_climbs_to_the_optimum_of_a_unimodal_space():
    ev = ConvCount()
    r = run_discrete_search(space="nb201", strategy="local-search", evaluator=ev, budget=160, seed=0)
    assert r["best_accuracy"] == 60.0  # all six edges nor_conv_3x3
    archs = [h["arch"] for h in r["history"]]
    assert len(set(archs)) == len(archs) == ev.calls  # never re-pays an architecture


def test_local_search_moves_by_best_improvement_and_restarts_at_local_optima():
    space = get_space("nb201")
    strat = make_strategy("local-search", "nb201", seed=3, candidates=None)
    ev, path = ConvCount(), []
    for _ in range(200):
        p = strat.ask()
        strat.tell(p, ev.evaluate(p.arch))
        if strat.current is not None and (not path or path[-1] != strat.current):
            path.append(strat.current)
    for a, b in zip(path, path[1:]):
        if strat.evaluated[b] > strat.evaluated[a]:  # a move, not a restart
            assert space.distance(a, b) == 1
            nbhd = [strat.evaluated[n] for n in space.neighbours(a)]
            assert strat.evaluated[b] == max(nbhd)  # the best neighbour, after all were seen
    assert strat.moves >= 6 - sum(o == "nor_conv_3x3" for o in path[0].ops)
    assert strat.restarts >= 1  # the optimum has no better neighbour: a restart follows


@pytest.mark.parametrize("space,table", [("nb201", NB201), ("darts", NB301)])
def test_local_search_on_tables_is_deterministic_and_stays_in_the_table(space, table):
    ev = make_evaluator(table)
    held = set(ev.archs())
    r = run_discrete_search(space=space, strategy="local-search", evaluator=table, budget=60, seed=1)
    by_str = {get_space(space).to_str(a): a for a in held}
    archs = [h["arch"] for h in r["history"]]
    assert len(set(archs)) == 60 and all(a in by_str for a in archs)
    again = run_discrete_search(space=space, strategy="local-search", evaluator=table, budget=60, seed=1)
    assert again["history"] == r["history"]
    median = float(np.median([ev.lookup(a)["val_accuracy"] for a in held]))
    assert r["best_accuracy"] > median


def test_hypervolume_and_front_are_right_on_known_points():
    F = np.array([[0.5, 0.5], [0.25, 0.75], [0.6, 0.6], [1.0, 0.0]])
    assert pareto_front(F) == [0, 1, 3]
    # box (0,0)..(1,1): (0.5,0.5) and (0.25,0.75) dominate 0.25 + 0.25*0.25; (1, 0) lies on the reference
    assert hypervolume(F[[0, 1, 3]], np.zeros(2), np.ones(2)) == pytest.approx(0.3125)
    assert hypervolume(F[[0, 1]] * 10 + 2, np.full(2, 2.0), np.full(2, 12.0)) == pytest.approx(0.3125)  # normalised
    assert parse_objectives("error, params") == ("error", "params")


@pytest.mark.parametrize("strategy", ["nsga2", "random", "local-search"])
def test_every_strategy_reports_front_and_hypervolume_on_the_table(strategy):
    r = run_discrete_search(space="nb201", strategy=strategy, evaluator=NB201, budget=40, seed=0, objectives="error,params")
    assert r["objectives"] == ["error", "params"] and r["hv_reference_from"] == "table"
    ev = make_evaluator(NB201)
    recs = [ev.lookup(a) for a in ev.archs()]
    assert r["hv_reference"] == pytest.approx([100 - min(x["val_accuracy"] for x in recs), max(x["params_m"] for x in recs)])
    assert 0.0 < r["hypervolume"] < 1.0
    again = run_discrete_search(space="nb201", strategy=strategy, evaluator=NB201, budget=40, seed=0, objectives="error,params")
    assert again["history"] == r["history"] and again["hypervolume"] == r["hypervolume"]  # same seed, same run
    assert len({h["arch"] for h in r["history"]}) == 40
    F = np.array([[h["objectives"]["error"], h["objectives"]["params"]] for h in r["history"]])
    front = {(round(e, 6), round(p, 6)) for e, p in F[pareto_front(F)]}
    assert front == {(f["error"], f["params"]) for f in r["front"]}


def test_nsga2_on_an_open_space_proposes_valid_unique_children():
    """No table: children come from crossover of encodings and space.mutate, always valid."""
    space = get_space("darts")

    class Analytic:
        def evaluate(self, arch, budget=None):
            ops = space.op_names(arch)
            return EvalResult(accuracy=10.0 * sum(o.startswith("sep") for o in ops) / len(ops) * 10,
                              cost={"params_m": float(sum(o.startswith(("sep", "dil")) for o in ops))})

    r = run_discrete_search(space="darts", strategy="nsga2", evaluator=Analytic(), budget=50, seed=0)
    archs = [h["arch"] for h in r["history"]]
    assert len(set(archs)) == 50
    strat = make_strategy("nsga2", "darts", seed=0)
    ev = Analytic()
    for _ in range(40):
        p = strat.ask()
        assert space.parse(json.loads(json.dumps(space.to_dict(p.arch)))) == p.arch  # a valid DARTS cell
        strat.tell(p, ev.evaluate(p.arch))
    assert strat.generation >= 2
    assert r["objectives"] == ["error", "params"] and r["hv_reference_from"] == "observed"


def test_nsga2_beats_random_hypervolume_on_nb201_records():
    hv = {s: [run_discrete_search(space="nb201", strategy=s, evaluator=NB201, budget=100, seed=k,
                                  objectives="error,params")["hypervolume"] for k in range(6)]
          for s in ("nsga2", "random")}
    assert np.mean(hv["nsga2"]) > np.mean(hv["random"])


def cli(*args: str) -> int:
    """``dnas ARGS`` in this process (this source tree), its exit status."""
    try:
        return main(list(args))
    except SystemExit as e:  # click's standalone mode exits after a command
        return int(e.code or 0)


def test_cli_objectives_json_and_bad_objective(capsys):
    assert cli("search", "--space", "darts", "--strategy", "nsga2", "--evaluator", NB301, "--budget", "30",
               "--objectives", "error,macs", "--json") == 0
    d = json.loads(capsys.readouterr().out)
    assert d["objectives"] == ["error", "macs"] and 0 <= d["hypervolume"] <= 1 and d["queries"] == 30
    assert cli("search", "--space", "nb201", "--strategy", "random", "--evaluator", NB201,
               "--objectives", "error,speed") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: objectives: unknown speed") and len(err.strip().splitlines()) == 1


def test_shrink_asks_the_space_darts_records_and_a_roundtrip(tmp_path, capsys):
    """``dnas shrink --space darts`` on the NAS-Bench-301 records: pockets of valid DARTS cells,
    distances from the space, and a pockets file that reads back equal."""
    from dnas.shrink.space import ShrunkSpace

    out = tmp_path / "pockets.json"
    assert cli("shrink", "--space", "darts", "--evaluator", NB301, "--no-oneshot", "--initial", "20", "--pockets", "3",
               "--radius", "14", "--min-distance", "15", "--samples", "10", "--max-rounds", "2", "--out", str(out),
               "--json") == 0
    d = json.loads(capsys.readouterr().out)
    assert d["full_size"] == 300 and 0 < d["size"] < 300 and d["pockets"] <= 3 and d["tau_shrunk"] is None
    sh = ShrunkSpace.load(out)
    space = get_space("darts")
    assert sh.space == "darts" and len(sh.pockets) == d["pockets"]
    for p in sh.pockets:
        assert space.parse(space.to_dict(p.center)) == p.center
        assert all(space.distance(p.center, m) <= 14 for m in p.members)
    assert sh.edge_mask().shape == (len(space.cardinalities), max(space.cardinalities))
