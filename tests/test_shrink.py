"""Search-space shrinkage: distance is a metric, locality, pockets found on a constructed space,
the shrunk space searched by the discrete strategies, a real one-shot supernet on digits,
metrics on hand-made data, and the ``dnas shrink`` JSON on the shipped records."""
from __future__ import annotations

import itertools
import json
import random

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dnas.errors import ConfigError, DataError, GenotypeError
from dnas.evaluators import make_evaluator
from dnas.evaluators.base import EvalResult
from dnas.genotype import PUBLISHED, Genotype
from dnas.shrink import (
    FiniteUniverse,
    Pocket,
    PredictorEvaluator,
    RestrictedEvaluator,
    ShrinkConfig,
    ShrunkSpace,
    canonical_darts,
    darts_distance,
    distance,
    locality_report,
    nb201_distance,
    pairwise,
    ranking_taus,
    search_shrunk,
    select_seeds,
    shrink,
    space_metrics,
    true_accuracies,
)
from dnas.shrink.oneshot import NB201OneShot, OneShotEvaluator, make_sampler, oneshot_data, score_archs, train_oneshot
from dnas.spaces.nb201 import NB201_OPS, NB201Arch, all_archs, sample_archs
from dnas.strategies.base import get_space

TABLE = "tabular:nb201_cifar10"


def _mutate(a: NB201Arch, edges: dict[int, str]) -> NB201Arch:
    ops = list(a.ops)
    for k, op in edges.items():
        ops[k] = op
    return NB201Arch(tuple(ops))


def _assert_metric(archs, dist, same=lambda a, b: a == b):
    D = np.array([[dist(a, b) for b in archs] for a in archs])
    n = len(archs)
    for i, j in itertools.product(range(n), repeat=2):
        assert (D[i, j] == 0) == same(archs[i], archs[j]), (archs[i], archs[j])
    assert (D == D.T).all() and (D >= 0).all()
    # triangle inequality over every triple: D[i,k] <= D[i,j] + D[j,k]
    assert (D[:, None, :] <= D[:, :, None] + D[None, :, :]).all()
    return D


# ---------------------------------------------------------------------------- distance
def test_nb201_distance_is_the_edit_distance_and_a_metric():
    archs = sample_archs(40, seed=1)
    archs.append(archs[0])  # a duplicate must be at distance 0
    D = _assert_metric(archs, nb201_distance)
    assert (pairwise(archs) == D).all()  # the vectorised matrix agrees
    a = archs[1]
    assert all(distance(a, b) == 1 for b in a.neighbours()) and len(a.neighbours()) == 24
    b = _mutate(a, {0: "none" if a.ops[0] != "none" else "skip_connect", 5: "none" if a.ops[5] != "none" else "nor_conv_1x1"})
    assert distance(a, b) == 2
    with pytest.raises(GenotypeError, match="cannot compare"):
        distance(a, PUBLISHED["DARTS_V2"])


def test_darts_distance_counts_op_and_input_edits_and_ignores_edge_order():
    g = PUBLISHED["DARTS_V2"]
    g = Genotype(g.normal, g.normal_concat, g.reduce, g.reduce_concat)
    normal = list(g.normal)
    swapped = Genotype([normal[1], normal[0]] + normal[2:], g.normal_concat, g.reduce, g.reduce_concat)
    assert darts_distance(g, swapped) == 0 and canonical_darts(g) == canonical_darts(swapped)
    op = Genotype([("max_pool_3x3", normal[0][1])] + normal[1:], g.normal_concat, g.reduce, g.reduce_concat)
    assert normal[0][0] != "max_pool_3x3" and darts_distance(g, op) == 1
    # node 2 (edges 2, 3) reads inputs 0..2; rewire edge 2 to an input it did not read
    new_in = next(i for i in range(3) if i not in (normal[2][1], normal[3][1]))
    rewired = Genotype(normal[:2] + [(normal[2][0], new_in)] + normal[3:], g.normal_concat, g.reduce, g.reduce_concat)
    assert darts_distance(g, rewired) == 1
    both = Genotype(normal[:2] + [("max_pool_3x3", new_in)] + normal[3:], g.normal_concat, g.reduce, g.reduce_concat)
    assert darts_distance(g, both) == 2 - (normal[2][0] == "max_pool_3x3")
    # the matching, not the positions: {(a,0),(b,1)} vs {(b,1),(c,0)} is one edit, not four
    x = Genotype([("sep_conv_3x3", 0), ("skip_connect", 1)], (2,), [("avg_pool_3x3", 0), ("avg_pool_3x3", 1)], (2,))
    y = Genotype([("skip_connect", 1), ("dil_conv_3x3", 0)], (2,), [("avg_pool_3x3", 0), ("avg_pool_3x3", 1)], (2,))
    assert darts_distance(x, y) == 1
    # a metric on architectures (genotypes modulo edge order inside a node) over random samples
    sp, rng = get_space("darts"), random.Random(0)
    gs = [sp.sample(rng) for _ in range(14)] + [swapped, g]
    _assert_metric(gs, darts_distance, same=lambda a, b: canonical_darts(a) == canonical_darts(b))
    with pytest.raises(GenotypeError, match="edges"):
        darts_distance(g, x)


# ---------------------------------------------------------------------------- locality
def test_locality_report_on_hand_made_pairs_and_on_the_shipped_records():
    a = NB201Arch(("nor_conv_3x3",) * 6)
    b = _mutate(a, {0: "skip_connect"})
    c = _mutate(b, {1: "skip_connect"})
    rep = locality_report([a, b, c], [90.0, 89.0, 80.0])
    rows = {r["distance"]: r for r in rep["by_distance"]}
    assert rows[1]["pairs"] == 2 and rows[1]["mean_abs_diff"] == 5.0 and rows[1]["median_abs_diff"] == 5.0
    assert rows[2]["pairs"] == 1 and rows[2]["mean_abs_diff"] == 10.0
    assert rep["random_pair_mean_abs_diff"] == round(20 / 3, 4) and rep["pairs"] == 3
    with pytest.raises(ConfigError, match="one accuracy per arch"):
        locality_report([a, b, c], [1.0, 2.0])
    truth = true_accuracies(make_evaluator(TABLE))
    rep = locality_report(list(truth), list(truth.values()))
    d = {r["distance"]: r["mean_abs_diff"] for r in rep["by_distance"]}
    # NB201 has locality: close archs differ less than far ones, and correlate more
    assert d[1] < d[3] < d[6] and rep["spearman_distance_vs_diff"] > 0
    corr = {r["distance"]: r["correlation"] for r in rep["by_distance"]}
    assert corr[1] > corr[6]


# ---------------------------------------------------------------------------- shrinkage
PEAKS = [NB201Arch(("nor_conv_3x3",) * 6), NB201Arch(("nor_conv_1x1",) * 6), NB201Arch(("avg_pool_3x3",) * 6)]


class Peaks:
    """A constructed landscape over all 15625 archs: three pockets around known peaks 6 edits
    apart; accuracy falls by 4 points per edit from the nearest peak."""

    space = "nb201"

    def __init__(self):
        self.calls = 0

    def evaluate(self, arch, budget=None):
        self.calls += 1
        return EvalResult(max(p - 4.0 * nb201_distance(arch, c) for p, c in zip((95.0, 93.0, 91.0), PEAKS)))


def test_shrinkage_finds_the_known_pockets_of_a_constructed_space():
    cfg = ShrinkConfig(initial=60, pockets=3, radius=2, min_distance=5, expand=24, samples=30, max_rounds=12, patience=3)
    full_mean = np.mean([Peaks().evaluate(x).accuracy for x in all_archs()])
    found_all = 0
    for seed in range(4):
        ev = Peaks()
        sh = shrink(ev, seed=seed, config=cfg)
        centers = [p.center for p in sh.pockets]
        assert PEAKS[0] in centers  # the global optimum is always a pocket centre
        covered = [any(nb201_distance(c, p) <= 1 for c in centers) for p in PEAKS]
        assert sum(covered) >= 2  # diverse: the pockets sit on different peaks
        found_all += all(p in centers for p in PEAKS)
        assert sh.info["queries"] == ev.calls < 15625  # each arch evaluated once, far from exhaustive
        assert len(sh) <= 3 * 265 and sh.full_size == 15625  # 3 balls of radius 2 (1 + 24 + 240)
        min_sep = min(nb201_distance(x, y) for x, y in itertools.combinations(centers, 2))
        assert min_sep >= 5
        est = [h["estimate"] for h in sh.info["history"]]
        assert sh.info["estimate"] == est[-1] > est[0]  # the estimate rose
        inside = np.mean([ev.evaluate(x).accuracy for x in sh.archs()])
        assert inside > full_mean + 4  # and the true mean of the shrunk space is much higher
    assert found_all >= 3


def test_shrink_on_the_shipped_records_is_deterministic_and_improves_the_space():
    truth = true_accuracies(make_evaluator(TABLE))
    ev = make_evaluator(TABLE)
    a = shrink(ev, seed=3)
    b = shrink(make_evaluator(TABLE), seed=3)
    c = shrink(make_evaluator(TABLE), seed=4)
    assert a.to_dict()["pockets"] == b.to_dict()["pockets"] and a.info["queries"] == b.info["queries"]
    assert a.to_dict()["pockets"] != c.to_dict()["pockets"]
    assert ev.unique_queries == a.info["queries"] < len(truth) / 3
    m = space_metrics(a, truth)
    assert m["full_size"] == 725 and 10 <= m["size"] <= 150
    assert m["mean_accuracy"] > m["full_mean_accuracy"] + 2 > m["outside_mean_accuracy"] + 2
    assert all(x in truth for x in a.archs())
    centers = [p.center for p in a.pockets]
    assert len(centers) >= 2 and all(nb201_distance(x, y) >= 3 for x, y in itertools.combinations(centers, 2))
    assert select_seeds(sorted(truth, key=lambda x: -truth[x]), 3, 6, distance)[0] == max(truth, key=truth.get)
    with pytest.raises(ConfigError, match="radius"):
        ShrinkConfig(radius=-1)
    with pytest.raises(ConfigError, match="space"):
        shrink(ev, space="darts")


def test_shrinkage_driven_by_a_fitted_predictor_finds_good_pockets():
    from dnas.predictors import make_predictor

    truth = true_accuracies(make_evaluator(TABLE))
    archs = list(truth)
    train = random.Random(0).sample(archs, 100)
    pred = make_predictor("mlp", seed=0, epochs=60, ensemble=1)
    pred.fit(train, [truth[a] for a in train])
    sh = shrink(PredictorEvaluator(pred), seed=0, universe=FiniteUniverse(archs))
    m = space_metrics(sh, truth)
    assert m["mean_accuracy"] > m["full_mean_accuracy"] + 3  # judged by the table, never queried
    with pytest.raises(DataError, match="predict"):
        PredictorEvaluator(object())


def test_shrink_on_darts_genotype_records():
    from dnas.evaluators.tabular import TabularEvaluator

    sp, rng = get_space("darts"), random.Random(0)
    ref = sp.sample(rng)
    near = {g for g in sp.neighbours(ref)[::9]}  # 16 one-edit neighbours of the optimum
    far = {sp.sample(rng) for _ in range(44)}
    recs = []
    for g in [ref, *near, *far]:
        d = g.to_dict()
        recs.append({**{k: d[k] for k in ("normal", "normal_concat", "reduce", "reduce_concat")},
                     "val_accuracy": 95.0 - 0.5 * darts_distance(g, ref)})
    ev = TabularEvaluator(recs)
    sh = shrink(ev, space="darts", seed=0, config=ShrinkConfig(initial=12, pockets=2, radius=2, min_distance=4, samples=8))
    m = space_metrics(sh, true_accuracies(ev))
    assert m["best_kept"] and ref == sh.pockets[0].center and sh.info["queries"] < len(recs)
    assert m["mean_accuracy"] > m["full_mean_accuracy"] + 3
    back = ShrunkSpace.from_dict(json.loads(json.dumps(sh.to_dict())))
    assert back.archs() == sh.archs()


def test_shrunk_space_is_searchable_and_round_trips(tmp_path):
    ev = make_evaluator(TABLE)
    sh = shrink(ev, seed=0)
    members = set(sh.archs())
    r = RestrictedEvaluator(make_evaluator(TABLE), sh)
    assert set(r.archs()) == members and len(r) == len(members)
    outsider = next(x for x in ev.archs() if x not in members)
    with pytest.raises(DataError, match="outside the shrunk space"):
        r.evaluate(outsider)
    budget = min(15, len(members))
    for strategy in ("random", "evolution", "bohb"):
        res = search_shrunk(sh, TABLE, strategy=strategy, budget=budget, seed=1)
        archs = [NB201Arch.parse(h["arch"]) for h in res["history"]]
        assert res["queries"] == budget and all(x in members for x in archs), strategy
        assert len(set(archs)) == budget  # no repeats inside the small space
    mask = sh.edge_mask()
    assert mask.shape == (6, 5) and all(mask[k, NB201_OPS.index(op)] for x in members for k, op in enumerate(x.ops))
    path = sh.save(tmp_path / "pockets.json")
    back = ShrunkSpace.load(path)
    assert back.archs() == sh.archs() and [p.center for p in back.pockets] == [p.center for p in sh.pockets]
    (tmp_path / "bad.json").write_text(json.dumps({"format": "nope"}))
    with pytest.raises(DataError, match="not a dnas shrunk space"):
        ShrunkSpace.load(tmp_path / "bad.json")


# ---------------------------------------------------------------------------- metrics
def test_metrics_on_hand_made_data():
    base = NB201Arch(("nor_conv_3x3",) * 6)
    a1, a2 = base, _mutate(base, {0: "skip_connect"})           # pocket 1
    b1 = NB201Arch(("avg_pool_3x3",) * 6)                        # pocket 2
    o1, o2, o3 = (_mutate(base, {k: "none" for k in range(j)}) for j in (3, 4, 5))  # outside
    truth = {a1: 91.0, a2: 90.0, b1: 80.0, o1: 70.0, o2: 60.0, o3: 50.0}
    sh = ShrunkSpace("nb201", [Pocket(a1, 1, (a1, a2)), Pocket(b1, 1, (b1,))], full_size=6)
    m = space_metrics(sh, truth, top_fraction=1 / 3)
    assert m["size"] == 3 and m["full_size"] == 6 and m["shrink_ratio"] == 0.5
    assert m["mean_accuracy"] == 87.0 and m["full_mean_accuracy"] == round(441 / 6, 4) and m["outside_mean_accuracy"] == 60.0
    assert m["best_accuracy"] == 91.0 == m["full_best_accuracy"] and m["best_kept"] is True
    assert m["top_k_kept"] == 1.0 and m["pockets"] == 2 and m["center_min_distance"] == 6
    # pairwise distances of the members: d(a1,a2)=1, d(a1,b1)=6, d(a2,b1)=6
    assert m["mean_distance"] == round(13 / 3, 4)
    sh2 = ShrunkSpace("nb201", [Pocket(b1, 1, (b1, o1))], full_size=6)
    m2 = space_metrics(sh2, truth, top_fraction=1 / 3)
    assert m2["best_kept"] is False and m2["top_k_kept"] == 0.0 and m2["best_accuracy"] == 80.0
    taus = ranking_taus([a1, a2, b1], [3.0, 2.0, 1.0], [a1, a2, b1, o1], [1.0, 2.0, 3.0, 4.0], truth)
    assert taus == {"tau_shrunk": 1.0, "tau_full": -1.0, "tau_full_on_shrunk": -1.0}


# ---------------------------------------------------------------------------- one-shot
def test_oneshot_supernet_trains_on_pocket_members_only():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train, val, ncls, cin = oneshot_data("digits", seed=0)
        good = NB201Arch(("nor_conv_1x1",) * 6)
        allowed = [good, _mutate(good, {0: "skip_connect"}), _mutate(good, {5: "avg_pool_3x3"})]
        sampler = make_sampler(allowed=allowed)
        rng = random.Random(0)
        assert {sampler(rng) for _ in range(100)} == set(allowed)
        torch.manual_seed(0)
        net = NB201OneShot(C=4, N=1, num_classes=ncls, in_channels=cin)
        conv3 = [p.detach().clone() for n, p in net.named_parameters() if "nor_conv_3x3" in n]
        conv1 = [p.detach().clone() for n, p in net.named_parameters() if "nor_conv_1x1" in n]
        losses = train_oneshot(net, train, sampler, steps=40, seed=0, batch_size=64)
        assert np.mean(losses[-8:]) < np.mean(losses[:8]) - 0.3  # real learning
        after3 = [p for n, p in net.named_parameters() if "nor_conv_3x3" in n]
        after1 = [p for n, p in net.named_parameters() if "nor_conv_1x1" in n]
        assert all(torch.equal(x, y) for x, y in zip(conv3, after3))  # never sampled: untouched
        assert any(not torch.equal(x, y) for x, y in zip(conv1, after1))
        acc, loss = score_archs(net, [good, NB201Arch(("none",) * 6)], val)
        assert acc[0] > 40.0 and acc[1] < 20.0  # a trained member vs a cell that outputs zeros
        assert score_archs(net, [good], val) == ([acc[0]], [loss[0]])  # deterministic
        # the trained supernet as the evaluator that drives shrinkage
        zero = NB201Arch(("none",) * 6)
        sub_val = (val[0][:128], val[1][:128])
        sh = shrink(OneShotEvaluator(net, sub_val), seed=0, universe=FiniteUniverse(allowed + [zero]),
                    config=ShrinkConfig(initial=4, pockets=1, radius=0, min_distance=0, samples=1, max_rounds=2))
        assert sh.pockets[0].center != zero and sh.info["queries"] == 4
        mask = np.zeros((6, 5), dtype=bool)
        mask[:, [1, 2]] = True
        masked = make_sampler(edge_mask=mask)
        assert all(set(masked(rng).ops) <= {"skip_connect", "nor_conv_1x1"} for _ in range(50))
        with pytest.raises(ConfigError, match="at least one"):
            make_sampler(edge_mask=np.zeros((6, 5), dtype=bool))
    finally:
        torch.set_num_threads(threads)


# ---------------------------------------------------------------------------- CLI
def test_cli_shrink_json_on_the_shipped_records(tmp_path):
    import dnas.commands.shrink  # noqa: F401  (registers the command)
    from dnas.cli import app

    out = CliRunner().invoke(app, [
        "shrink", "--space", "nb201", "--evaluator", TABLE, "--json", "--seed", "1", "--initial", "30",
        "--samples", "10", "--max-rounds", "2", "--oneshot-steps", "15", "--oneshot-full-archs", "25",
        "--search", "random", "--search-budget", "5", "--out", str(tmp_path / "p.json"),
    ])
    assert out.exit_code == 0, out.output
    res = json.loads(out.output)
    keys = {"size", "full_size", "mean_accuracy", "full_mean_accuracy", "best_accuracy", "full_best_accuracy",
            "best_kept", "pockets", "mean_distance", "tau_shrunk", "tau_full", "queries"}
    assert keys <= set(res)
    assert res["full_size"] == 725 and 0 < res["size"] < 725 and res["pockets"] >= 1
    assert res["best_accuracy"] <= res["full_best_accuracy"] == 91.36 and isinstance(res["best_kept"], bool)
    assert -1 <= res["tau_shrunk"] <= 1 and -1 <= res["tau_full"] <= 1 and res["oneshot_full_archs"] == 25
    assert res["search"]["queries"] == 5 and len(ShrunkSpace.load(tmp_path / "p.json")) >= res["size"]
    quick = CliRunner().invoke(app, ["shrink", "--evaluator", TABLE, "--json", "--no-oneshot", "--max-rounds", "1"])
    assert quick.exit_code == 0, quick.output
    q = json.loads(quick.output)
    assert q["tau_shrunk"] is None and q["size"] > 0
