"""GDAS, MSG-DAS and TopoNAS: the properties each relaxation must have, plus tiny real searches
on digits that complete, resume exactly after an interruption, and give valid genotypes."""
import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import dnas
from dnas.config import make_config
from dnas.genotype import Genotype
from dnas.ops import DARTS_PRIMITIVES
from dnas.relax import make_relaxation, node_slices
from dnas.relax.gdas import linear_tau
from dnas.relax.msg import gumbel_topk
from dnas.relax.topo import best_pairs, node_pairs, num_pairs, pair_slices
from dnas.run import RunDir
from dnas.spaces.darts import DartsSpace
from dnas.strategies.bilevel import build_supernet
from dnas.supernet import Supernet

P = DARTS_PRIMITIVES
SKIP, NONE = P.index("skip_connect"), P.index("none")
TINY = dict(data="digits", image_size=8, init_channels=4, layers=3, batch_size=32, max_samples=200, epochs=3,
            warmup_epochs=1, threads=1, guard_hessian_iters=1)


def _net(relax: str, **kw) -> Supernet:
    torch.manual_seed(0)
    return Supernet(DartsSpace(), make_relaxation(relax, **kw), C=4, layers=3, num_classes=10, in_channels=1)


def _count_op_calls(net: Supernet) -> list[list[int]]:
    """Forward hooks counting, per edge of the first cell, how often each candidate op ran."""
    counts = [[0] * len(P) for _ in net.cells[0].edges]
    for e, edge in enumerate(net.cells[0].edges):
        for i, op in enumerate(edge.ops.ops):
            target = op[-1] if isinstance(op, nn.Sequential) else op  # relu-first ops skip op[0]

            def hook(*_, e=e, i=i):
                counts[e][i] += 1

            target.register_forward_hook(hook)
    return counts


# ----------------------------------------------------------------------------- GDAS


def test_gdas_runs_only_the_sampled_op_and_gradients_reach_all_logits():
    net = _net("gdas")
    counts = _count_op_calls(net)
    x = torch.randn(4, 1, 8, 8)
    torch.manual_seed(1)
    w = net.relax.op_weights(net.alpha_normal, training=True)
    assert torch.equal(w.detach(), F.one_hot(w.detach().argmax(-1), len(P)).float())  # exact one-hot values
    torch.manual_seed(1)
    out = net(x)
    for e, c in enumerate(counts):
        k = int(w[e].argmax())
        assert sum(c) == (0 if k == NONE else 1) and (k == NONE or c[k] == 1), (e, c, k)
    F.cross_entropy(out, torch.arange(4)).backward()
    g = net.alpha_normal.grad
    used = [e for e in range(14) if int(w[e].argmax()) != NONE]
    # straight-through: every logit of an edge whose sampled op ran gets a gradient
    assert all((g[e] != 0).all() for e in used), g
    # the DARTS relaxation runs every op but none on every edge
    dnet = _net("darts")
    dcounts = _count_op_calls(dnet)
    dnet(x)
    assert all(sum(c) == len(P) - 1 for c in dcounts)


def test_gdas_sampling_is_deterministic_given_the_torch_rng():
    relax = make_relaxation("gdas")
    alpha = torch.zeros(14, 8)
    torch.manual_seed(5)
    a = relax.op_weights(alpha, training=True).argmax(-1)
    torch.manual_seed(5)
    b = relax.op_weights(alpha, training=True).argmax(-1)
    c = relax.op_weights(alpha, training=True).argmax(-1)
    assert torch.equal(a, b) and not torch.equal(b, c)
    # uniform logits: the sampled ops cover most of the 8 candidates over a few draws
    assert len({int(i) for _ in range(10) for i in relax.op_weights(alpha, training=True).argmax(-1)}) == 8
    # inside a sample scope the draw is reused
    with relax.sample_scope():
        d = relax.op_weights(alpha, training=True).argmax(-1)
        assert torch.equal(d, relax.op_weights(alpha, training=True).argmax(-1))


def test_tau_schedule_is_linear_and_restored_by_state():
    assert linear_tau(0, 50, 10, 0.1) == 10 and abs(linear_tau(49, 50, 10, 0.1) - 0.1) < 1e-12
    assert abs(linear_tau(10, 11, 10, 0.1) - 0.1) < 1e-12 and abs(linear_tau(5, 11, 10, 0.1) - 5.05) < 1e-9
    r = make_relaxation("gdas", tau_max=4.0, tau_min=1.0)
    r.on_epoch(2, 4)
    assert r.tau == pytest.approx(2.0)
    fresh = make_relaxation("gdas", tau_max=4.0, tau_min=1.0)
    assert fresh.tau == 4.0
    fresh.load_state(json.loads(json.dumps(r.state())))  # survives the JSON event log / checkpoint
    assert fresh.tau == r.tau and fresh.state() == r.state()


def test_gdas_eval_mode_uses_the_argmax_path():
    relax = make_relaxation("gdas")
    alpha = torch.randn(14, 8)
    w = relax.op_weights(alpha, training=False)
    assert torch.equal(w.detach().argmax(-1), alpha.argmax(-1))
    with relax.expected_scope():  # the distribution itself (collapse guard, distillation teacher)
        assert torch.allclose(relax.op_weights(alpha, training=True), F.softmax(alpha, -1))


# ----------------------------------------------------------------------------- MSG-DAS


def test_gumbel_topk_paths_are_one_hot_mutually_exclusive_and_differentiable():
    torch.manual_seed(0)
    alpha = torch.randn(14, 8, requires_grad=True)
    for _ in range(20):
        w = gumbel_topk(alpha, -torch.empty(14, 8).exponential_().log(), 4, 1.0)
        hard = w.detach()
        assert w.shape == (4, 14, 8)
        assert torch.equal(hard, F.one_hot(hard.argmax(-1), 8).float())  # one-hot values
        idx = hard.argmax(-1)  # (K, edges)
        assert all(len(set(idx[:, e].tolist())) == 4 for e in range(14))  # no op twice on an edge
    (w * torch.randn_like(w)).sum().backward()
    assert alpha.grad is not None and (alpha.grad != 0).all()  # every logit gets a gradient
    # the top-k of the perturbed logits, in order
    noise = torch.zeros(14, 8)
    w = gumbel_topk(alpha.detach(), noise, 3, 1.0)
    assert torch.equal(w.argmax(-1).T, alpha.detach().topk(3, -1).indices)


def test_msg_subgraphs_share_one_draw_and_weight_step_trains_k_paths():
    net = _net("msg", k=3, drop_prob=0.0, distill=0.5)
    counts = _count_op_calls(net)
    x, y = torch.randn(4, 1, 8, 8), torch.arange(4)
    torch.manual_seed(2)
    loss, logits = net.relax.weight_loss(net, x, y)
    assert torch.isfinite(loss) and logits.shape == (4, 10)
    for c in counts:  # three sub-graphs, each one op per edge, never the same op twice
        assert sum(c) <= 3 and max(c) <= 1
    assert sum(map(sum, counts)) >= 3 * 14 - 14  # at most one `none` (not run) per edge
    grads = torch.autograd.grad(loss, net.weights(), allow_unused=True)
    assert sum(g is not None for g in grads) > 0
    a = net.relax.arch_loss(net, x, y)
    g = torch.autograd.grad(a, net.arch_parameters())
    assert all((t != 0).any() for t in g)


def test_msg_dropblock_identity_drops_skip_and_decays():
    r = make_relaxation("msg", k=2, drop_prob=0.9)
    r.skip_index = SKIP
    alpha = torch.full((14, 8), -20.0)
    alpha[:, SKIP] = 20.0  # skip is always the first pick
    r.on_epoch(0, 5)
    assert r.drop == pytest.approx(0.9)
    torch.manual_seed(0)
    w = r.sample_weights(alpha).detach()
    first = w[0]  # sub-graph 0: skip on every edge, dropped on ~90% of them
    dropped = (first.sum(-1) == 0).sum().item()
    assert 8 <= dropped <= 14 and (first[first.sum(-1) > 0].argmax(-1) == SKIP).all()
    assert (w[1].sum(-1) == 1).all()  # sub-graph 1 has no skip: nothing dropped
    r.on_epoch(4, 5)
    assert r.drop == 0.0 and (r.sample_weights(alpha).detach().sum(-1) == 1).all()
    s = make_relaxation("msg", k=2, drop_prob=0.9)
    s.load_state(r.state())
    assert s.drop == 0.0 and s.tau == r.tau


# ----------------------------------------------------------------------------- TopoNAS


def test_topology_variables_have_one_logit_per_input_pair():
    assert [len(p) for p in node_pairs(4)] == [1, 3, 6, 10] and num_pairs(4) == 20
    net = _net("topo")
    assert net.beta_normal.shape == (20,) and net.alpha_normal.shape == (14, 8)
    beta = torch.randn(20)
    ew = net.relax.edge_weights(beta, 4)
    for s in node_slices(4):
        assert ew[s].sum().item() == pytest.approx(2.0, abs=1e-5)  # two kept inputs in expectation
    torch.manual_seed(0)
    sampled = net.relax.forward_edge_weights(beta, 4, training=True)
    for s in node_slices(4):  # a sampled topology: exactly two edges per node, weight 1
        assert sorted(sampled[s].detach().tolist())[-2:] == [1.0, 1.0] and sampled[s].detach().sum() == 2.0
    # pc op mixing with topology edge weights
    pc = _net("topo", ops="pc", partial_k=2)
    assert any(type(m).__name__ == "PartialMixedOp" for m in pc.modules())
    out = pc(torch.randn(2, 1, 8, 8))
    F.cross_entropy(out, torch.tensor([0, 1])).backward()
    assert (pc.beta_normal.grad != 0).any() and (pc.alpha_normal.grad != 0).any()


def test_topology_derivation_keeps_the_most_probable_pair_and_ops_from_alpha():
    net = _net("topo")
    with torch.no_grad():
        # op weights prefer the edges from the cell inputs everywhere ...
        net.alpha_normal.zero_()
        net.alpha_normal[:, P.index("sep_conv_3x3")] = 1.0
        for s in node_slices(4):
            net.alpha_normal[s.start : s.start + 2, P.index("sep_conv_3x3")] = 5.0
        net.alpha_normal[:, NONE] = 9.0  # and `none` is the strongest op: derivation must skip it
        # ... but the topology variables choose the pairs (the last two inputs of each node)
        for i, s in enumerate(pair_slices(4)):
            net.beta_normal[s] = 0.0
            net.beta_normal[s.stop - 1] = 3.0
    g = net.genotype()
    g.validate()
    for i in range(4):
        inputs = sorted(j for _, j in g.normal[2 * i : 2 * i + 2])
        assert inputs == list(best_pairs(net.beta_normal, 4)[i]) == [i, i + 1]
        assert len(set(inputs)) == 2
    assert all(op == "sep_conv_3x3" for op, _ in g.normal)


def test_passive_aggressive_hinge_pushes_down_invalid_pairs_only_when_close():
    r = make_relaxation("topo", pa_margin=1.0)
    r.none_index = NONE
    alpha = torch.zeros(14, 8)
    alpha[:, P.index("sep_conv_3x3")] = 1.0
    alpha[4, NONE] = 5.0  # node 1 (edges 2..4): its input 2 (edge 4) carries nothing
    beta = torch.zeros(20, requires_grad=True)
    loss = r.pa_loss(alpha, beta, 4)
    assert loss.item() == pytest.approx(2.0)  # pairs (0,2) and (1,2) of node 1, each 1.0 violation
    (g,) = torch.autograd.grad(loss, beta)
    s = pair_slices(4)[1]  # pairs (0,1), (0,2), (1,2)
    assert g[s.start + 1] > 0 and g[s.start + 2] > 0 and g[s.start] < 0  # invalid down, best valid up
    assert (g[: s.start] == 0).all() and (g[s.stop :] == 0).all()
    with torch.no_grad():
        beta[s.start + 1 : s.start + 3] = -2.0  # already a margin below the valid pair: passive
    assert r.pa_loss(alpha, beta, 4).item() == 0.0


def test_darts_and_pc_state_dict_keys_are_unchanged():
    d, p = _net("darts").state_dict(), _net("pc").state_dict()
    assert "beta_normal" not in d and d["alpha_normal"].shape == (14, 8)
    assert p["beta_normal"].shape == (14,) and p["beta_reduce"].shape == (14,)
    assert set(p) - {"beta_normal", "beta_reduce"} == set(d)  # same module names, pc adds beta only


# ----------------------------------------------------------------------------- real searches


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("relax,extra", [("gdas", {}), ("msg", {"msg_k": 2, "guard": "off"}), ("topo", {"topo_ops": "pc", "partial_k": 2, "guard": "off"})])
def test_search_completes_resumes_exactly_and_gives_a_valid_genotype(tmp_path, monkeypatch, relax, extra):
    cfg = dict(TINY, relaxation=relax, **extra)
    full = dnas.search(out=tmp_path / "full", **cfg)
    full.genotype.validate()
    events = [json.loads(l) for l in (full.run_dir / "events.jsonl").read_text().splitlines()]
    epochs = [e for e in events if e["event"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [0, 1, 2]
    assert epochs[0]["relax"]["tau"] == 10.0 and epochs[-1]["relax"]["tau"] == pytest.approx(0.1)
    if cfg.get("guard", "log") != "off":  # the collapse guard's per-epoch record
        assert all("param_free_share" in e["guard"] and e["guard"]["hessian_eig"] is not None for e in epochs)
    for cell in (full.genotype.normal, full.genotype.reduce):
        for i in range(4):  # two distinct inputs per node
            assert len({j for _, j in cell[2 * i : 2 * i + 2]}) == 2

    # interrupt after the checkpoint of epoch 1, then resume from the run directory
    saves = {"n": 0}
    real_save = RunDir.save_checkpoint

    def save_then_die(self, state):
        real_save(self, state)
        saves["n"] += 1
        if saves["n"] == 2:
            raise _Interrupt

    monkeypatch.setattr(RunDir, "save_checkpoint", save_then_die)
    with pytest.raises(_Interrupt):
        dnas.search(out=tmp_path / "cut", **cfg)
    monkeypatch.setattr(RunDir, "save_checkpoint", real_save)
    assert not (tmp_path / "cut" / "genotype.json").exists()
    resumed = dnas.search(resume=tmp_path / "cut")
    assert resumed.genotype == full.genotype
    a = torch.load(full.run_dir / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]), "resumed run differs"
    assert a["relax"] == b["relax"]
    assert Genotype.from_dict(json.loads((tmp_path / "cut" / "genotype.json").read_text())) == full.genotype


def test_topo_with_darts_mixing_searches(tmp_path):
    res = dnas.search(out=tmp_path / "t", **dict(TINY, relaxation="topo", epochs=2, guard="off"))
    res.genotype.validate()
    ck = torch.load(res.run_dir / "checkpoint.pt", weights_only=True)
    beta = ck["model"]["beta_normal"]
    assert beta.shape == (20,)
    assert [sorted(j for _, j in res.genotype.normal[2 * i : 2 * i + 2]) for i in range(4)] == [list(p) for p in best_pairs(beta, 4)]


@pytest.mark.parametrize("relax", ["gdas", "msg", "topo"])
def test_second_order_step_with_sampling_relaxations(relax):
    from dnas.data import load_dataset
    from dnas.strategies.bilevel import Architect

    d = load_dataset("digits", image_size=8)
    cfg = make_config(overrides=dict(data="digits", image_size=8, init_channels=4, layers=3, relaxation=relax, unrolled=True))
    torch.manual_seed(0)
    net = build_supernet(cfg, 10, 1)
    before = [p.detach().clone() for p in net.arch_parameters()]
    arch = Architect(net, cfg)
    loss = arch.step(d.x[:16], d.y[:16], d.x[16:32], d.y[16:32], 0.1, torch.optim.SGD(net.weights(), lr=0.1, momentum=0.9))
    assert torch.isfinite(loss)
    assert all((p - b).abs().max() > 0 for p, b in zip(net.arch_parameters(), before))


def test_unknown_relaxation_option_is_a_config_error():
    from dnas.errors import ConfigError

    with pytest.raises(ConfigError, match="topo_ops"):
        make_config(overrides=dict(relaxation="topo", topo_ops="nope"))
    with pytest.raises(ConfigError, match="msg_k"):
        build_supernet(make_config(overrides=dict(relaxation="msg", msg_k=9)), 10, 1)
