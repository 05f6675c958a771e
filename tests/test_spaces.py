"""The one search-space interface: every space answers the same questions, and the parts built on
it (strategies, tabular evaluator, predictors, bilevel search) run on every space."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
from typer.testing import CliRunner

from dnas.errors import ConfigError, GenotypeError
from dnas.spaces.base import SearchSpace, get_space, space_names


@pytest.mark.parametrize("name", ["darts", "nb201"])
def test_space_contract(name):
    space = get_space(name)
    assert isinstance(space, SearchSpace) and space.name == name
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(300)]
    for a in archs[:60]:
        assert space.parse(space.to_dict(a)) == a  # JSON round trip
        assert space.decode(space.encode(a)) == a  # categorical round trip
        assert all(0 <= x < c for x, c in zip(space.encode(a), space.cardinalities))
        nb = space.neighbours(a)
        assert nb and a not in nb and len(set(nb)) == len(nb)
        assert all(space.parse(b) == b and space.distance(a, b) >= 1 for b in nb)  # valid, one change away
        assert space.distance(a, a) == 0
        A, X = space.graph(a)
        assert A.shape[0] == A.shape[1] == X.shape[0] and np.allclose(np.triu(A, 1), A)
        assert space.hash(a) == space.hash(space.parse(space.to_dict(a)))
    # every vector inside the cardinalities decodes to a valid architecture
    for _ in range(200):
        v = [rng.randrange(c) for c in space.cardinalities]
        assert space.parse(space.decode(v)) == space.decode(v)
    assert len(set(archs)) > 250  # uniform over a large space: few repeats


def test_darts_space_samples_are_darts_cells():
    """Each node reads two distinct inputs (the old discrete space broke this for 964/1000)."""
    space = get_space("darts")
    rng = random.Random(1)
    for _ in range(1000):
        g = space.sample(rng)
        for cell in (g.normal, g.reduce):
            for i in range(4):
                assert cell[2 * i][1] != cell[2 * i + 1][1]
                assert cell[2 * i][1] < i + 2 and cell[2 * i + 1][1] < i + 2
    bad = {**space.to_dict(g), "normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 0]] + [list(e) for e in g.normal[2:]]}
    with pytest.raises(GenotypeError, match="reads input 0 twice"):
        space.parse(bad)


def test_unknown_space_is_one_line():
    with pytest.raises(ConfigError, match="unknown search space 'nope'; choose one of: .*darts.*nb201"):
        get_space("nope")
    assert {"darts", "nb201", "hierarchical", "fbnetv2"} <= set(space_names())


def test_darts_cost_and_build():
    space = get_space("darts")
    g = space.parse("DARTS_V2")
    net = space.build(g, num_classes=10, C=36, layers=20)
    from dnas.cost import count_params

    assert count_params(net) == 3_349_342  # the reference implementation's count
    assert space.cost(g, "params", C=36, layers=20) == pytest.approx(3.349342)


@pytest.mark.parametrize("strategy", ["random", "evolution", "bohb"])
def test_discrete_strategies_on_darts_records(strategy):
    """Black-box baselines on the DARTS space, on the 300 shipped NAS-Bench-301 records."""
    from dnas.strategies.discrete import run_discrete_search

    r = run_discrete_search(space="darts", strategy=strategy, evaluator="tabular:nb301_cifar10", budget=25, seed=0)
    assert r["queries"] == 25 and 85 < r["best_accuracy"] <= 100
    assert len({h["arch"] for h in r["history"]}) == 25


@pytest.mark.parametrize("relaxation", ["darts", "pc", "gdas", "msg"])
def test_nb201_one_shot_search(tmp_path, relaxation):
    """The NAS-Bench-201 one-shot benchmark: a bilevel search of the NB201 cell, real steps on digits."""
    import dnas

    res = dnas.search(data="digits", space="nb201", relaxation=relaxation, epochs=2, warmup_epochs=0, init_channels=4,
                      layers=3, image_size=8, max_samples=200, batch_size=32, threads=1, guard="off",
                      out=str(tmp_path / relaxation), progress=False)
    from dnas.spaces.nb201 import NB201Arch

    assert isinstance(res.genotype, NB201Arch)
    saved = json.loads((tmp_path / relaxation / "genotype.json").read_text())
    assert get_space("nb201").parse(saved) == res.genotype and saved["space"] == "nb201"
    ev = [json.loads(line) for line in (tmp_path / relaxation / "events.jsonl").read_text().splitlines()]
    alphas = [e["alphas"]["cell"] for e in ev if e.get("event") == "epoch"]
    assert len(alphas) == 2 and alphas[0] != alphas[1]  # architecture steps were taken


def test_nb201_relaxation_that_does_not_apply():
    import dnas

    with pytest.raises(ConfigError, match="relaxation: 'topo' does not apply to space nb201"):
        dnas.search(data="digits", space="nb201", relaxation="topo", epochs=1, warmup_epochs=0, progress=False,
                    out=None)


def test_cli_darts_space_discrete_and_nb201_one_shot(tmp_path):
    import dnas.commands.search  # noqa: F401
    from dnas.cli import app

    out = CliRunner().invoke(app, ["search", "--space", "darts", "--strategy", "evolution", "--evaluator",
                                   "tabular:nb301_cifar10", "--budget", "15", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["queries"] == 15
    out = CliRunner().invoke(app, ["search", "--space", "nb201", "--relaxation", "gdas", "--data", "digits",
                                   "--epochs", "1", "--warmup-epochs", "0", "--init-channels", "4", "--layers", "3",
                                   "--image-size", "8", "--max-samples", "150", "--threads", "1", "--guard", "off",
                                   "--out", str(tmp_path / "g"), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["genotype"]["space"] == "nb201"


@pytest.mark.parametrize("name", ["darts", "nb201"])
def test_to_str_reads_back(name):
    """History rows and result.json hold ``to_str``; it must parse back to the same architecture."""
    space = get_space(name)
    rng = random.Random(3)
    for _ in range(20):
        a = space.sample(rng)
        assert space.parse(space.to_str(a)) == a
