"""GDAS as its reference (AutoDL-Projects ``forward_gdas`` / ``GDAS.py``): the estimator that
gives every op's weight a gradient, the weights-first step order, the temperature annealed over
the search epochs only, the ``gdas`` preset and the reference derivation, each checked on real
tensors or a tiny real search on digits."""
import json

import pytest
import torch
import torch.nn.functional as F

import dnas
from dnas.config import make_config
from dnas.errors import ConfigError
from dnas.models import build_network
from dnas.ops import DARTS_PRIMITIVES
from dnas.relax import make_relaxation
from dnas.relax.gdas import GumbelRelaxation, SinglePathMixedOp, straight_through
from dnas.spaces.darts import DartsSpace, derive_cell, derive_cell_op_pairs
from dnas.strategies.bilevel import Architect
from dnas.supernet import Supernet

P = DARTS_PRIMITIVES
NONE, SEP3, DIL3 = P.index("none"), P.index("sep_conv_3x3"), P.index("dil_conv_3x3")
TINY = dict(data="digits", image_size=8, init_channels=4, layers=3, batch_size=32, max_samples=200, threads=1,
            guard="off")


def _net(estimator: str) -> Supernet:
    torch.manual_seed(0)
    relax = make_relaxation("gdas", estimator=estimator)
    return Supernet(DartsSpace(), relax, C=4, layers=3, num_classes=10, in_channels=1)


def _seed_where_edge0_samples_none(relax, alpha) -> int:
    for seed in range(200):
        torch.manual_seed(seed)
        if int(relax.op_weights(alpha, training=True)[0].detach().argmax()) == NONE:
            return seed
    raise AssertionError("no draw picked none on edge 0")


def test_edge_that_samples_none_gets_gradient_only_under_the_reference_estimator():
    x, y = torch.randn(4, 1, 8, 8), torch.arange(4)
    ref, old = _net("reference"), _net("sampled-only")
    assert torch.equal(ref.alpha_normal, old.alpha_normal)
    seed = _seed_where_edge0_samples_none(ref.relax, ref.alpha_normal)
    outs = {}
    for name, net in (("reference", ref), ("sampled-only", old)):
        torch.manual_seed(seed)
        out = net(x)
        F.cross_entropy(out, y).backward()
        outs[name] = (out.detach(), net.alpha_normal.grad[0].clone())
    # same forward values (the added weights are exactly 0) ...
    assert torch.equal(outs["reference"][0], outs["sampled-only"][0])
    # ... but the old estimator gives all 8 logits of the none edge a zero gradient
    assert torch.count_nonzero(outs["sampled-only"][1]) == 0
    assert torch.count_nonzero(outs["reference"][1]) == len(P), outs["reference"][1]


def test_reference_estimator_equals_the_forward_gdas_formula():
    """d loss / d logits = J^T g with g_k = <r, op_k(x)> for the sampled op k and
    g_i = sum(r) for every other op (their zero-valued weights are added to the output)."""
    torch.manual_seed(3)
    edge = SinglePathMixedOp(4, 1, P, zero_weight_grad=True)
    x, r = torch.randn(2, 4, 6, 6), torch.randn(2, 4, 6, 6)
    logits = torch.randn(len(P), requires_grad=True)
    probs = F.softmax(logits, -1)
    k = SEP3
    w = straight_through(F.one_hot(torch.tensor(k), len(P)).float(), probs)
    (edge(x, w) * r).sum().backward()
    with torch.no_grad():
        g = torch.full((len(P),), float(r.sum()))
        g[k] = (r * edge.ops.run(k, x, F.relu(x))).sum()
        J = torch.diag(probs) - probs[:, None] * probs[None, :]  # softmax Jacobian (symmetric)
    assert torch.allclose(logits.grad, J @ g, rtol=1e-4, atol=1e-6)


def test_gdas_preset_steps_weights_first_and_anneals_tau_over_search_epochs(tmp_path, monkeypatch):
    order: list[str] = []
    real_step, real_wloss = Architect.step, GumbelRelaxation.weight_loss

    def arch_step(self, *a, **k):
        order.append("arch")
        return real_step(self, *a, **k)

    def weight_loss(self, *a, **k):
        order.append("weights")
        return real_wloss(self, *a, **k)

    monkeypatch.setattr(Architect, "step", arch_step)
    monkeypatch.setattr(GumbelRelaxation, "weight_loss", weight_loss)
    res = dnas.search(out=tmp_path / "g", preset="gdas", epochs=3, warmup_epochs=1, **TINY)
    res.genotype.validate()
    # the reference loop: weight step, then architecture step, on every batch once search starts
    searching = order[order.index("arch") - 1 :]
    assert searching[:4] == ["weights", "arch", "weights", "arch"] and "arch" not in order[: order.index("arch") - 1]
    epochs = [e for e in map(json.loads, (res.run_dir / "events.jsonl").read_text().splitlines()) if e["event"] == "epoch"]
    # tau stays at tau_max through the weight-only warm-up, then 10 -> 0.1 over the 2 search epochs
    assert [e["relax"]["tau"] for e in epochs] == pytest.approx([10.0, 10.0, 0.1])
    ck = torch.load(res.run_dir / "checkpoint.pt", weights_only=True)
    group = ck["w_opt"]["param_groups"][0]
    assert group["nesterov"] is True and group["weight_decay"] == 5e-4 and group["momentum"] == 0.9
    assert ck["a_opt"]["param_groups"][0]["lr"] == 3e-4 and ck["a_opt"]["param_groups"][0]["weight_decay"] == 1e-3
    # the preset derives as the released code: top-2 (op, input) pairs per node
    w_n = F.softmax(ck["model"]["alpha_normal"], -1)
    assert [tuple(e) for e in res.genotype.normal] == derive_cell_op_pairs(w_n, P, 4)


def test_gdas_preset_has_the_reference_hyperparameters():
    cfg = make_config(preset="gdas")
    assert (cfg.relaxation, cfg.lr, cfg.lr_min, cfg.weight_decay, cfg.momentum, cfg.nesterov) == ("gdas", 0.025, 0.001, 5e-4, 0.9, True)
    assert (cfg.arch_lr, cfg.arch_weight_decay, tuple(cfg.arch_betas), cfg.warmup_epochs) == (3e-4, 1e-3, (0.5, 0.999), 0)
    assert (cfg.tau_max, cfg.tau_min, cfg.gdas_estimator, cfg.gdas_derive, cfg.grad_clip) == (10.0, 0.1, "reference", "reference", 5.0)
    assert make_config().gdas_estimator == "reference"  # the reference estimator is also the default


def test_reference_derivation_may_keep_two_ops_on_one_input_and_the_network_trains():
    w = torch.full((14, len(P)), 0.01)
    w[0, SEP3], w[0, DIL3], w[1, SEP3] = 0.9, 0.8, 0.7  # node 0: both best pairs read input 0
    for e in range(2, 14):
        w[e, e % len(P)] = 0.5
    w[:, NONE] = 0.95  # none never counts
    pairs = derive_cell_op_pairs(w, P, 4)
    assert pairs[:2] == [("sep_conv_3x3", 0), ("dil_conv_3x3", 0)]
    assert derive_cell(w, P, 4)[:2] == [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)]  # DARTS: distinct inputs
    g = DartsSpace().derive(w, w, rule="op-pairs")
    g.validate()
    torch.manual_seed(0)
    net = build_network(g, C=4, layers=3, num_classes=10, in_channels=1)
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    x, y = torch.randn(8, 1, 8, 8), torch.arange(8)
    losses = []
    for _ in range(3):
        out = net(x)
        out = out[0] if isinstance(out, tuple) else out
        loss = F.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_gdas_options_fail_with_one_line():
    with pytest.raises(ConfigError, match="gdas_derive"):
        make_config(overrides=dict(relaxation="darts", gdas_derive="reference"))
    with pytest.raises(ConfigError, match="gdas_estimator"):
        make_config(overrides=dict(relaxation="gdas", gdas_estimator="straight"))
    with pytest.raises(ConfigError, match="nesterov"):
        make_config(overrides=dict(nesterov=True, momentum=0.0))


def test_cli_bad_gdas_and_hvp_options_are_one_line_errors():
    import subprocess
    import sys

    for args, field in ((["--preset", "gdas", "--relaxation", "darts"], "gdas_derive"), (["--hvp", "nope"], "hvp")):
        p = subprocess.run([sys.executable, "-m", "dnas", "search", "--data", "digits", "--quiet", *args],
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 2 and field in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1 and p.stderr.startswith("error:"), p.stderr
