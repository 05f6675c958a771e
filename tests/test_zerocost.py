"""Zero-cost proxies on real (tiny) networks of three spaces with built-in digits data, the
published-score agreement of synflow on the NB201 evaluation network, the ``dnas proxy`` CLI,
proxy features for predictors, the ``zc:`` evaluator, and BANANAS / NPENAS searches."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats
from typer.testing import CliRunner

from dnas.errors import ConfigError
from dnas.predictors.zerocost import DATA_INDEPENDENT, PROXIES, PROXY_NAMES, ProxyScorer, score_network

TINY_NB201 = dict(C=4, N=1)
CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
POOL = "|avg_pool_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|avg_pool_3x3~0|none~1|skip_connect~2|"
CUT = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def _records(name: str) -> list[dict]:
    from importlib import resources

    return json.loads(resources.files("dnas.resources").joinpath(f"{name}.json").read_text())


def test_all_thirteen_proxies_on_a_tiny_nb201_network_are_finite_and_repeatable():
    assert set(PROXY_NAMES) == set(PROXIES.names()) and len(PROXY_NAMES) == 13
    s = ProxyScorer("nb201", PROXY_NAMES, data="digits", batch_size=16, net_opts=TINY_NB201)
    a = s.score(CONV)
    assert all(math.isfinite(v) for v in a.values()), a
    some = ["snip", "fisher", "jacov", "nwot", "zen"]
    again = ProxyScorer("nb201", some, data="digits", batch_size=16, net_opts=TINY_NB201).score(CONV)
    assert {k: a[k] for k in some} == again  # same seed: same weights, same batch, same scores
    other = ProxyScorer("nb201", ["l2_norm", "snip"], data="digits", batch_size=16, seed=1, net_opts=TINY_NB201).score(CONV)
    assert other["l2_norm"] != a["l2_norm"]
    # the flow of a cell whose edges are all cut is zero; convolutions carry more than pooling
    syn = ProxyScorer("nb201", ["synflow", "params"], input_shape="1,8,8", net_opts=TINY_NB201)
    assert syn.score(CUT)["synflow"] == 0.0
    assert syn.score(CONV)["synflow"] > syn.score(POOL)["synflow"] > 0
    assert syn.score(CONV)["params"] > syn.score(POOL)["params"]


def test_data_independent_proxies_ignore_the_data_and_others_need_it():
    on_data = ProxyScorer("nb201", ["synflow", "l2_norm"], data="digits", batch_size=16, net_opts=TINY_NB201).score(CONV)
    no_data = ProxyScorer("nb201", ["synflow", "l2_norm"], input_shape="1,8,8", net_opts=TINY_NB201).score(CONV)
    assert on_data == pytest.approx(no_data, rel=1e-12)
    assert {"synflow", "zen", "params", "flops", "l2_norm"} == DATA_INDEPENDENT
    with pytest.raises(ConfigError, match="snip need data"):
        ProxyScorer("nb201", ["snip"], input_shape="3,32,32")
    with pytest.raises(ConfigError, match="unknown proxy"):
        ProxyScorer("nb201", ["nope"], input_shape="3,32,32")
    with pytest.raises(ConfigError, match="input-shape"):
        ProxyScorer("nb201", ["synflow"], input_shape="3,32")


def test_synflow_on_the_nb201_evaluation_network_ranks_as_the_published_scores():
    recs = [r for r in _records("nb201_cifar10_zc") if r.get("synflow") is not None][::60]  # 13 archs
    s = ProxyScorer("nb201", ["synflow"], input_shape="3,32,32")  # C=16, N=5, 10 classes
    ours = [s.score(r["arch"])["synflow"] for r in recs]
    rho = stats.spearmanr(ours, [r["synflow"] for r in recs])[0]
    assert rho > 0.95, rho
    assert np.max(np.abs(np.array(ours) - [r["synflow"] for r in recs])) < 1.0  # same scale (log)


def test_proxies_on_a_darts_cell_network_and_a_generalized_network():
    darts = _records("nb301_cifar10")[0]
    s = ProxyScorer("darts", PROXY_NAMES, data="digits", batch_size=12, net_opts=dict(C=4, layers=2))
    g = {k: darts[k] for k in ("normal", "normal_concat", "reduce", "reduce_concat")}
    scores = s.score(g)
    assert sum(math.isfinite(v) for v in scores.values()) >= 12, scores
    assert scores["params"] > 0 and scores["flops"] > 0

    from dnas.data import load_dataset
    from dnas.spaces.generalized import build_generalized_network

    ds = load_dataset("digits")
    x, y = ds.x[:12], ds.y[:12]
    structure = {"num_stages": 2, "depth_1": 1, "width_1": 8, "depth_2": 1, "width_2": 8}
    operators = {"op_1": "conv3x3", "act_1": "relu", "init_1": "kaiming_normal",
                 "op_2": "mbconv3", "act_2": "gelu", "init_2": "xavier_uniform"}
    net = build_generalized_network(structure, operators, in_channels=1, num_classes=10, seed=0)
    gs = score_network(net, x, y, PROXY_NAMES)
    assert sum(math.isfinite(v) for v in gs.values()) >= 12, gs
    assert gs == score_network(net, x, y, PROXY_NAMES)


def test_cli_proxy_scores_records_and_writes_them(tmp_path):
    import dnas.commands.proxy  # noqa: F401
    from dnas.cli import app

    src = tmp_path / "recs.json"
    src.write_text(json.dumps(_records("nb201_cifar10")[:4]))
    out = tmp_path / "scored.json"
    res = CliRunner().invoke(app, ["proxy", str(src), "--space", "nb201", "--data", "digits", "--net", "C=4,N=1",
                                   "--proxies", "synflow,nwot", "--batch-size", "16", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["records"] == 4 and summary["proxies"] == ["synflow", "nwot"]
    written = json.loads(out.read_text())
    assert len(written) == 4 and all({"arch", "val_accuracy", "synflow", "nwot"} <= set(r) for r in written)
    one = CliRunner().invoke(app, ["proxy", CONV, "--input-shape", "1,8,8", "--net", "C=4,N=1", "--proxies", "synflow", "--json"])
    assert one.exit_code == 0 and json.loads(one.output)["scores"]["synflow"] > 0
    from dnas.cli import main

    assert main(["proxy", CONV, "--input-shape", "3,32,32", "--proxies", "grasp"]) == 2


def test_zc_features_impute_missing_scores_from_the_training_split_only():
    from dnas.predictors.zcfeatures import ZCFeatures

    table = {"a": {"p": 1.0, "q": -1e8}, "b": {"p": 3.0, "q": 2.0}, "c": {"p": 100.0}, "d": {"p": float("nan"), "q": 4.0}}
    f = ZCFeatures(["p", "q"], table).fit(["a", "b"])
    assert f.width == 3  # q is missing (sentinel) in the training split: one flag column
    z = f.transform(["a", "b", "c", "d"])
    assert z.shape == (4, 3) and np.isfinite(z).all()
    assert z[0, 2] == 1.0 and z[1, 2] == 0.0 and z[2, 2] == 1.0
    assert z[2, 0] == 5.0  # an extreme test score is clipped, not used to rescale
    assert z[3, 0] == pytest.approx((z[0, 0] + z[1, 0]) / 2)  # missing -> training median
    with pytest.raises(ConfigError, match="needs proxy scores"):
        from dnas.predictors import make_predictor

        make_predictor("gcn", features="graph+zc")


def test_proxy_features_help_the_gcn_and_the_forest_on_nb201_records():
    from dnas.predictors import predictor_evaluate

    recs = "nb201_cifar10_zc"
    kw = dict(epochs=150, ensemble=1, untrained=False)
    graph = predictor_evaluate(recs, "gcn", 60, [0], features="graph", **kw)
    fused = predictor_evaluate(recs, "gcn", 60, [0], features="graph+zc", **kw)
    forest = predictor_evaluate(recs, "rf", 60, [0], features="zc", n_estimators=100)
    assert fused["kendall_tau"] > graph["kendall_tau"] + 0.02, (fused["kendall_tau"], graph["kendall_tau"])
    assert forest["kendall_tau"] > forest["baselines"]["params_kendall_tau"]
    assert "nwot_kendall_tau" in fused["baselines"] and fused["options"]["zc_proxies"][0] == "synflow"
    again = predictor_evaluate(recs, "rf", 60, [0], features="zc", n_estimators=100)
    assert again["kendall_tau"] == forest["kendall_tau"]


def test_gated_fusion_starts_as_the_graph_model_and_learns_to_open():
    """The gated proxy path contributes nothing at initialisation (tanh(0) = 0), still receives
    a gradient through its gate, and trained on DARTS-space records the fused GCN ranks held-out
    archs at least about as well as the graph-only GCN."""
    from dnas.predictors import predictor_evaluate
    from dnas.predictors.gcn import GCN

    torch.manual_seed(0)
    net = GCN(5, 16, 2, n_extra=3, fusion="gated")
    A = torch.triu(torch.ones(2, 6, 6), 1)
    X = torch.rand(2, 6, 5)
    z1, z2 = torch.randn(2, 3), torch.randn(2, 3) * 10
    assert torch.equal(net(A, X, z1), net(A, X, z2))  # the closed gate hides the proxies
    net(A, X, z1).sum().backward()
    assert net.gate.grad is not None and float(net.gate.grad.abs()) > 0  # ... but can open
    with pytest.raises(ConfigError, match="fusion"):
        GCN(5, fusion="late")

    recs = "nb301_cifar10_zc"
    kw = dict(epochs=150, ensemble=1, untrained=False)
    graph = predictor_evaluate(recs, "gcn", 60, [0], features="graph", **kw)
    gated = predictor_evaluate(recs, "gcn", 60, [0], features="graph+zc", fusion="gated", **kw)
    assert gated["options"]["fusion"] == "gated"
    assert gated["kendall_tau"] > graph["kendall_tau"] - 0.03, (gated["kendall_tau"], graph["kendall_tau"])


def test_auto_fusion_cross_validates_on_the_training_archs_only():
    from dnas.evaluators.tabular import load_records
    from dnas.predictors import make_predictor
    from dnas.predictors.zcfeatures import ZCFeatures

    recs = load_records("nb201_cifar10_zc")[1][:80]
    zc = ZCFeatures.from_records(recs)
    archs, acc = [r["key"] for r in recs], [r["val_accuracy"] for r in recs]
    p = make_predictor("gcn", space="nb201", features="graph+zc", zc=zc, fusion="auto", epochs=60, ensemble=1)
    p.fit(archs[:40], acc[:40])
    assert set(p.fusion_scores) == {"concat", "gated"}
    assert p.fusion_used == max(p.fusion_scores, key=p.fusion_scores.get)
    q = make_predictor("gcn", space="nb201", features="graph+zc", zc=zc, fusion="auto", epochs=60, ensemble=1)
    assert np.array_equal(q.fit(archs[:40], acc[:40]).predict(archs[40:]), p.predict(archs[40:]))
    graph_only = make_predictor("gcn", space="nb201", fusion="auto", epochs=5).fit(archs[:40], acc[:40])
    assert graph_only.fusion_scores == {}  # nothing to fuse: no cross-validation
    with pytest.raises(ConfigError, match="fusion"):
        make_predictor("gcn", fusion="late")
    with pytest.raises(ConfigError, match="fusion"):
        make_predictor("rf", fusion="gated")  # trees only concatenate


def test_zc_evaluator_searches_by_a_proxy_and_reports_true_accuracy():
    from dnas.evaluators.base import make_evaluator
    from dnas.strategies.discrete import run_discrete_search

    ev = make_evaluator("zc:synflow,table=nb201_cifar10_zc")
    assert ev.source == "records" and len(ev.archs()) == 725
    r = run_discrete_search(space="nb201", strategy="random", evaluator=ev, budget=30, seed=0)
    syn = [h["accuracy"] for h in r["history"]]
    assert r["best_accuracy"] == max(syn) and all("val_accuracy" in h["cost"] for h in r["history"])
    # computed by dnas on a space without a table (bound by the search)
    r2 = run_discrete_search(space="nb201", strategy="evolution", evaluator="zc:synflow,input_shape=1x8x8,C=4,N=1",
                             budget=6, seed=0, population_size=3, sample_size=2)
    assert r2["queries"] == 6 and r2["best_accuracy"] > 0
    with pytest.raises(ConfigError, match="unknown key"):
        make_evaluator("zc:synflow,colour=red")
    with pytest.raises(ConfigError, match="source=records"):
        make_evaluator("zc:zen,table=nb201_cifar10,source=records")


def test_bananas_and_npenas_beat_random_search_and_repeat():
    from dnas.strategies.discrete import run_discrete_search

    def run(strategy, seed, **kw):
        return run_discrete_search(space="nb201", strategy=strategy, evaluator="tabular:nb201_cifar10", budget=25,
                                   seed=seed, **kw)

    fast = dict(epochs=50, num_init=10, k=5)
    b = [run("bananas", s, ensemble=3, **fast) for s in range(2)]
    n = [run("npenas", s, **fast)["best_accuracy"] for s in range(2)]
    r = [run("random", s)["best_accuracy"] for s in range(2)]
    assert np.mean([x["best_accuracy"] for x in b]) > np.mean(r) and np.mean(n) > np.mean(r), (b, n, r)
    assert run("bananas", 0, ensemble=3, **fast)["history"] == b[0]["history"]  # same seed, same search
    warm = run("bananas", 0, ensemble=2, warm_start="zc:synflow,table=nb201_cifar10_zc", features="graph+zc", **fast)
    assert warm["queries"] == 25
    with pytest.raises(ConfigError, match="acquisition"):
        run("bananas", 0, acquisition="greedy")
    with pytest.raises(ConfigError, match="warm_start"):
        run("npenas", 0, features="graph+zc")


def test_bananas_runs_on_the_darts_space_with_a_computed_proxy():
    from dnas.strategies.discrete import run_discrete_search

    r = run_discrete_search(space="darts", strategy="bananas", evaluator="zc:synflow,input_shape=1x8x8,C=4,layers=2",
                            budget=8, seed=0, num_init=4, k=4, ensemble=2, epochs=20, num_candidates=10)
    assert r["queries"] == 8 and len({h["arch"] for h in r["history"]}) == 8
