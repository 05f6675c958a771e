"""The differentiable cost term: expected cost under every relaxation, lambda lowering the
expected cost in real architecture steps on digits, the latency budget hinge, the predictor and
table objectives inside a tiny real search, and config errors."""
import json

import numpy as np
import pytest
import torch

import dnas
from dnas.config import make_config
from dnas.costloss import cost_term, darts_expected_weights, expected_cost_fn
from dnas.errors import ConfigError
from dnas.predictors.latency import LatencyPredictor, make_space
from dnas.relax import RELAXATIONS
from dnas.run import seed_everything
from dnas.searchdata import search_batches
from dnas.strategies.bilevel import Architect, build_supernet

TINY = dict(data="digits", image_size=8, init_channels=4, layers=3, batch_size=32, max_samples=240, epochs=3,
            warmup_epochs=1, threads=1, guard="off")


def _model(**kw):
    cfg = make_config(overrides={**TINY, **kw})
    seed_everything(0)
    return cfg, build_supernet(cfg, 10, 1)


@pytest.mark.parametrize("relaxation", RELAXATIONS.names())
def test_expected_cost_is_differentiable_under_every_relaxation(relaxation):
    cfg, model = _model(relaxation=relaxation, cost_objective="macs")
    f = expected_cost_fn(cfg, model, "macs")
    value = f(model)
    grads = torch.autograd.grad(value, [model.alpha_normal, model.alpha_reduce])
    assert value.item() > 0 and all(g.abs().sum() > 0 for g in grads)
    wn, wr = darts_expected_weights(model)
    # 2 edges kept per node, none never kept
    assert torch.allclose(wn.sum(), torch.tensor(8.0, dtype=wn.dtype)) and torch.allclose(wr.sum(), torch.tensor(8.0, dtype=wr.dtype))
    assert wn[:, model.space.primitives.index("none")].abs().max() == 0


def _arch_steps(lam, objective="macs", steps=6, **kw):
    cfg, model = _model(relaxation="darts", cost_objective=objective, cost_lambda=lam, arch_lr=3e-2, **kw)
    arch = Architect(model, cfg)
    f = expected_cost_fn(cfg, model, objective)
    before = f(model).item()
    train_b, val_b, _, _ = search_batches(cfg)
    w_opt = torch.optim.SGD(model.weights(), lr=0.05)
    batches = list(zip(train_b, val_b))
    for i in range(steps):
        (xt, yt), (xv, yv) = batches[i % len(batches)]
        arch.step(xt, yt, xv, yv, 0.05, w_opt)
    return before, f(model).item(), arch, model


def test_lambda_lowers_the_expected_cost_on_a_toy_space():
    before, after0, _, _ = _arch_steps(0.0)
    before_l, after_l, arch, _ = _arch_steps(20.0)
    assert before == before_l
    assert after_l < before_l * 0.97, (before_l, after_l)
    assert after_l < after0
    assert arch.last_terms["cost"] == pytest.approx(20.0 * after_l, rel=0.2)


def test_latency_budget_hinge_is_zero_below_the_target(tmp_path, monkeypatch):
    monkeypatch.setenv("DNAS_CACHE_DIR", str(tmp_path))
    cfg, model = _model(relaxation="darts", cost_objective="latency_table", max_latency_ms=1e6, cost_lambda=1.0)
    term = cost_term(cfg, model)
    v = term(model)
    assert v.item() == 0.0
    cfg2 = make_config(overrides={**TINY, "relaxation": "darts", "cost_objective": "latency_table", "max_latency_ms": 1e-3})
    v2 = cost_term(cfg2, model)(model)
    (g,) = torch.autograd.grad(v2, [model.alpha_normal])
    assert v2.item() > 0 and g.abs().sum() > 0
    # the table was measured once and cached on disk
    assert list((tmp_path / "latency").glob("*.json"))


def _fit_predictor(path, shape):
    space = make_space("darts", **shape)
    gs = space.sample(60, seed=0)
    X = space.encode(gs)
    y = 1.0 + X.numpy() @ np.linspace(0.05, 0.5, X.shape[1])
    LatencyPredictor(X.shape[1], ensemble=1, epochs=200, meta={"space": "darts", "shape": space.shape()}).fit(X, y).save(path)


def test_predictor_objective_in_a_real_tiny_search(tmp_path):
    shape = dict(C=4, layers=3, image_size=8, in_channels=1)
    _fit_predictor(tmp_path / "lat.pt", shape)
    r = dnas.search(out=tmp_path / "run", relaxation="pc", cost_objective="latency_predictor",
                    latency_predictor=str(tmp_path / "lat.pt"), cost_lambda=0.5, **{**TINY, "epochs": 2})
    events = [json.loads(l) for l in (r.run_dir / "events.jsonl").read_text().splitlines()]
    terms = [e["arch_terms"] for e in events if e["event"] == "epoch"]
    assert terms[0] == {} and terms[1]["cost"] > 0  # warm-up epoch has no architecture step
    assert r.genotype.validate()


def test_cost_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="max_latency_ms"):
        cfg, model = _model(cost_objective="params", max_latency_ms=5.0)
        cost_term(cfg, model)
    with pytest.raises(ConfigError, match="latency_predictor"):
        cfg, model = _model(cost_objective="latency_predictor")
        cost_term(cfg, model)
    with pytest.raises(ConfigError, match="cost_objective"):
        make_config(overrides={"cost_objective": "flops"})
    cfg, model = _model()
    assert cost_term(cfg, model) is None  # default: off
