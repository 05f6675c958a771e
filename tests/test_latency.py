"""Cost model: per-op params/MACs against independent counts, the exact per-op decomposition of
whole networks, measured latency and its on-disk table cache, the MLP latency predictor, and
the `dnas latency` commands on real (tiny) measurements."""
import json
import numpy as np
import pytest
import torch
import torch.nn as nn

import dnas.spaces.nb201  # noqa: F401  (registers the NB201 convs in OPS)
from dnas.cost import count_macs, count_params
from dnas.latency import LatencyTable, measure_module, measure_modules, op_key
from dnas.opcost import NetShape, build_net, cost_matrices, genotype_cost, op_macs, op_params
from dnas.ops import DARTS_PRIMITIVES, OPS, make_op
from dnas.predictors.latency import LatencyPredictor, make_space, score


def hook_macs(model: nn.Module, shape) -> int:
    """Independent multiply-add count: conv and linear output elements times their fan-in,
    collected with forward hooks (no FlopCounterMode)."""
    total = [0]

    def conv(m, inp, out):
        total[0] += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def lin(m, inp, out):
        total[0] += out.numel() * m.in_features

    hs = [m.register_forward_hook(conv) for m in model.modules() if isinstance(m, nn.Conv2d)]
    hs += [m.register_forward_hook(lin) for m in model.modules() if isinstance(m, nn.Linear)]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *shape))
    for h in hs:
        h.remove()
    return total[0]


def test_op_params_and_macs_match_hand_counts():
    C, H = 8, 8
    # sep conv k: twice (depthwise k*k*C + pointwise C*C + BN 2C); the first carries the stride
    for k in (3, 5):
        assert op_params(f"sep_conv_{k}x{k}", C, 1) == 2 * (k * k * C + C * C + 2 * C)
        assert op_macs(f"sep_conv_{k}x{k}", C, H, H, 1) == 2 * (k * k * C + C * C) * H * H
        h2 = H // 2
        assert op_macs(f"sep_conv_{k}x{k}", C, H, H, 2) == 2 * (k * k * C + C * C) * h2 * h2
    for k in (3, 5):
        assert op_params(f"dil_conv_{k}x{k}", C, 1) == k * k * C + C * C + 2 * C
        assert op_macs(f"dil_conv_{k}x{k}", C, H, H, 1) == (k * k * C + C * C) * H * H
    # skip across a stride: factorized reduce, two 1x1 convs C -> C/2 at half resolution + BN
    assert op_params("skip_connect", C, 2) == 2 * C * (C // 2) + 2 * C
    assert op_macs("skip_connect", C, H, H, 2) == 2 * C * (C // 2) * (H // 2) ** 2
    for op in ("none", "max_pool_3x3", "avg_pool_3x3"):
        assert op_params(op, C, 1) == 0 and op_macs(op, C, H, H, 1) == 0
    assert op_params("skip_connect", C, 1) == 0
    assert op_params("nor_conv_3x3", C, 1) == 9 * C * C + 2 * C


@pytest.mark.parametrize("op", sorted(OPS.names()))
def test_every_registered_op_counts_agree_with_an_independent_counter(op):
    for stride in (1, 2):
        m = make_op(op, 8, stride, True)
        assert op_params(op, 8, stride) == sum(p.numel() for p in m.parameters())
        assert op_macs(op, 8, 9, 9, stride) == hook_macs(m, (8, 9, 9))


def test_network_cost_is_skeleton_plus_its_ops_exactly():
    net = NetShape(C=6, layers=4, image_size=12, in_channels=1, num_classes=10)
    space = make_space("darts", C=6, layers=4, image_size=12, in_channels=1)
    mats = {m: cost_matrices(DARTS_PRIMITIVES, net, m) for m in ("params", "macs")}
    for g in space.sample(4, seed=3):
        model = build_net(g, net)
        assert genotype_cost(g, DARTS_PRIMITIVES, mats["params"]) * 1e6 == pytest.approx(count_params(model), abs=0.5)
        macs = hook_macs(model, net.input_shape)
        assert macs == count_macs(model, net.input_shape)
        assert genotype_cost(g, DARTS_PRIMITIVES, mats["macs"]) * 1e6 == pytest.approx(macs, abs=0.5)


def test_measured_latency_orders_small_and_large_networks():
    small = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1))
    large = nn.Sequential(*[nn.Conv2d(32, 32, 3, padding=1) for _ in range(6)])
    ms_small, ms_large = measure_modules([small, nn.Sequential(nn.Conv2d(4, 32, 1), large)], [(4, 16, 16)] * 2, repeats=5, warmup=1)
    assert 0 < ms_small < ms_large / 3
    assert measure_module(small, (4, 16, 16), repeats=3, warmup=1) > 0


def test_latency_table_is_reused_from_the_disk_cache(tmp_path, monkeypatch):
    specs = [("sep_conv_3x3", 4, 8, 8, 1), ("max_pool_3x3", 4, 8, 8, 2), ("skip_connect", 4, 8, 8, 2)]
    t1 = LatencyTable("cpu", cache_dir=tmp_path, repeats=3, warmup=1)
    first = t1.ops(specs)
    assert t1.measured == 3 and all(v > 0 for v in first)
    assert t1.path.exists() and t1.path.parent == tmp_path / "latency"
    saved = json.loads(t1.path.read_text())["entries"]
    assert saved[op_key("sep_conv_3x3", 4, 8, 8, 1)] == first[0]

    import dnas.latency

    def no_measuring(*a, **k):
        raise AssertionError("a cached entry was measured again")

    monkeypatch.setattr(dnas.latency, "measure_modules", no_measuring)
    t2 = LatencyTable("cpu", cache_dir=tmp_path, repeats=3, warmup=1)
    assert t2.ops(specs) == first and t2.measured == 0
    monkeypatch.undo()
    # a new entry is measured and merged; the old ones stay
    t2.ops(specs + [("avg_pool_3x3", 4, 8, 8, 1)])
    assert t2.measured == 1 and len(LatencyTable("cpu", cache_dir=tmp_path)) == 4


def _synthetic(space, genotypes, seed=0):
    """Additive per-op costs by edge kind plus a multiplicative interaction."""
    X = space.encode(genotypes).numpy()
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.05, 0.6, X.shape[1])
    base = 2.0 + X @ w
    return base * (1 + 0.05 * np.tanh(X[:, :7].sum(1) - X[:, 7:14].sum(1)))


def test_predictor_learns_a_synthetic_cost_function():
    space = make_space("darts", C=4, layers=3, image_size=8)
    gs = space.sample(200, seed=0)
    y = _synthetic(space, gs)
    X = space.encode(gs)
    pred = LatencyPredictor(X.shape[1], ensemble=2, epochs=400, seed=0).fit(X[:140], y[:140])
    res = score(pred.predict(X[140:]), y[140:])
    assert res["mean_rel_error"] < 0.03, res
    assert res["kendall_tau"] > 0.8, res
    # same seed, same predictor
    again = LatencyPredictor(X.shape[1], ensemble=2, epochs=400, seed=0).fit(X[:140], y[:140])
    assert np.array_equal(again.predict(X[140:]), pred.predict(X[140:]))


def test_predictor_save_load_and_gradient_on_soft_encoding(tmp_path):
    space = make_space("darts", C=4, layers=3, image_size=8)
    gs = space.sample(40, seed=1)
    X = space.encode(gs)
    pred = LatencyPredictor(X.shape[1], ensemble=1, epochs=50, meta={"space": "darts", "shape": space.shape()}).fit(X, _synthetic(space, gs))
    pred.save(tmp_path / "p.pt")
    back = LatencyPredictor.load(tmp_path / "p.pt")
    assert np.allclose(back.predict(X), pred.predict(X)) and back.meta["space"] == "darts"
    alpha = torch.zeros(2, 14, 8, requires_grad=True)
    w = torch.softmax(alpha, -1)
    out = back(space.encode_weights(w[0], w[1]))
    (g,) = torch.autograd.grad(out.sum(), alpha)
    assert out.item() > 0 and g.abs().sum() > 0


def _dnas(*args):
    """Run the CLI in-process (a subprocess per command costs seconds of imports here)."""
    from typer.testing import CliRunner

    from dnas.cli import _load_commands, app

    _load_commands()
    r = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.stdout


def test_latency_cli_collect_fit_evaluate(tmp_path, monkeypatch):
    monkeypatch.setenv("DNAS_CACHE_DIR", str(tmp_path / "cache"))
    m = json.loads(_dnas("latency", "measure", "DARTS_V2", "--channels", "4", "--layers", "3", "--image-size", "8",
                         "--repeats", "3", "--warmup", "1", "--json"))
    assert m["latency_ms"] > 0 and m["table_ms"] > 0 and m["params"] > 0 and m["macs"] > 0
    tiny = ["--space", "fbnetv2", "--channels", "4", "--layers", "3", "--image-size", "8", "--in-channels", "1",
            "--repeats", "3", "--warmup", "1", "--cache-dir", str(tmp_path / "cache")]
    out = json.loads(_dnas("latency", "collect", *tiny, "--samples", "24", "--out", str(tmp_path / "d.json"), "--json"))
    assert out["samples"] == 24 and out["latency_ms"]["min"] > 0
    data = json.loads((tmp_path / "d.json").read_text())
    assert all(r["latency_ms"] > 0 and r["table_ms"] > 0 for r in data["records"])
    fit = json.loads(_dnas("latency", "fit", str(tmp_path / "d.json"), "--out", str(tmp_path / "p.pt"), "--epochs", "100", "--json"))
    assert (tmp_path / "p.pt").exists() and fit["test_size"] == 7
    assert {"mean_rel_error", "kendall_tau", "table_sum", "table_sum_calibrated"} <= set(fit)
    ev = json.loads(_dnas("latency", "evaluate", "--data", str(tmp_path / "d.json"), "--json"))
    assert 0 <= ev["mean_rel_error"] < 1 and -1 <= ev["kendall_tau"] <= 1
