"""Predictors on the shipped NB201 records: encodings, GCN ranking quality vs an untrained GCN
and vs ranking by parameter count, determinism, and the CLI's JSON."""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from dnas.errors import ConfigError, DataError
from dnas.predictors import GCNPredictor, MLPPredictor, kendall_tau, make_predictor, predictor_evaluate, spearman
from dnas.predictors.encodings import NODE_TYPES, dag_batch, nb201_dag, onehot
from dnas.spaces.nb201 import NB201Arch

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def test_encodings():
    v = onehot(ARCH)
    assert v.shape == (30,) and v.sum() == 6 and v[3] == 1  # edge 0 = nor_conv_3x3 (index 3)
    A, X = nb201_dag(ARCH)
    assert A.shape == (8, 8) and X.shape == (8, len(NODE_TYPES))
    assert X.sum(1).tolist() == [1] * 8 and X[0, 0] == 1 and X[7, -1] == 1
    assert X[3, NODE_TYPES.index("avg_pool_3x3")] == 1  # op node 3 = edge 2 (1->2)
    # input feeds the edges leaving node 0; the output gathers the edges entering node 3
    assert np.flatnonzero(A[0]).tolist() == [1, 2, 4]
    assert np.flatnonzero(A[:, 7]).tolist() == [4, 5, 6]
    # edge 0->1 (op node 1) feeds edges 1->2 and 1->3 (op nodes 3 and 5)
    assert np.flatnonzero(A[1]).tolist() == [3, 5]
    assert np.allclose(np.triu(A, 1), A)  # a DAG in topological order
    Ab, Xb = dag_batch([ARCH, NB201Arch.random(0)])
    assert tuple(Ab.shape) == (2, 8, 8) and tuple(Xb.shape) == (2, 8, 7)


def test_metrics():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    assert kendall_tau([1, 1, 1], [1, 2, 3]) == 0.0  # constant prediction: no information


def test_gcn_ranks_held_out_records_far_better_than_untrained():
    fast = dict(epochs=120, ensemble=1)
    res = predictor_evaluate("nb201_cifar10", "gcn", train_size=100, seeds=[0], **fast)
    tau, base = res["kendall_tau"], res["baselines"]
    print(f"\nGCN tau {tau:.3f} / spearman {res['spearman']:.3f}; params tau {base['params_kendall_tau']:.3f}; "
          f"untrained tau {base['untrained_kendall_tau']:.3f}")
    assert res["test_size"] == 625 and len(res["per_seed"]) == 1
    assert tau > base["untrained_kendall_tau"] + 0.3
    assert tau > 0.6 and res["spearman"] > 0.8
    assert tau > base["params_kendall_tau"]  # beats ranking by parameter count (0.56)


def test_predictors_are_deterministic_and_validate_options():
    from dnas.evaluators.tabular import load_records

    _, recs = load_records("nb201_cifar10")
    archs, acc = [r["key"] for r in recs[:60]], [r["val_accuracy"] for r in recs[:60]]
    for cls in (GCNPredictor, MLPPredictor):
        p1 = cls(seed=4, epochs=30, ensemble=2).fit(archs[:40], acc[:40]).predict(archs[40:])
        p2 = cls(seed=4, epochs=30, ensemble=2).fit(archs[:40], acc[:40]).predict(archs[40:])
        p3 = cls(seed=5, epochs=30, ensemble=2).fit(archs[:40], acc[:40]).predict(archs[40:])
        assert np.array_equal(p1, p2) and not np.array_equal(p1, p3)
    mse = GCNPredictor(seed=0, loss="mse", epochs=150, ensemble=1).fit(archs[:40], acc[:40])
    assert abs(float(np.mean(mse.predict(archs[:40]))) - float(np.mean(acc[:40]))) < 5.0  # accuracy scale
    with pytest.raises(ConfigError, match="loss"):
        make_predictor("gcn", loss="hinge")
    with pytest.raises(ConfigError, match="unknown predictor"):
        make_predictor("forest")
    with pytest.raises(ConfigError, match="bad option"):
        make_predictor("mlp", layers=2)
    with pytest.raises(ConfigError, match="train_size"):
        predictor_evaluate("nb201_cifar10", "mlp", train_size=724)


def test_cli_predictor_evaluate_json(tmp_path):
    import dnas.commands.predictor  # noqa: F401  (registers the sub-command)
    from dnas.cli import app

    src = json.loads(
        __import__("importlib").resources.files("dnas.resources").joinpath("nb201_cifar10.json").read_text()
    )
    path = tmp_path / "recs.json"
    path.write_text(json.dumps(src[::6]))  # 121 records
    out = CliRunner().invoke(
        app,
        ["predictor", "evaluate", "--records", str(path), "--predictor", "mlp", "--train-size", "40",
         "--seeds", "2", "--epochs", "20", "--ensemble", "1", "--json"],
    )
    assert out.exit_code == 0, out.output
    res = json.loads(out.output)
    assert {"kendall_tau", "spearman", "per_seed", "baselines", "train_size", "test_size"} <= set(res)
    assert res["test_size"] == 81 and [r["seed"] for r in res["per_seed"]] == [0, 1]
    assert -1 <= res["kendall_tau"] <= 1 and "params_kendall_tau" in res["baselines"]
    few = tmp_path / "darts.json"
    from dnas.genotype import PUBLISHED

    few.write_text(json.dumps([{**PUBLISHED[n].to_dict(), "val_accuracy": 97.0} for n in ("DARTS_V1", "DARTS_V2")]))
    with pytest.raises(ConfigError, match="train_size"):
        predictor_evaluate(str(few), "gcn", train_size=2)


def test_gcn_ranks_darts_records_better_than_params():
    """Predictors read any space's graph encoding: on 300 real DARTS-space (NAS-Bench-301)
    records the GCN, trained on 100, ranks the other 200 better than parameter count does."""
    res = predictor_evaluate("nb301_cifar10", "gcn", train_size=100, seeds=1, epochs=60, ensemble=1)
    assert res["test_size"] == 200
    assert res["kendall_tau"] > res["baselines"]["params_kendall_tau"] + 0.1, res
